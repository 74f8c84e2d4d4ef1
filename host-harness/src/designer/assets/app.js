// The flow designer. Every form on this page is built from the component's definitions
// (GET /api/definition); everything runs through the harness's JSON API.
// The entry module: the modules under /js/ hold the pages and helpers.

import { state } from '/js/state.js';
import { errorBox, markdown, notice } from '/js/dom.js';
import { api } from '/js/api.js';
import { refreshConnections, setupConnectionsPage } from '/js/connections.js';
import { openAction, setupActionsPage } from '/js/actions.js';
import { addStep, loadFlow, runFlow, saveFlow } from '/js/flow.js';
import { renderTrigger, watchEvents } from '/js/trigger.js';

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

// Module scope hides the Markdown renderer; the browser tests call it on hostile text.
window.markdown = markdown;

start();
