// The flow designer. Every form on this page is built from the component's definitions
// (GET /api/definition); everything runs through the harness's JSON API.
'use strict';

const state = {
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

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A definition's Markdown as DOM nodes: **bold**, `code`, [text](https://…) links and line
// breaks, nothing more. Nothing goes through an HTML parser: every piece of text becomes a text
// node, so markup in a description shows as typed (the escaping is the DOM's own). A link is
// made only for an http(s) URL and opens in a new tab with rel="noopener noreferrer"; anything
// else, and a marker without its closing half, stays as written.
function markdown(text) {
  const fragment = document.createDocumentFragment();
  String(text ?? '').split(/\r\n|\r|\n/).forEach((line, index) => {
    if (index > 0) fragment.append(el('br'));
    fragment.append(...markdownInline(line, { bold: true, links: true }));
  });
  return fragment;
}

function markdownInline(text, allow) {
  const nodes = [];
  let plain = '';
  const flush = () => {
    if (plain) nodes.push(document.createTextNode(plain));
    plain = '';
  };
  let at = 0;
  while (at < text.length) {
    if (text[at] === '`') {
      const end = text.indexOf('`', at + 1);
      if (end > at + 1) {
        flush();
        nodes.push(el('code', { text: text.slice(at + 1, end) }));
        at = end + 1;
        continue;
      }
    } else if (allow.bold && text.startsWith('**', at)) {
      const end = text.indexOf('**', at + 2);
      if (end > at + 2) {
        flush();
        nodes.push(el('strong', {}, markdownInline(text.slice(at + 2, end), { ...allow, bold: false })));
        at = end + 2;
        continue;
      }
    } else if (allow.links && text[at] === '[') {
      const link = /^\[([^[\]]+)\]\((https?:\/\/[^\s()<>"]+)\)/i.exec(text.slice(at));
      const href = link && httpUrl(link[2]);
      if (href) {
        flush();
        nodes.push(el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, markdownInline(link[1], { ...allow, links: false })));
        at += link[0].length;
        continue;
      }
    }
    plain += text[at];
    at += 1;
  }
  flush();
  return nodes;
}

// The URL as the browser reads it, when that is an http(s) one.
function httpUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers['content-type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch('/api/' + path, options);
  } catch (problem) {
    return { ok: false, data: { error: { code: 'host', message: 'the designer server did not answer: ' + problem.message } } };
  }
  let data;
  try {
    data = await response.json();
  } catch (problem) {
    data = { error: { code: 'host', message: 'the designer server answered ' + response.status + ' without JSON' } };
  }
  return { ok: response.ok, status: response.status, data };
}

function notice(message, bad = false) {
  const box = document.getElementById('notice');
  box.textContent = message;
  box.className = bad ? 'notice bad' : 'notice';
  box.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

function errorBox(error) {
  const parts = [];
  if (error.httpStatus) parts.push('HTTP ' + error.httpStatus);
  if (error.serviceCode) parts.push(error.serviceCode);
  return el('div', { class: 'error-box', role: 'alert', 'data-testid': 'error' },
    el('span', { class: 'code', text: error.code || 'error' }), ': ',
    el('span', { class: 'message', text: error.message || '' }),
    parts.length ? el('span', { class: 'status', text: ' (' + parts.join(', ') + ')' }) : null,
    error.field ? el('div', { class: 'field-name', text: 'field: ' + error.field }) : null,
    error.hint ? el('div', { class: 'hint', text: 'hint: ' + error.hint }) : null);
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function isReference(text) {
  return /^\s*\{\{[^{}]+\}\}\s*$/.test(text);
}

function currentConnection() {
  return document.getElementById('current-connection').value || null;
}

function actionByKey(key) {
  return state.definition.actions.find((action) => action.key === key);
}

// ---------- forms generated from input definitions ----------

// Builds a form for `inputs`; returns {element, collect(), setValues(values), markErrors(field, message)}.
function buildForm(inputs, values = {}, options = {}) {
  const element = el('div', { class: 'generated-form' });
  const controls = [];
  for (const input of inputs) {
    if (input.type === 'connection') continue;
    const control = buildControl(input, options);
    controls.push(control);
    element.append(control.wrapper);
  }
  const form = {
    element,
    controls,
    collect() {
      const result = {};
      const errors = [];
      for (const control of controls) {
        control.setError(null);
        const outcome = control.read();
        if (outcome.error) {
          control.setError(outcome.error);
          errors.push({ field: control.input.key, message: outcome.error });
        } else if (outcome.value !== undefined) {
          result[control.input.key] = outcome.value;
        }
      }
      if (errors.length) {
        const first = controls.find((control) => control.input.key === errors[0].field);
        first?.focus();
      }
      return { input: result, errors };
    },
    setValues(newValues) {
      for (const control of controls) control.write(newValues[control.input.key]);
    },
    markError(field, message) {
      const control = controls.find((c) => c.input.key === field);
      if (control) control.setError(message);
      return Boolean(control);
    },
    clearErrors() {
      for (const control of controls) control.setError(null);
    },
  };
  form.setValues(values);
  return form;
}

function buildControl(input, options) {
  const id = 'in-' + Math.random().toString(36).slice(2, 10);
  const label = el('label', { for: id }, input.label, input.required ? el('span', { class: 'required', title: 'required' }, ' *') : null);
  const help = el('div', { class: 'help' });
  const helpText = [];
  if (input.comments) helpText.push(input.comments);
  if (input.example) helpText.push('Example: ' + input.example);
  help.textContent = helpText.join(' · ');
  const errorLine = el('div', { class: 'error', role: 'alert' });
  const wrapper = el('div', { class: 'field', 'data-field': input.key, 'data-type': input.type });
  const setError = (message) => {
    errorLine.textContent = message || '';
    wrapper.classList.toggle('invalid', Boolean(message));
  };
  const required = (text) => (input.required ? input.label + ' is required' : null);
  let body;
  let read;
  let write;
  let focus;
  const def = input.default ?? null;

  switch (input.type) {
    case 'boolean': {
      const box = el('input', { id, type: 'checkbox' });
      body = el('div', {}, box, el('span', { class: 'muted', text: def !== null ? ' default: ' + def : '' }));
      read = () => {
        const defaultValue = def === 'true';
        if (box.checked === defaultValue && !input.required) return { value: undefined };
        return { value: box.checked };
      };
      write = (value) => { box.checked = value === undefined ? def === 'true' : value === true || value === 'true'; };
      focus = () => box.focus();
      break;
    }
    case 'number': {
      const field = el('input', { id, inputmode: 'decimal', placeholder: def ?? '' });
      body = field;
      read = () => {
        const text = field.value.trim();
        if (text === '') return input.required ? { error: required() } : { value: undefined };
        if (isReference(text)) return { value: text };
        const number = Number(text);
        if (!Number.isFinite(number)) return { error: input.label + ' must be a number; got "' + text + '"' };
        return { value: number };
      };
      write = (value) => { field.value = value === undefined ? (def ?? '') : String(value); };
      focus = () => field.focus();
      break;
    }
    case 'code': {
      const area = el('textarea', { id, class: 'code', spellcheck: 'false', placeholder: input.example ?? '' });
      const format = el('button', { type: 'button', class: 'small', text: 'Format JSON', onclick: () => {
        try { area.value = pretty(JSON.parse(area.value)); setError(null); } catch (problem) { setError(input.label + ' is not valid JSON: ' + problem.message); }
      } });
      body = el('div', {}, area, el('div', { class: 'buttons' }, format));
      // Checked when the form is run (not on blur: a message appearing while the pointer is on
      // its way to Run would move the button away from under it).
      read = () => {
        const text = area.value.trim();
        if (text === '') return input.required ? { error: required() } : { value: undefined };
        if (isReference(text)) return { value: text };
        try { return { value: JSON.parse(text) }; } catch (problem) { return { error: input.label + ' is not valid JSON: ' + problem.message }; }
      };
      write = (value) => {
        if (value === undefined) area.value = def ?? '';
        else area.value = typeof value === 'string' && isReference(value) ? value : pretty(value);
      };
      focus = () => area.focus();
      break;
    }
    case 'picklist': {
      if (input.dataSource) {
        return choicePicker(input, id, label, help, errorLine, wrapper, setError, options);
      }
      const select = el('select', { id },
        el('option', { value: '', text: def ? '(default: ' + def + ')' : '—' }),
        input.choices.map((choice) => el('option', { value: choice.value, text: choice.label })));
      body = select;
      read = () => {
        if (select.value === '') return input.required && !def ? { error: required() } : { value: undefined };
        return { value: select.value };
      };
      write = (value) => { select.value = value === undefined ? '' : String(value); };
      focus = () => select.focus();
      break;
    }
    case 'string-list': {
      const field = el('input', { id, placeholder: input.example ?? 'one, two, three' });
      body = field;
      read = () => {
        const text = field.value.trim();
        if (text === '') return input.required ? { error: required() } : { value: undefined };
        if (isReference(text)) return { value: text };
        return { value: text.split(/[,\n]/).map((item) => item.trim()).filter(Boolean) };
      };
      write = (value) => {
        if (value === undefined) field.value = def ?? '';
        else field.value = Array.isArray(value) ? value.join(', ') : String(value);
      };
      focus = () => field.focus();
      if (input.dataSource) {
        return choicePicker(input, id, label, help, errorLine, wrapper, setError, options, field, read, write);
      }
      break;
    }
    case 'key-value-list': {
      const rows = el('div', { class: 'kv-rows' });
      const addRow = (key = '', value = '') => {
        const keyField = el('input', { placeholder: 'name', value: key, class: 'kv-key' });
        const valueField = el('input', { placeholder: 'value', value: value, class: 'kv-value' });
        const row = el('div', { class: 'kv-row' }, keyField, valueField,
          el('button', { type: 'button', class: 'small', text: 'Remove', onclick: () => row.remove() }));
        rows.append(row);
      };
      body = el('div', { id }, rows, el('button', { type: 'button', class: 'small', text: 'Add pair', 'data-testid': 'add-pair', onclick: () => addRow() }));
      read = () => {
        const result = {};
        let count = 0;
        for (const row of rows.querySelectorAll('.kv-row')) {
          const key = row.querySelector('.kv-key').value.trim();
          const value = row.querySelector('.kv-value').value;
          if (key === '' && value === '') continue;
          if (key === '') return { error: input.label + ': a value without a name' };
          if (Object.hasOwn(result, key)) return { error: input.label + ': "' + key + '" is given twice' };
          result[key] = value;
          count += 1;
        }
        if (count === 0) return input.required ? { error: required() } : { value: undefined };
        return { value: result };
      };
      write = (value) => {
        rows.replaceChildren();
        if (value && typeof value === 'object') {
          const pairs = Array.isArray(value) ? value.map((p) => [p.key, p.value]) : Object.entries(value);
          for (const [key, item] of pairs) addRow(key, typeof item === 'string' ? item : JSON.stringify(item));
        }
        if (!rows.children.length) addRow();
      };
      focus = () => rows.querySelector('input')?.focus();
      break;
    }
    case 'multiline': {
      const area = el('textarea', { id, placeholder: input.example ?? '' });
      body = area;
      read = () => (area.value.trim() === '' ? (input.required ? { error: required() } : { value: undefined }) : { value: area.value });
      write = (value) => { area.value = value === undefined ? (def ?? '') : String(value); };
      focus = () => area.focus();
      break;
    }
    default: { // text, secret
      const field = el('input', { id, type: input.type === 'secret' ? 'password' : 'text', autocomplete: 'off', placeholder: options.secretPlaceholder && input.type === 'secret' ? options.secretPlaceholder : (input.example ?? '') });
      body = field;
      read = () => {
        const text = field.value.trim();
        if (text === '') {
          if (input.required && !(input.type === 'secret' && options.secretsKept)) return { error: required() };
          return { value: undefined };
        }
        return { value: input.type === 'secret' ? field.value : text };
      };
      write = (value) => { field.value = value === undefined ? (def ?? '') : String(value); };
      focus = () => field.focus();
      if (input.dataSource) {
        return choicePicker(input, id, label, help, errorLine, wrapper, setError, options, field, read, write);
      }
    }
  }
  wrapper.append(label, body, help, errorLine);
  return { input, wrapper, read, write, focus, setError };
}

// A text field with suggestions from the input's data source (entity types, columns),
// loaded through the component with the current connection.
function choicePicker(input, id, label, help, errorLine, wrapper, setError, options, field, read, write) {
  if (!field) {
    field = el('input', { id, autocomplete: 'off' });
    read = () => {
      const text = field.value.trim();
      if (text === '') return input.required ? { error: input.label + ' is required' } : { value: undefined };
      return { value: text };
    };
    write = (value) => { field.value = value === undefined ? (input.default ?? '') : String(value); };
  }
  const picker = el('select', { class: 'choices', 'data-testid': 'choices', hidden: true, 'aria-label': input.label + ' choices' });
  picker.addEventListener('change', () => {
    if (!picker.value) return;
    if (input.type === 'string-list') {
      const current = field.value.split(',').map((item) => item.trim()).filter(Boolean);
      if (!current.includes(picker.value)) current.push(picker.value);
      field.value = current.join(', ');
    } else {
      field.value = picker.value;
    }
    picker.value = '';
    setError(null);
  });
  const status = el('span', { class: 'muted choice-status' });
  const load = async () => {
    const connection = currentConnection();
    if (!connection) { status.textContent = 'choose a connection to list choices'; return; }
    const source = state.definition.dataSources.find((s) => s.key === input.dataSource);
    const dependsOn = {};
    for (const sourceInput of source?.inputs ?? []) {
      if (sourceInput.type === 'connection') continue;
      const value = options.valueOf?.(sourceInput.key);
      if (value === undefined || value === '') {
        status.textContent = 'fill ' + sourceInput.label + ' first';
        return;
      }
      dependsOn[sourceInput.key] = value;
    }
    status.textContent = 'loading…';
    const answer = await api('POST', 'choices', { connection, dataSource: input.dataSource, input: dependsOn });
    if (!answer.ok) { status.textContent = answer.data.error?.message ?? 'could not list choices'; return; }
    picker.replaceChildren(
      el('option', { value: '', text: 'pick one of ' + answer.data.choices.length + ' ' + (source?.label ?? 'choices').toLowerCase() + '…' }),
      ...answer.data.choices.map((choice) => el('option', { value: choice.value, text: choice.label })));
    picker.hidden = false;
    status.textContent = answer.data.choices.length + ' choices';
  };
  const button = el('button', { type: 'button', class: 'small', text: 'List', title: 'List choices from ' + input.dataSource, 'data-testid': 'load-choices', onclick: load });
  wrapper.append(label, el('div', { class: 'picker' }, field, button), picker, status, help, errorLine);
  return { input, wrapper, read, write, focus: () => field.focus(), setError };
}

// ---------- output rendering ----------

function recordsOf(output) {
  if (Array.isArray(output) && output.every((row) => row && typeof row === 'object' && !Array.isArray(row))) return output;
  if (output && typeof output === 'object') {
    for (const key of ['records', 'value', 'results', 'items']) {
      const rows = output[key];
      if (Array.isArray(rows) && rows.every((row) => row && typeof row === 'object' && !Array.isArray(row))) return rows;
    }
  }
  return null;
}

function renderOutput(output, { onNextPage, page } = {}) {
  const box = el('div', { class: 'output', 'data-testid': 'output' });
  const records = recordsOf(output);
  const toolbar = el('div', { class: 'toolbar' });
  const view = el('div');
  const showJson = () => view.replaceChildren(el('pre', { class: 'json', 'data-testid': 'output-json', text: pretty(output) }));
  const showTable = () => view.replaceChildren(recordTable(records));
  if (records) {
    const summary = [records.length + ' record' + (records.length === 1 ? '' : 's')];
    if (page) summary.push('page ' + page);
    if (output.count !== undefined && output.count !== null) summary.push(output.count + ' in all');
    if (output.truncated) summary.push('stopped at the record cap');
    toolbar.append(el('span', { class: 'summary', 'data-testid': 'output-summary', text: summary.join(' · ') }),
      el('button', { type: 'button', class: 'small', text: 'Table', onclick: showTable }),
      el('button', { type: 'button', class: 'small', text: 'JSON', onclick: showJson }));
    showTable();
  } else {
    showJson();
  }
  const cursor = output && typeof output === 'object' ? (output.nextPageId || output.nextLink) : null;
  if (cursor && onNextPage) {
    toolbar.append(el('button', { type: 'button', class: 'small primary', text: 'Next page', 'data-testid': 'next-page', onclick: () => onNextPage(cursor) }));
  }
  if (toolbar.children.length) box.append(toolbar);
  box.append(view);
  return box;
}

function recordTable(records) {
  const columns = [];
  for (const record of records.slice(0, 200)) {
    for (const key of Object.keys(record)) {
      if (!key.includes('@') && !columns.includes(key)) columns.push(key);
    }
  }
  const cell = (value) => {
    if (value === null || value === undefined) return '';
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  };
  const table = el('table', { class: 'records', 'data-testid': 'records' },
    el('thead', {}, el('tr', {}, columns.map((column) => el('th', { text: column })))),
    el('tbody', {}, records.map((record) => el('tr', {}, columns.map((column) => {
      const text = cell(record[column]);
      return el('td', { text, title: text });
    })))));
  return el('div', { class: 'table-wrap' }, table);
}

// ---------- connections page ----------

function connectionTypeLabel(key) {
  return state.definition.connections.find((c) => c.key === key)?.label ?? key;
}

async function refreshConnections(select) {
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

function renderConnectionList() {
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

let connectionForm = null;

function renderConnectionFields(values = {}, options = {}) {
  const type = document.getElementById('connection-type').value;
  const definition = state.definition.connections.find((c) => c.key === type);
  document.getElementById('connection-type-help').replaceChildren(markdown(definition?.description ?? ''));
  connectionForm = buildForm(definition?.inputs ?? [], values, options);
  document.getElementById('connection-fields').replaceChildren(connectionForm.element);
}

function editConnection(connection) {
  document.getElementById('connection-form-title').textContent = 'Edit ' + connection.name;
  document.getElementById('connection-name').value = connection.name;
  document.getElementById('connection-type').value = connection.type;
  const values = {};
  for (const [key, value] of Object.entries(connection.fields)) {
    if (typeof value === 'string') values[key] = value;
  }
  renderConnectionFields(values, { secretsKept: true, secretPlaceholder: 'unchanged unless typed' });
}

function setupConnectionsPage() {
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

// ---------- actions page ----------

function setupActionsPage() {
  const search = document.getElementById('action-search');
  search.addEventListener('input', renderActionList);
  renderActionList();
}

function groupedActions(filter = '') {
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

function renderActionList() {
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

function openAction(key, values = {}) {
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
  form = buildForm(action.inputs, values, { valueOf });
  state.actionForm = form;
  const output = el('div', { id: 'action-output' });
  const runButton = el('button', { type: 'button', class: 'primary', text: 'Run', 'data-testid': 'run-action' });
  let page = 1;
  const run = async (override = {}, pageNumber = 1) => {
    const { input, errors } = form.collect();
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
      if (error.field) form.markError(error.field, error.message);
      output.replaceChildren(took, errorBox(error));
    }
  };
  runButton.addEventListener('click', () => run());
  panel.replaceChildren(
    el('h2', { text: action.label }),
    el('p', { class: 'muted', text: action.description }),
    form.element,
    el('div', { class: 'buttons' }, runButton),
    output);
}

// ---------- flow page ----------

function actionOptions(selected) {
  const options = [];
  for (const [group, actions] of groupedActions()) {
    options.push(el('optgroup', { label: group }, actions.map((action) => el('option', { value: action.key, text: action.label, selected: action.key === selected }))));
  }
  return options;
}

function addStep(step = {}) {
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

function stepReferenceHints(index) {
  const hints = [];
  for (const previous of state.flowSteps.slice(0, index)) {
    const example = actionByKey(previous.action)?.exampleOutput;
    const keys = example && typeof example === 'object' && !Array.isArray(example) ? Object.keys(example).filter((k) => !k.includes('@')).slice(0, 6) : [];
    for (const key of keys) hints.push('{{' + previous.name + '.' + key + '}}');
  }
  return hints;
}

function renderSteps() {
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

function moveStep(index, delta) {
  const [step] = state.flowSteps.splice(index, 1);
  state.flowSteps.splice(index + delta, 0, step);
  renderSteps();
}

// Reads every step; marks the fields at fault. Returns the flow or null.
function collectFlow() {
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

function showStepResults(results) {
  results.forEach((result, index) => {
    const step = state.flowSteps[index];
    if (!step) return;
    step.resultEl.replaceChildren(stepResultView(result));
  });
}

function stepResultView(result) {
  const badgeClass = result.status === 'succeeded' ? 'good' : result.status === 'failed' ? 'bad' : '';
  const view = el('div', { class: 'step-result ' + result.status, 'data-status': result.status },
    el('div', {}, el('strong', { text: result.name }), ' ', el('span', { class: 'badge ' + badgeClass, text: result.status }),
      el('span', { class: 'muted', text: ' ' + result.action + (result.millis !== undefined ? ' · ' + result.millis + ' ms' : '') })));
  if (result.input) view.append(el('details', {}, el('summary', { text: 'input sent' }), el('pre', { class: 'json', text: pretty(result.input) })));
  if (result.output !== undefined) view.append(renderOutput(result.output));
  if (result.error) view.append(errorBox(result.error));
  return view;
}

async function runFlow() {
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

function saveFlow() {
  const flow = collectFlow();
  if (!flow) return;
  const blob = new Blob([pretty(flow) + '\n'], { type: 'application/json' });
  const link = el('a', { href: URL.createObjectURL(blob), download: (flow.name.replace(/[^A-Za-z0-9_-]+/g, '-') || 'flow') + '.json' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function loadFlow(flow) {
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

// ---------- trigger ----------


function renderTrigger(saved) {
  const box = document.getElementById('trigger-box');
  const triggers = state.definition.triggers;
  const select = el('select', { 'data-testid': 'trigger-select' },
    el('option', { value: '', text: 'None: run by hand' }),
    triggers.map((t) => el('option', { value: t.key, text: t.label, selected: saved?.key === t.key })));
  const formSlot = el('div');
  const status = el('div', { class: 'trigger-status', 'data-testid': 'trigger-status' });
  const buttons = el('div', { class: 'buttons' });
  const draw = () => {
    const trigger = triggers.find((t) => t.key === select.value);
    state.triggerForm = trigger ? buildForm(trigger.inputs, saved?.key === trigger.key ? saved.config ?? {} : {}) : null;
    state.triggerKey = trigger?.key ?? null;
    // Polling triggers run on the designer's schedule: how often is the designer's own input.
    state.pollEvery = trigger?.kind === 'polling'
      ? el('input', { id: 'poll-every', inputmode: 'numeric', value: String(saved?.intervalSeconds ?? 60), 'data-testid': 'poll-every' })
      : null;
    const every = state.pollEvery
      ? el('div', { class: 'field', 'data-field': 'intervalSeconds' },
        el('label', { for: 'poll-every' }, 'Poll every (seconds) ', el('span', { class: 'required' }, '*')),
        state.pollEvery, el('div', { class: 'help', text: 'The designer polls now and then at this interval while listening (1 to 86400).' }),
        el('div', { class: 'error', role: 'alert' }))
      : '';
    formSlot.replaceChildren(trigger ? el('p', { class: 'muted', text: trigger.description + (trigger.kind === 'webhook' ? ' The designer registers it with the environment and receives it.' : '') }) : '', state.triggerForm?.element ?? '', every);
    buttons.replaceChildren();
    if (trigger) {
      buttons.append(
        el('button', { type: 'button', class: 'primary', text: 'Start listening', 'data-testid': 'trigger-start', onclick: startTrigger }),
        el('button', { type: 'button', text: 'Stop', 'data-testid': 'trigger-stop', onclick: stopTrigger }));
    }
  };
  select.addEventListener('change', () => { saved = null; draw(); });
  box.replaceChildren(el('h3', { text: 'Trigger' }), select, formSlot, buttons, status);
  draw();
  refreshTriggerStatus();
}

function collectTrigger(strict) {
  if (!state.triggerForm) return null;
  const { input, errors } = strict ? state.triggerForm.collect() : { input: quietValues(state.triggerForm), errors: [] };
  if (errors.length) return undefined;
  const trigger = { key: state.triggerKey, config: input };
  if (state.pollEvery) {
    const text = state.pollEvery.value.trim();
    const seconds = Number(text);
    const wrapper = state.pollEvery.closest('.field');
    const bad = !/^\d+$/.test(text) || seconds < 1 || seconds > 86400;
    wrapper.classList.toggle('invalid', bad && strict);
    wrapper.querySelector('.error').textContent = bad && strict ? 'Poll every must be a whole number of seconds from 1 to 86400' : '';
    if (bad && strict) return undefined;
    if (!bad) trigger.intervalSeconds = seconds;
  }
  return trigger;
}

function quietValues(form) {
  const values = {};
  for (const control of form.controls) {
    const read = control.read();
    if (!read.error && read.value !== undefined) values[control.input.key] = read.value;
  }
  return values;
}

async function startTrigger() {
  const status = document.querySelector('[data-testid="trigger-status"]');
  const trigger = collectTrigger(true);
  if (trigger === undefined) return;
  const flow = collectFlow();
  if (!flow) return;
  const connection = currentConnection();
  if (!connection) { status.replaceChildren(errorBox({ code: 'invalid-input', message: 'choose a connection at the top first' })); return; }
  status.replaceChildren(el('span', { class: 'muted', text: 'registering…' }));
  const button = document.querySelector('[data-testid="trigger-start"]');
  button.disabled = true;
  const answer = await api('POST', 'trigger/start', { connection, trigger: trigger.key, config: trigger.config, intervalSeconds: trigger.intervalSeconds, flow });
  button.disabled = false;
  if (!answer.ok) { status.replaceChildren(errorBox(answer.data.error)); return; }
  showTriggerStatus(answer.data);
}

async function stopTrigger() {
  const answer = await api('POST', 'trigger/stop', {});
  if (!answer.ok) notice(answer.data.error?.message ?? 'could not stop the trigger', true);
  refreshTriggerStatus();
}

async function refreshTriggerStatus() {
  const answer = await api('GET', 'trigger');
  if (answer.ok) showTriggerStatus(answer.data);
}

function showTriggerStatus(data) {
  const status = document.querySelector('[data-testid="trigger-status"]');
  if (!status) return;
  if (data.armed) {
    const how = data.webhookUrl
      ? data.trigger + ' registered with ' + data.connection + ' for ' + data.webhookUrl
      : data.trigger + ' polling ' + data.connection + ' every ' + data.intervalSeconds + ' s';
    status.replaceChildren(el('div', { class: 'ok-box', 'data-testid': 'listening', text: 'Listening: ' + how + '; events run "' + data.flow + '".' }));
  } else {
    status.replaceChildren(el('span', { class: 'muted', text: 'Not listening.' }));
  }
}

async function watchEvents() {
  for (;;) {
    const answer = await api('GET', 'events?after=' + state.eventsRevision);
    if (!answer.ok) { await new Promise((resolve) => setTimeout(resolve, 2000)); continue; }
    if (answer.data.revision !== state.eventsRevision) {
      state.eventsRevision = answer.data.revision;
      renderEvents(answer.data.events);
    }
  }
}

function renderEvents(events) {
  const box = document.getElementById('events');
  if (!events.length) return;
  box.replaceChildren(...events.slice().reverse().map((record) => {
    const event = record.event ?? {};
    const badgeClass = record.status === 'succeeded' ? 'good' : record.status === 'failed' ? 'bad' : 'running';
    return el('div', { class: 'event', 'data-testid': 'event', 'data-status': record.status },
      el('div', {}, el('strong', { text: '#' + record.id + ' ' + (event.message ?? 'New or updated') + ' ' + (event.table ?? '') }), ' ',
        el('span', { class: 'badge ' + badgeClass, text: record.status }),
        el('span', { class: 'muted', text: ' ' + record.receivedAt + (event.recordId ? ' · ' + event.recordId : '') })),
      el('details', {}, el('summary', { text: 'event' }), el('pre', { class: 'json', text: pretty(event) })),
      record.error ? errorBox(record.error) : null,
      (record.steps ?? []).map(stepResultView));
  }));
}

// ---------- navigation ----------

function route() {
  let hash;
  try {
    hash = decodeURIComponent(location.hash.slice(1));
  } catch (problem) {
    hash = location.hash.slice(1);
  }
  const [page, ...rest] = hash.split('/');
  const name = ['connections', 'actions', 'flow'].includes(page) ? page : 'connections';
  for (const section of document.querySelectorAll('.page')) section.hidden = section.id !== 'page-' + name;
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.page === name);
  if (name === 'actions' && rest[0] && rest[0] !== state.action?.key) openAction(rest[0]);
  if (name === 'connections' && rest[0] === 'signed-in') {
    notice('Signed in: ' + rest.slice(1).join('/'));
    history.replaceState(null, '', '#connections');
    refreshConnections();
  } else if (name === 'connections' && rest[0] === 'sign-in-failed') {
    notice('Sign-in failed: ' + rest.slice(1).join('/'), true);
    history.replaceState(null, '', '#connections');
  }
}

async function start() {
  const [definition, presets] = await Promise.all([api('GET', 'definition'), api('GET', 'presets')]);
  if (!definition.ok) {
    notice(definition.data.error?.message ?? 'could not read the component definition', true);
    clearTimeout(notice.timer);
    return;
  }
  state.definition = definition.data;
  state.presets = presets.ok ? presets.data : [];
  document.getElementById('brand-icon').src = state.definition.icon;
  document.getElementById('brand-name').textContent = state.definition.name;
  document.getElementById('brand-version').textContent = 'v' + state.definition.version + ' · flow designer';
  const current = document.getElementById('current-connection');
  current.addEventListener('change', () => localStorage.setItem('designer.connection', current.value));
  await refreshConnections(localStorage.getItem('designer.connection') ?? undefined);
  setupConnectionsPage();
  setupActionsPage();
  renderTrigger(null);
  addStep({ name: 'step1', action: 'query-entities' });
  document.getElementById('flow-add-step').addEventListener('click', () => addStep());
  document.getElementById('flow-run').addEventListener('click', runFlow);
  document.getElementById('flow-save').addEventListener('click', saveFlow);
  document.getElementById('flow-load').addEventListener('change', async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      loadFlow(JSON.parse(await file.text()));
      notice('Loaded flow from ' + file.name);
    } catch (problem) {
      document.getElementById('flow-error').replaceChildren(errorBox({ code: 'invalid-input', message: file.name + ': ' + problem.message }));
    }
    event.target.value = '';
  });
  window.addEventListener('hashchange', route);
  route();
  document.body.dataset.ready = 'true';
  watchEvents();
}

start();
