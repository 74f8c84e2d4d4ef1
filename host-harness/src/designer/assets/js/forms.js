// Forms generated from input definitions.

import { currentConnection, state } from './state.js';
import { el, pretty } from './dom.js';
import { api } from './api.js';

export function isReference(text) {
  return /^\s*\{\{[^{}]+\}\}\s*$/.test(text);
}

// Builds a form for `inputs`; returns {element, collect(), setValues(values), markErrors(field, message)}.
export function buildForm(inputs, values = {}, options = {}) {
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
    // Resolves once every picked file has been read.
    ready() {
      return Promise.all(controls.map((control) => control.ready?.() ?? null));
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

export function buildControl(input, options) {
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
    case 'file': {
      // The component takes bytes as base64 text; a picked file is read here, in the browser,
      // and never leaves it except as the action's input. A flow can also hold a reference or
      // base64 text (typed into the second field).
      const picker = el('input', { id, type: 'file', 'data-testid': 'file-picker' });
      const typed = el('input', { type: 'text', autocomplete: 'off', placeholder: 'or base64 text, or a {{reference}}', 'aria-label': input.label + ' as text' });
      const status = el('span', { class: 'muted file-status', 'data-testid': 'file-status' });
      let picked = null; // { name, base64, size } once a file is read
      let reading = null;
      picker.addEventListener('change', () => {
        const file = picker.files?.[0];
        picked = null;
        if (!file) { status.textContent = ''; return; }
        status.textContent = 'reading ' + file.name + '…';
        reading = new Promise((resolve) => {
          const reader = new FileReader();
          reader.onload = () => {
            const url = String(reader.result);
            picked = { name: file.name, size: file.size, base64: url.slice(url.indexOf(',') + 1) };
            status.textContent = file.name + ' · ' + file.size + ' bytes';
            setError(null);
            options.onFilePicked?.(input, file);
            resolve();
          };
          reader.onerror = () => { status.textContent = ''; setError(input.label + ': the file could not be read'); resolve(); };
          reader.readAsDataURL(file);
        });
      });
      body = el('div', {}, picker, status, typed);
      read = () => {
        if (picked) return { value: picked.base64 };
        const text = typed.value.trim();
        if (text !== '') return { value: text };
        return input.required ? { error: required() } : { value: undefined };
      };
      write = (value) => { picked = null; picker.value = ''; status.textContent = ''; typed.value = value === undefined ? '' : String(value); };
      focus = () => picker.focus();
      // Runs wait for a file still being read.
      wrapper.ready = () => reading ?? Promise.resolve();
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
  return { input, wrapper, read, write, focus, setError, ready: wrapper.ready };
}

// A text field with suggestions from the input's data source (entity types, columns),
// loaded through the component with the current connection.
export function choicePicker(input, id, label, help, errorLine, wrapper, setError, options, field, read, write) {
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
    options.onChoice?.(input);
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
