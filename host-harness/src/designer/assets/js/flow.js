// The Flow page: steps, references between them, run, save and load.

import { actionByKey, currentConnection, state } from './state.js';
import { el, errorBox, pretty } from './dom.js';
import { api } from './api.js';
import { buildForm } from './forms.js';
import { renderOutput } from './output.js';
import { groupedActions } from './actions.js';
import { collectTrigger, renderTrigger } from './trigger.js';

export function actionOptions(selected) {
  const options = [];
  for (const [group, actions] of groupedActions()) {
    options.push(el('optgroup', { label: group }, actions.map((action) => el('option', { value: action.key, text: action.label, selected: action.key === selected }))));
  }
  return options;
}

export function addStep(step = {}) {
  state.stepCounter += 1;
  const entry = {
    id: state.stepCounter,
    name: step.name ?? ('step' + state.stepCounter),
    action: step.action ?? 'create-entity',
    values: step.input ?? {},
  };
  state.flowSteps.push(entry);
  renderSteps();
  return entry;
}

export function stepReferenceHints(index) {
  const hints = [];
  for (const previous of state.flowSteps.slice(0, index)) {
    const example = actionByKey(previous.action)?.exampleOutput;
    const keys = example && typeof example === 'object' && !Array.isArray(example) ? Object.keys(example).filter((k) => !k.includes('@')).slice(0, 6) : [];
    for (const key of keys) hints.push('{{' + previous.name + '.' + key + '}}');
  }
  return hints;
}

export function renderSteps() {
  const list = document.getElementById('flow-steps');
  // Keep what was typed: read each open form before redrawing.
  for (const step of state.flowSteps) {
    if (step.form) {
      const read = step.form.collectQuiet();
      step.values = read;
    }
  }
  list.replaceChildren(...state.flowSteps.map((step, index) => {
    const action = actionByKey(step.action);
    let form;
    const valueOf = (inputKey) => {
      const control = form?.controls.find((c) => c.input.key === inputKey);
      const read = control?.read();
      return read && !read.error ? read.value : undefined;
    };
    form = buildForm(action?.inputs ?? [], step.values, { valueOf });
    form.collectQuiet = () => {
      const values = {};
      for (const control of form.controls) {
        const read = control.read();
        if (!read.error && read.value !== undefined) values[control.input.key] = read.value;
      }
      return values;
    };
    step.form = form;
    const nameField = el('input', { class: 'step-name', value: step.name, 'aria-label': 'step name', 'data-testid': 'step-name', oninput: (event) => { step.name = event.target.value.trim(); } });
    const actionSelect = el('select', { 'data-testid': 'step-action', onchange: (event) => { step.values = form.collectQuiet(); step.action = event.target.value; renderSteps(); } }, actionOptions(step.action));
    const hints = stepReferenceHints(index);
    step.resultEl = el('div', { class: 'step-output', 'data-testid': 'step-result' });
    step.errorEl = el('div', { class: 'step-error' });
    return el('li', { 'data-step': step.name, 'data-testid': 'step' },
      el('div', { class: 'step-head' }, nameField, actionSelect, el('span', { class: 'spacer' }),
        el('button', { type: 'button', class: 'small', text: '↑', title: 'move up', disabled: index === 0, onclick: () => { moveStep(index, -1); } }),
        el('button', { type: 'button', class: 'small', text: '↓', title: 'move down', disabled: index === state.flowSteps.length - 1, onclick: () => { moveStep(index, 1); } }),
        el('button', { type: 'button', class: 'small', text: 'Remove', onclick: () => { state.flowSteps.splice(index, 1); renderSteps(); } })),
      hints.length ? el('div', { class: 'refs' }, 'References: ', hints.map((hint) => [el('code', { text: hint, title: 'click to copy', onclick: () => navigator.clipboard?.writeText(hint) }), ' '])) : null,
      form.element, step.errorEl, step.resultEl);
  }));
}

export function moveStep(index, delta) {
  const [step] = state.flowSteps.splice(index, 1);
  state.flowSteps.splice(index + delta, 0, step);
  renderSteps();
}

// Reads every step; marks the fields at fault. Returns the flow or null.
export function collectFlow() {
  const flowError = document.getElementById('flow-error');
  flowError.replaceChildren();
  const steps = [];
  let bad = false;
  const names = new Set();
  for (const step of state.flowSteps) {
    step.errorEl.replaceChildren();
    const { input, errors } = step.form.collect();
    if (errors.length) bad = true;
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(step.name) || step.name === 'trigger' || names.has(step.name)) {
      step.errorEl.replaceChildren(errorBox({ code: 'invalid-input', message: 'step name "' + step.name + '": use a unique name of letters, digits and _ that starts with a letter (not "trigger")' }));
      bad = true;
    }
    names.add(step.name);
    steps.push({ name: step.name, action: step.action, input });
  }
  if (!steps.length) {
    flowError.replaceChildren(errorBox({ code: 'invalid-input', message: 'the flow has no steps; add one' }));
    return null;
  }
  if (bad) return null;
  const flow = { name: document.getElementById('flow-name').value.trim() || 'Flow', steps };
  if (currentConnection()) flow.connection = currentConnection();
  const trigger = collectTrigger(false);
  if (trigger) flow.trigger = trigger;
  return flow;
}

export function showStepResults(results) {
  results.forEach((result, index) => {
    const step = state.flowSteps[index];
    if (!step) return;
    step.resultEl.replaceChildren(stepResultView(result));
  });
}

export function stepResultView(result) {
  const badgeClass = result.status === 'succeeded' ? 'good' : result.status === 'failed' ? 'bad' : '';
  const view = el('div', { class: 'step-result ' + result.status, 'data-status': result.status },
    el('div', {}, el('strong', { text: result.name }), ' ', el('span', { class: 'badge ' + badgeClass, text: result.status }),
      el('span', { class: 'muted', text: ' ' + result.action + (result.millis !== undefined ? ' · ' + result.millis + ' ms' : '') })));
  if (result.input) view.append(el('details', {}, el('summary', { text: 'input sent' }), el('pre', { class: 'json', text: pretty(result.input) })));
  if (result.output !== undefined) view.append(renderOutput(result.output));
  if (result.error) view.append(errorBox(result.error));
  return view;
}

export async function runFlow() {
  const flow = collectFlow();
  if (!flow) return;
  const connection = currentConnection();
  if (!connection) {
    document.getElementById('flow-error').replaceChildren(errorBox({ code: 'invalid-input', message: 'choose a connection at the top first' }));
    return;
  }
  const button = document.getElementById('flow-run');
  button.disabled = true;
  for (const step of state.flowSteps) step.resultEl.replaceChildren(el('span', { class: 'muted', text: 'waiting…' }));
  const answer = await api('POST', 'flows/run', { connection, flow });
  button.disabled = false;
  if (!answer.ok) {
    for (const step of state.flowSteps) step.resultEl.replaceChildren();
    document.getElementById('flow-error').replaceChildren(errorBox(answer.data.error));
    return;
  }
  showStepResults(answer.data.steps);
}

export function saveFlow() {
  const flow = collectFlow();
  if (!flow) return;
  const blob = new Blob([pretty(flow) + '\n'], { type: 'application/json' });
  const link = el('a', { href: URL.createObjectURL(blob), download: (flow.name.replace(/[^A-Za-z0-9_-]+/g, '-') || 'flow') + '.json' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

export function loadFlow(flow) {
  if (!flow || typeof flow !== 'object' || !Array.isArray(flow.steps)) throw new Error('not a flow: it has no "steps" list');
  for (const [index, step] of flow.steps.entries()) {
    if (!step || typeof step.action !== 'string' || !actionByKey(step.action)) throw new Error('steps[' + index + '].action: the component has no action ' + JSON.stringify(step?.action));
  }
  document.getElementById('flow-name').value = flow.name ?? 'Flow';
  state.flowSteps = [];
  state.stepCounter = 0;
  for (const step of flow.steps) {
    state.stepCounter += 1;
    state.flowSteps.push({ id: state.stepCounter, name: step.name, action: step.action, values: step.input ?? {} });
  }
  renderSteps();
  if (flow.connection && state.connections.some((c) => c.name === flow.connection)) document.getElementById('current-connection').value = flow.connection;
  renderTrigger(flow.trigger);
}
