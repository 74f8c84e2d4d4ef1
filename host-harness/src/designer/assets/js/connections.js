// The Connections page: the list, the generated form, test, sign-in, delete.

import { state } from './state.js';
import { el, errorBox, markdown, notice, pretty } from './dom.js';
import { api } from './api.js';
import { buildForm } from './forms.js';

export function connectionTypeLabel(key) {
  return state.definition.connections.find((c) => c.key === key)?.label ?? key;
}

export async function refreshConnections(select) {
  const answer = await api('GET', 'connections');
  if (!answer.ok) { notice(answer.data.error?.message ?? 'could not list connections', true); return; }
  state.connections = answer.data;
  const current = document.getElementById('current-connection');
  const previous = select ?? current.value;
  current.replaceChildren(
    el('option', { value: '', text: state.connections.length ? '— choose —' : 'no connections yet' }),
    ...state.connections.map((c) => el('option', { value: c.name, text: c.name })));
  if (state.connections.some((c) => c.name === previous)) current.value = previous;
  else if (state.connections.length === 1) current.value = state.connections[0].name;
  localStorage.setItem('designer.connection', current.value);
  renderConnectionList();
}

export function renderConnectionList() {
  const list = document.getElementById('connection-list');
  if (!state.connections.length) {
    list.replaceChildren(el('p', { class: 'muted', text: 'No connections yet. Create one with the form.' }));
    return;
  }
  list.replaceChildren(...state.connections.map((connection) => {
    const definition = state.definition.connections.find((c) => c.key === connection.type);
    const authCode = definition?.kind === 'oauth2-authorization-code';
    let badge;
    if (connection.signedIn) badge = el('span', { class: 'badge good', 'data-testid': 'status', text: 'signed in' + (connection.expiresAt ? ' until ' + connection.expiresAt : '') });
    else if (authCode) badge = el('span', { class: 'badge bad', 'data-testid': 'status', text: 'not signed in' });
    else badge = el('span', { class: 'badge', 'data-testid': 'status', text: 'token on first use' });
    const fields = el('dl');
    for (const [key, value] of Object.entries(connection.fields)) {
      const label = definition?.inputs.find((i) => i.key === key)?.label ?? key;
      const shown = value && typeof value === 'object' ? (value.set ? 'set (hidden)' : 'not set') : value;
      fields.append(el('dt', { text: label }), el('dd', { text: shown }));
    }
    const result = state.connectionResults.get(connection.name) ?? el('div', { class: 'result' });
    state.connectionResults.set(connection.name, result);
    const card = el('div', { class: 'card', 'data-connection': connection.name },
      el('div', { class: 'title' }, el('strong', { text: connection.name }), badge),
      el('div', { class: 'muted', text: connectionTypeLabel(connection.type) }),
      fields,
      el('div', { class: 'buttons' },
        el('button', { type: 'button', text: 'Test', 'data-testid': 'test-connection', onclick: async (event) => {
          event.target.disabled = true;
          result.replaceChildren(el('span', { class: 'muted', text: 'testing…' }));
          const answer = await api('POST', 'connections/' + encodeURIComponent(connection.name) + '/test', {});
          event.target.disabled = false;
          if (answer.ok) {
            const output = answer.data.output;
            const text = typeof output === 'string' ? output
              : output.userName ? 'Connected to ' + output.environment + ' as ' + output.userName + (output.businessUnitName ? ' (' + output.businessUnitName + ')' : '') + ', Web API ' + output.apiVersion
                : pretty(output);
            result.replaceChildren(el('div', { class: 'ok-box', 'data-testid': 'test-result', text }));
          } else {
            result.replaceChildren(errorBox(answer.data.error));
          }
          refreshConnections();
        } }),
        authCode ? el('button', { type: 'button', class: 'primary', text: 'Sign in', 'data-testid': 'sign-in', onclick: async () => {
          const answer = await api('POST', 'connections/' + encodeURIComponent(connection.name) + '/sign-in', {});
          if (answer.ok) window.location.assign(answer.data.url);
          else result.replaceChildren(errorBox(answer.data.error));
        } }) : null,
        el('button', { type: 'button', text: 'Edit', onclick: () => editConnection(connection) }),
        el('button', { type: 'button', text: 'Delete', onclick: async () => {
          if (!confirm('Delete connection ' + connection.name + ' and forget its tokens?')) return;
          const answer = await api('DELETE', 'connections/' + encodeURIComponent(connection.name), {});
          if (!answer.ok) notice(answer.data.error.message, true);
          refreshConnections();
        } })),
      result);
    return card;
  }));
}

export let connectionForm = null;

export function renderConnectionFields(values = {}, options = {}) {
  const type = document.getElementById('connection-type').value;
  const definition = state.definition.connections.find((c) => c.key === type);
  document.getElementById('connection-type-help').replaceChildren(markdown(definition?.description ?? ''));
  connectionForm = buildForm(definition?.inputs ?? [], values, options);
  document.getElementById('connection-fields').replaceChildren(connectionForm.element);
}

export function editConnection(connection) {
  document.getElementById('connection-form-title').textContent = 'Edit ' + connection.name;
  document.getElementById('connection-name').value = connection.name;
  document.getElementById('connection-type').value = connection.type;
  const values = {};
  for (const [key, value] of Object.entries(connection.fields)) {
    if (typeof value === 'string') values[key] = value;
  }
  renderConnectionFields(values, { secretsKept: true, secretPlaceholder: 'unchanged unless typed' });
}

export function setupConnectionsPage() {
  const typeSelect = document.getElementById('connection-type');
  typeSelect.replaceChildren(...state.definition.connections.map((c) => el('option', { value: c.key, text: c.label })));
  typeSelect.value = 'oauth2-client-credentials';
  typeSelect.addEventListener('change', () => renderConnectionFields());
  renderConnectionFields();
  const presets = document.getElementById('presets');
  for (const preset of state.presets) {
    presets.append(el('button', { type: 'button', class: 'small', text: 'Fill: ' + preset.label, 'data-testid': 'preset', onclick: () => {
      typeSelect.value = preset.type;
      renderConnectionFields(preset.fields);
      const name = document.getElementById('connection-name');
      if (!name.value) name.value = preset.type === 'oauth2-auth-code' ? 'emulator-user' : 'emulator';
    } }));
  }
  document.getElementById('connection-form-reset').addEventListener('click', () => {
    document.getElementById('connection-form-title').textContent = 'New connection';
    document.getElementById('connection-name').value = '';
    renderConnectionFields();
  });
  document.getElementById('connection-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const formError = document.getElementById('connection-form-error');
    formError.replaceChildren();
    const nameField = document.querySelector('[data-field="name"]');
    nameField.classList.remove('invalid');
    nameField.querySelector('.error').textContent = '';
    const name = document.getElementById('connection-name').value.trim();
    const { input, errors } = connectionForm.collect();
    if (!name) {
      nameField.classList.add('invalid');
      nameField.querySelector('.error').textContent = 'Name is required';
    }
    if (!name || errors.length) return;
    const fields = {};
    for (const [key, value] of Object.entries(input)) fields[key] = typeof value === 'string' ? value : String(value);
    const answer = await api('POST', 'connections', { name, type: typeSelect.value, fields });
    if (!answer.ok) {
      const error = answer.data.error;
      if (!(error.field && connectionForm.markError(error.field, error.message))) formError.replaceChildren(errorBox(error));
      return;
    }
    notice('Connection ' + name + ' saved.');
    document.getElementById('connection-form-title').textContent = 'New connection';
    document.getElementById('connection-name').value = '';
    renderConnectionFields();
    await refreshConnections(name);
  });
}
