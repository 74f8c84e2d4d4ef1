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
  if (toolbar.children.length) box.append(toolbar);
  box.append(view);
  return box;
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
