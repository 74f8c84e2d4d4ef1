// The Actions page: the searchable list and one action's form and output.

import { actionByKey, currentConnection, state } from './state.js';
import { el, errorBox } from './dom.js';
import { api } from './api.js';
import { buildForm } from './forms.js';
import { recordsOf, renderOutput } from './output.js';

export function setupActionsPage() {
  const search = document.getElementById('action-search');
  search.addEventListener('input', renderActionList);
  renderActionList();
}

export function groupedActions(filter = '') {
  const needle = filter.trim().toLowerCase();
  const groups = new Map();
  for (const action of state.definition.actions) {
    const text = (action.label + ' ' + action.key + ' ' + action.description).toLowerCase();
    if (needle && !text.includes(needle)) continue;
    const group = action.group || 'General';
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(action);
  }
  for (const list of groups.values()) list.sort((a, b) => a.label.localeCompare(b.label));
  return groups;
}

export function renderActionList() {
  const list = document.getElementById('action-list');
  const groups = groupedActions(document.getElementById('action-search').value);
  const children = [];
  for (const [group, actions] of groups) {
    children.push(el('div', { class: 'group-title', text: group }));
    for (const action of actions) {
      children.push(el('a', { class: 'action-link' + (state.action?.key === action.key ? ' active' : ''), href: '#actions/' + action.key, 'data-action': action.key, text: action.label, title: action.description }));
    }
  }
  if (!children.length) children.push(el('p', { class: 'muted', text: 'No action matches.' }));
  list.replaceChildren(...children);
}

export function openAction(key, values = {}) {
  const action = actionByKey(key);
  const panel = document.getElementById('action-panel');
  if (!action) { panel.replaceChildren(el('p', { class: 'muted', text: 'Pick an action on the left.' })); return; }
  state.action = action;
  renderActionList();
  let form;
  const valueOf = (inputKey) => {
    const control = form?.controls.find((c) => c.input.key === inputKey);
    const read = control?.read();
    return read && !read.error ? read.value : undefined;
  };
  // Actions whose inputs come from the environment (the parameters of the Dataverse action
  // picked) get a second form, asked of the component once the first has what it needs.
  let extraForm = null;
  const extraBox = el('div', { class: 'dynamic-inputs', 'data-testid': 'dynamic-inputs' });
  const extraStatus = el('span', { class: 'muted', 'data-testid': 'dynamic-status' });
  const loadExtra = async () => {
    const connection = currentConnection();
    if (!connection) { extraStatus.textContent = 'choose a connection to load the parameters'; return; }
    const partial = {};
    for (const control of form.controls) {
      const read = control.read();
      if (!read.error && read.value !== undefined) partial[control.input.key] = read.value;
    }
    extraStatus.textContent = 'loading…';
    const answer = await api('POST', 'input-definitions', { connection, action: action.key, input: partial });
    if (!answer.ok) { extraStatus.textContent = answer.data.error?.message ?? 'could not load the parameters'; return; }
    const own = new Set(action.inputs.map((input) => input.key));
    const added = answer.data.inputs.filter((input) => !own.has(input.key));
    const kept = extraForm ? extraForm.collect().input : {};
    extraForm = buildForm(added, { ...values, ...kept }, { valueOf });
    extraBox.replaceChildren(extraForm.element);
    extraStatus.textContent = added.length ? added.length + ' parameter' + (added.length === 1 ? '' : 's') : 'no parameters';
  };
  form = buildForm(action.inputs, values, { valueOf, onChoice: () => { if (action.dynamicInputs) loadExtra(); } });
  state.actionForm = form;
  const output = el('div', { id: 'action-output' });
  const runButton = el('button', { type: 'button', class: 'primary', text: 'Run', 'data-testid': 'run-action' });
  let page = 1;
  const run = async (override = {}, pageNumber = 1) => {
    await form.ready();
    if (extraForm) await extraForm.ready();
    const { input, errors } = form.collect();
    if (extraForm) {
      const extra = extraForm.collect();
      Object.assign(input, extra.input);
      errors.push(...extra.errors);
    }
    if (errors.length) {
      output.replaceChildren(el('div', { class: 'error-box', role: 'alert', 'data-testid': 'form-error', text: 'Fix the marked fields first: ' + errors.map((e) => e.message).join('; ') }));
      return;
    }
    const connection = currentConnection();
    if (!connection) {
      output.replaceChildren(errorBox({ code: 'invalid-input', message: 'choose a connection at the top first (or create one on the Connections page)' }));
      return;
    }
    Object.assign(input, override);
    runButton.disabled = true;
    output.replaceChildren(el('p', { class: 'muted', text: 'running…' }));
    const started = performance.now();
    const answer = await api('POST', 'run', { connection, action: action.key, input });
    runButton.disabled = false;
    const took = el('p', { class: 'muted', text: action.label + ' · ' + Math.round(performance.now() - started) + ' ms' });
    if (answer.ok) {
      page = pageNumber;
      output.replaceChildren(took, renderOutput(answer.data.output, {
        page: recordsOf(answer.data.output) && (answer.data.output.nextPageId || pageNumber > 1) ? page : null,
        onNextPage: action.inputs.some((i) => i.key === 'nextPageId') ? (cursor) => run({ nextPageId: cursor }, page + 1) : null,
      }));
    } else {
      const error = answer.data.error;
      if (error.field && !form.markError(error.field, error.message)) extraForm?.markError(error.field, error.message);
      output.replaceChildren(took, errorBox(error));
    }
  };
  runButton.addEventListener('click', () => run());
  panel.replaceChildren(...[
    el('h2', { text: action.label }),
    el('p', { class: 'muted', text: action.description }),
    form.element,
    action.dynamicInputs ? el('div', { class: 'buttons' },
      el('button', { type: 'button', class: 'small', text: 'Load parameters', 'data-testid': 'load-inputs', onclick: loadExtra }), extraStatus) : null,
    action.dynamicInputs ? extraBox : null,
    el('div', { class: 'buttons' }, runButton),
    output].filter(Boolean));
}
