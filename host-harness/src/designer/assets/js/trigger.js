// The trigger: arming it with the flow, and the events it receives.

import { currentConnection, state } from './state.js';
import { el, errorBox, notice, pretty } from './dom.js';
import { api } from './api.js';
import { buildForm } from './forms.js';
import { collectFlow, stepResultView } from './flow.js';

export function renderTrigger(saved) {
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

export function collectTrigger(strict) {
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

export function quietValues(form) {
  const values = {};
  for (const control of form.controls) {
    const read = control.read();
    if (!read.error && read.value !== undefined) values[control.input.key] = read.value;
  }
  return values;
}

export async function startTrigger() {
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

export async function stopTrigger() {
  const answer = await api('POST', 'trigger/stop', {});
  if (!answer.ok) notice(answer.data.error?.message ?? 'could not stop the trigger', true);
  refreshTriggerStatus();
}

export async function refreshTriggerStatus() {
  const answer = await api('GET', 'trigger');
  if (answer.ok) showTriggerStatus(answer.data);
}

export function showTriggerStatus(data) {
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

export async function watchEvents() {
  for (;;) {
    const answer = await api('GET', 'events?after=' + state.eventsRevision);
    if (!answer.ok) { await new Promise((resolve) => setTimeout(resolve, 2000)); continue; }
    if (answer.data.revision !== state.eventsRevision) {
      state.eventsRevision = answer.data.revision;
      renderEvents(answer.data.events);
    }
  }
}

export function renderEvents(events) {
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
