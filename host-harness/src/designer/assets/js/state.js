// What the page holds: the definitions, the connections, the open action, the flow's steps.

export const state = {
  definition: null,
  connections: [],
  presets: [],
  action: null, // the action open on the Actions page
  actionForm: null,
  flowSteps: [], // {id, name, action, form, values, resultEl}
  triggerForm: null,
  eventsRevision: 0,
  stepCounter: 0,
  connectionResults: new Map(), // connection name -> its last test or sign-in result element
};


export function currentConnection() {
  return document.getElementById('current-connection').value || null;
}

export function actionByKey(key) {
  return state.definition.actions.find((action) => action.key === key);
}
