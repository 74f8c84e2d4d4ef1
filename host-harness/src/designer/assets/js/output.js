// Action outputs: record lists as tables with paging, anything else as JSON.

import { el, pretty } from './dom.js';

export function recordsOf(output) {
  if (Array.isArray(output) && output.every((row) => row && typeof row === 'object' && !Array.isArray(row))) return output;
  if (output && typeof output === 'object') {
    for (const key of ['records', 'value', 'results', 'items']) {
      const rows = output[key];
      if (Array.isArray(rows) && rows.every((row) => row && typeof row === 'object' && !Array.isArray(row))) return rows;
    }
  }
  return null;
}

export function renderOutput(output, { onNextPage, page } = {}) {
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
  const file = fileOf(output);
  if (file) {
    const link = el('a', { class: 'button small primary', 'data-testid': 'download-file', download: file.name, text: 'Download ' + file.name });
    link.href = URL.createObjectURL(file.blob);
    toolbar.append(link);
  }
  if (toolbar.children.length) box.append(toolbar);
  box.append(view);
  return box;
}

// A downloaded file in an output: base64 content next to its file name (Download File or Image,
// a note's attachment), offered as a link instead of only a long string.
export function fileOf(output) {
  if (!output || typeof output !== 'object' || Array.isArray(output)) return null;
  const content = output.contentBase64 ?? output.content ?? output.documentBody;
  const name = output.fileName ?? output.filename;
  if (typeof content !== 'string' || typeof name !== 'string') return null;
  let bytes;
  try {
    const text = atob(content);
    bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i);
  } catch {
    return null;
  }
  const type = output.mimeType ?? output.mimetype ?? 'application/octet-stream';
  return { name, blob: new Blob([bytes], { type }) };
}

export function recordTable(records) {
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
