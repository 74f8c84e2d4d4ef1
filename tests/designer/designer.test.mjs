// The flow designer in a real headless Chromium: everything a person does in it, checked against
// the emulator's own data. `run.sh` builds the harness; DYNAMICS_BIN points at it.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const bin = process.env.DYNAMICS_BIN;
const shots = resolve(process.env.SCREENSHOT_DIR ?? '../../artifacts/designer');
const work = mkdtempSync(join(tmpdir(), 'designer-test-'));
mkdirSync(shots, { recursive: true });

let harness;
let browser;
let page;
let designerUrl;
let designerKey;
let emulatorBase;
let presets;
const apiRuns = [];

async function startHarness() {
  harness = spawn(bin, ['--token-store', join(work, 'tokens.json'), 'designer', '--port', '0', '--rows', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  harness.stderr.on('data', (chunk) => { output += chunk; });
  await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error('the designer did not start:\n' + output)), 60000);
    harness.stdout.on('data', (chunk) => {
      output += chunk;
      const designer = output.match(/^designer: (\S+)\?key=(\S+)$/m);
      const emulator = output.match(/^Dataverse emulator serving (\S+)\/api\/data\/v9\.2$/m);
      if (designer && emulator) {
        designerUrl = designer[1];
        designerKey = designer[2];
        emulatorBase = emulator[1];
        clearTimeout(timer);
        resolvePromise();
      }
    });
    harness.on('exit', (code) => reject(new Error('the designer exited with ' + code + ':\n' + output)));
  });
}

// The emulator's own view, through its Web API with a token of the preset app.
async function emulatorToken() {
  const preset = presets.find((p) => p.type === 'oauth2-client-credentials');
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: preset.fields.clientId,
    client_secret: preset.fields.clientSecret,
    scope: emulatorBase + '/.default',
  });
  const answer = await fetch(preset.fields.tokenUrl, { method: 'POST', body });
  assert.equal(answer.status, 200, 'token from the emulator');
  return (await answer.json()).access_token;
}

async function webApi(method, path, body) {
  const token = await emulatorToken();
  const answer = await fetch(emulatorBase + '/api/data/v9.2/' + path, {
    method,
    headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json', accept: 'application/json', prefer: 'return=representation' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  return { status: answer.status, body: text ? JSON.parse(text) : null };
}

async function shot(name) {
  await page.screenshot({ path: join(shots, name + '.png'), fullPage: true });
}

function field(scope, key) {
  return scope.locator(`[data-field="${key}"]`);
}

before(async () => {
  assert.ok(bin, 'DYNAMICS_BIN names the harness binary');
  await startHarness();
  presets = await designerApi('presets');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(Number(process.env.STEP_TIMEOUT_MS ?? 15000));
  page.on('pageerror', (problem) => console.error('page error:', problem.message));
  page.on('request', (request) => {
    if (request.url().includes('/api/run') || request.url().includes('/api/flows/run')) apiRuns.push(request.url());
  });
  // The printed link carries the designer's key; the page keeps it as a cookie.
  await page.goto(designerUrl + '?key=' + designerKey);
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(new URL(page.url()).search, '', 'the key leaves the address bar');
  await page.goto(designerUrl + '#connections');
  await page.waitForSelector('body[data-ready="true"]');
});

// The designer's API as a script reaches it: with the key in a header.
async function designerApi(path) {
  const answer = await fetch(designerUrl + 'api/' + path, { headers: { 'x-designer-key': designerKey } });
  assert.equal(answer.status, 200, path);
  return answer.json();
}

afterEach(async (t) => {
  if (process.env.DEBUG_SHOTS) await page.screenshot({ path: join(shots, 'debug-' + t.name.replace(/\W+/g, '-') + '.png'), fullPage: true });
});

after(async () => {
  await browser?.close();
  harness?.kill();
});

test('a connection to the emulator is created from the generated form and tested', async () => {
  const preset = presets.find((p) => p.type === 'oauth2-client-credentials');
  const form = page.getByTestId('connection-form');
  await page.fill('#connection-name', 'emulator');
  await page.selectOption('#connection-type', 'oauth2-client-credentials');
  // Every field of the connection definition is on the form, the secret one masked.
  for (const key of ['webApiUrl', 'tokenUrl', 'scopes', 'clientId', 'clientSecret', 'tenantId', 'apiVersion', 'service']) {
    assert.equal(await field(form, key).count(), 1, key + ' is on the form');
  }
  assert.equal(await field(form, 'clientSecret').locator('input').getAttribute('type'), 'password');
  assert.match(await field(form, 'clientId').locator('label').innerText(), /Client ID\s*\*/);
  await field(form, 'webApiUrl').locator('input').fill(preset.fields.webApiUrl);
  await field(form, 'tokenUrl').locator('input').fill(preset.fields.tokenUrl);
  await field(form, 'clientId').locator('input').fill(preset.fields.clientId);
  await field(form, 'clientSecret').locator('input').fill(preset.fields.clientSecret);
  await page.getByTestId('save-connection').click();
  const card = page.locator('[data-connection="emulator"]');
  await card.waitFor();
  // The secret is stored by the harness and never shown again.
  assert.ok(!(await card.innerText()).includes(preset.fields.clientSecret));
  assert.match(await card.innerText(), /set \(hidden\)/);
  const listed = JSON.stringify(await designerApi('connections'));
  assert.ok(!listed.includes(preset.fields.clientSecret), 'the API never returns the secret');
  await card.getByTestId('test-connection').click();
  const result = card.getByTestId('test-result');
  await result.waitFor();
  assert.match(await result.innerText(), /^Connected to http:\/\/127\.0\.0\.1:\d+ as .+ \(emulator\), Web API v9\.2$/);
  await card.getByText('signed in').waitFor();
  await shot('01-connections');
});

test('a missing required connection field is caught at the field, nothing saved', async () => {
  const form = page.getByTestId('connection-form');
  await page.fill('#connection-name', 'incomplete');
  await page.selectOption('#connection-type', 'oauth2-client-credentials');
  await field(form, 'webApiUrl').locator('input').fill('https://contoso.crm.dynamics.com');
  await page.getByTestId('save-connection').click();
  const error = field(form, 'clientId').locator('.error');
  assert.equal(await error.innerText(), 'Client ID is required');
  assert.equal(await field(form, 'clientSecret').locator('.error').innerText(), 'Client secret value is required');
  const listed = await designerApi('connections');
  assert.deepEqual(listed.map((c) => c.name), ['emulator']);
  await shot('02-connection-form-errors');
  await page.getByRole('button', { name: 'Clear' }).click();
});

test('a connection description renders its Markdown: bold, code, only http(s) links, no markup', async () => {
  const help = page.locator('#connection-type-help');
  await page.selectOption('#connection-type', 'oauth2-client-credentials');
  assert.deepEqual(await help.locator('strong').allInnerTexts(), ['Application User']);
  assert.ok(!(await help.innerText()).includes('**'), 'no literal ** is shown');
  await page.selectOption('#connection-type', 'oauth2-auth-code');
  assert.deepEqual(await help.locator('code').allInnerTexts(), ['user_impersonation', 'offline_access']);
  assert.ok(!(await help.innerText()).includes('`'), 'no literal backtick is shown');
  await shot('02b-connection-description');
  // The renderer on hostile text: markup stays text, a link only to http(s), never the opener.
  const rendered = await page.evaluate(() => {
    const box = document.createElement('div');
    box.append(markdown('<img src=x onerror="alert(1)"> **bold `code`** [docs](https://learn.microsoft.com/a?b=1&c=2)\n'
      + '[js](javascript:alert(1)) [data](data:text/html,x) [rel](/relative) **unclosed `open'));
    return box.innerHTML;
  });
  assert.equal(rendered,
    '&lt;img src=x onerror="alert(1)"&gt; <strong>bold <code>code</code></strong> '
    + '<a href="https://learn.microsoft.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">docs</a><br>'
    + '[js](javascript:alert(1)) [data](data:text/html,x) [rel](/relative) **unclosed `open');
  await page.getByRole('button', { name: 'Clear' }).click();
});

test('an auth-code connection signs in through the browser and the loopback redirect', async () => {
  const preset = presets.find((p) => p.type === 'oauth2-auth-code');
  await page.getByTestId('preset').filter({ hasText: 'auth code' }).click();
  await page.fill('#connection-name', 'emulator-user');
  assert.equal(await field(page.getByTestId('connection-form'), 'clientId').locator('input').inputValue(), preset.fields.clientId);
  await page.getByTestId('save-connection').click();
  const card = page.locator('[data-connection="emulator-user"]');
  await card.getByText('not signed in').waitFor();
  await card.getByTestId('sign-in').click();
  // The emulator's authorize endpoint approves at once and redirects back to the designer.
  await page.waitForURL(/#connections$/);
  await page.locator('[data-connection="emulator-user"]').getByText(/^signed in/).waitFor();
  await page.locator('[data-connection="emulator-user"]').getByTestId('test-connection').click();
  await page.locator('[data-connection="emulator-user"]').getByTestId('test-result').waitFor();
  const status = await designerApi('connections');
  const user = status.find((c) => c.name === 'emulator-user');
  assert.equal(user.signedIn, true);
  assert.equal(user.refreshable, true, 'offline_access gave a refresh token');
  // A redirect that no sign-in here started is refused, and the page says so in words.
  await page.goto(designerUrl + 'callback?code=forged&state=forged');
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(await page.locator('#notice').innerText(), 'Sign-in failed: the sign-in answer did not match a sign-in started here');
  await page.selectOption('[data-testid="current-connection"]', 'emulator');
});

test('a browser without the key gets nothing but a message', async () => {
  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  await other.goto(designerUrl + '#connections');
  await other.locator('#notice').getByText("open the link `dynamics designer` printed").waitFor();
  assert.equal(await other.locator('[data-connection]').count(), 0, 'no connection is listed');
  await stranger.close();
});

test('Query Entities with a filter pages to the second page', async () => {
  await page.goto(designerUrl + '#actions');
  await page.getByTestId('action-search').fill('query');
  const links = await page.locator('.action-link').allInnerTexts();
  assert.ok(links.includes('Query Entities') && links.includes('Query Attributes'), links.join(', '));
  assert.ok(!links.includes('Create Entity'), 'the search filters the list');
  await page.locator('[data-action="query-entities"]').click();
  const panel = page.locator('#action-panel');
  await panel.getByRole('heading', { name: 'Query Entities' }).waitFor();
  // The form is the action's inputs: defaults pre-filled, comments as help.
  assert.equal(await field(panel, 'recordsPerPage').locator('input').inputValue(), '100');
  assert.match(await field(panel, 'filterExpression').locator('.help').innerText(), /filter expression/i);
  // The entity type picklist is filled from the entity-types data source, through the component.
  await field(panel, 'entityType').getByTestId('load-choices').click();
  await field(panel, 'entityType').getByText(/\d+ choices/).waitFor();
  const choices = await field(panel, 'entityType').locator('select option').evaluateAll((options) => options.map((o) => o.value));
  assert.ok(choices.includes('accounts') && choices.includes('contacts'), choices.join(', '));
  await field(panel, 'entityType').getByTestId('choices').selectOption('accounts');
  assert.equal(await field(panel, 'entityType').locator('input').inputValue(), 'accounts');
  // The columns picklist depends on the table: the component lists the account's columns.
  await field(panel, 'fieldNames').getByTestId('load-choices').click();
  await field(panel, 'fieldNames').getByText(/\d+ choices/).waitFor();
  await field(panel, 'fieldNames').getByTestId('choices').selectOption('name');
  await field(panel, 'fieldNames').getByTestId('choices').selectOption('accountnumber');
  assert.equal(await field(panel, 'fieldNames').locator('input').inputValue(), 'name, accountnumber');
  await field(panel, 'filterExpression').locator('input').fill("contains(name,'a')");
  await field(panel, 'orderBy').locator('input').fill('name');
  await field(panel, 'recordsPerPage').locator('input').fill('4');
  await panel.getByTestId('run-action').click();
  await panel.getByTestId('records').waitFor();
  assert.equal(await panel.getByTestId('output-summary').innerText(), '4 records · page 1');
  const firstPage = await panel.locator('table.records tbody tr td:nth-child(2)').allInnerTexts();
  await shot('03-query-page-1');
  await panel.getByTestId('next-page').click();
  await panel.getByTestId('output-summary').getByText('page 2').waitFor();
  const secondPage = await panel.locator('table.records tbody tr td:nth-child(2)').allInnerTexts();
  // What the emulator itself says the first two pages are.
  const truth = await webApi('GET', "accounts?$select=name&$filter=contains(name,'a')&$orderby=name");
  const names = truth.body.value.map((row) => row.name);
  const columns = await panel.locator('table.records thead th').allInnerTexts();
  const nameColumn = columns.indexOf('name');
  assert.ok(nameColumn >= 0, columns.join(', '));
  const pageNames = async () => panel.locator(`table.records tbody tr td:nth-child(${nameColumn + 1})`).allInnerTexts();
  assert.deepEqual(await pageNames(), names.slice(4, 8));
  assert.notDeepEqual(firstPage, secondPage);
  await shot('04-query-page-2');
});

test('a record created through the generated form is in the emulator', async () => {
  await page.goto(designerUrl + '#actions/create-entity');
  const panel = page.locator('#action-panel');
  await panel.getByRole('heading', { name: 'Create Entity' }).waitFor();
  await field(panel, 'entityType').locator('input').fill('accounts');
  const pairs = field(panel, 'fieldValues');
  await pairs.locator('.kv-key').first().fill('name');
  await pairs.locator('.kv-value').first().fill('Designer Form Co');
  await pairs.getByTestId('add-pair').click();
  await pairs.locator('.kv-key').nth(1).fill('telephone1');
  await pairs.locator('.kv-value').nth(1).fill('555-0100');
  await panel.getByTestId('run-action').click();
  const json = panel.getByTestId('output-json');
  await json.waitFor();
  const output = JSON.parse(await json.innerText());
  assert.match(output.id, /^[0-9a-f-]{36}$/);
  const stored = await webApi('GET', `accounts(${output.id})?$select=name,telephone1`);
  assert.equal(stored.status, 200);
  assert.equal(stored.body.name, 'Designer Form Co');
  assert.equal(stored.body.telephone1, '555-0100');
  await shot('05-create-record');
});

test('bad input in a form is caught at the field before anything is sent', async () => {
  await page.goto(designerUrl + '#actions/create-entity');
  const panel = page.locator('#action-panel');
  await panel.getByRole('heading', { name: 'Create Entity' }).waitFor();
  const before = apiRuns.length;
  // A required field left empty.
  await field(panel, 'entityType').locator('input').fill('');
  await field(panel, 'dynamicValues').locator('textarea').fill('{"name": "Broken",}');
  await panel.getByTestId('run-action').click();
  assert.equal(await field(panel, 'entityType').locator('.error').innerText(), 'Entity Type is required');
  assert.match(await field(panel, 'dynamicValues').locator('.error').innerText(), /^Dynamic Values is not valid JSON: /);
  await panel.getByTestId('form-error').waitFor();
  assert.equal(apiRuns.length, before, 'no request was sent');
  // Fixing one field still leaves the other.
  await field(panel, 'entityType').locator('input').fill('accounts');
  await panel.getByTestId('run-action').click();
  assert.equal(await field(panel, 'entityType').locator('.error').innerText(), '');
  assert.match(await field(panel, 'dynamicValues').locator('.error').innerText(), /not valid JSON/);
  assert.equal(apiRuns.length, before, 'still no request');
  await shot('06-form-errors');
  // A mistake only the component can see comes back with its code, message and hint.
  await field(panel, 'dynamicValues').locator('textarea').fill('{"accountnumber": "TYPO-1"}');
  await field(panel, 'entityType').locator('input').fill('acounts');
  await panel.getByTestId('run-action').click();
  const error = panel.getByTestId('error');
  await error.waitFor();
  assert.match(await error.innerText(), /acounts/);
  assert.match(await error.innerText(), /accounts/, 'suggests the right table');
});

async function buildTwoStepFlow() {
  await page.goto(designerUrl + '#flow');
  await page.getByTestId('flow-name').fill('Account with contact');
  const steps = page.getByTestId('step');
  await steps.first().getByTestId('step-name').fill('account');
  await steps.first().getByTestId('step-action').selectOption('create-entity');
  await field(steps.first(), 'entityType').locator('input').fill('accounts');
  await field(steps.first(), 'dynamicValues').locator('textarea').fill('{"name": "Flow Parent Co"}');
  await page.getByTestId('flow-add-step').click();
  const second = steps.nth(1);
  await second.getByTestId('step-name').fill('contact');
  await second.getByTestId('step-action').selectOption('create-entity');
  // The step offers references into the earlier step's output.
  assert.match(await page.getByTestId('step').nth(1).locator('.refs').innerText(), /\{\{account\.id\}\}/);
  await field(page.getByTestId('step').nth(1), 'entityType').locator('input').fill('contacts');
  await field(page.getByTestId('step').nth(1), 'dynamicValues').locator('textarea').fill(JSON.stringify({
    lastname: 'Flowchild',
    jobtitle: 'contact of {{account.id}}',
    parentcustomerid_account: { table: 'accounts', id: '{{account.id}}' },
  }, null, 2));
}

test('a two-step flow creates an account, then a contact bound to it', async () => {
  await buildTwoStepFlow();
  await page.getByTestId('flow-run').click();
  const results = page.getByTestId('step-result');
  await results.nth(1).locator('[data-status]').waitFor();
  assert.equal(await results.nth(0).locator('.step-result').getAttribute('data-status'), 'succeeded');
  assert.equal(await results.nth(1).locator('.step-result').getAttribute('data-status'), 'succeeded');
  const contacts = await webApi('GET', "contacts?$select=lastname,jobtitle,_parentcustomerid_value&$filter=lastname eq 'Flowchild'");
  assert.equal(contacts.body.value.length, 1);
  const contact = contacts.body.value[0];
  const account = await webApi('GET', `accounts(${contact._parentcustomerid_value})?$select=name`);
  assert.equal(account.body.name, 'Flow Parent Co');
  assert.equal(contact.jobtitle, 'contact of ' + contact._parentcustomerid_value);
  await shot('07-flow-run');
});

test('a flow saved as JSON loads back', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('flow-save').click()]);
  const path = join(work, 'flow.json');
  await download.saveAs(path);
  const saved = JSON.parse(readFileSync(path, 'utf8'));
  assert.equal(saved.name, 'Account with contact');
  assert.deepEqual(saved.steps.map((s) => [s.name, s.action]), [['account', 'create-entity'], ['contact', 'create-entity']]);
  assert.equal(saved.steps[1].input.dynamicValues.parentcustomerid_account.id, '{{account.id}}');
  assert.equal(saved.connection, 'emulator');
  // Start over, then load the file.
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(await page.getByTestId('step').count(), 1);
  await page.getByTestId('flow-load').setInputFiles(path);
  await page.getByTestId('step').nth(1).waitFor();
  assert.equal(await page.getByTestId('flow-name').inputValue(), 'Account with contact');
  assert.equal(await page.getByTestId('step').nth(1).getByTestId('step-name').inputValue(), 'contact');
  const loaded = JSON.parse(await field(page.getByTestId('step').nth(1), 'dynamicValues').locator('textarea').inputValue());
  assert.deepEqual(loaded, saved.steps[1].input.dynamicValues);
  // A file that is not a flow is refused with a message.
  const broken = join(work, 'broken.json');
  writeFileSync(broken, JSON.stringify({ steps: [{ name: 'x', action: 'launch-rockets' }] }));
  await page.getByTestId('flow-load').setInputFiles(broken);
  await page.locator('#flow-error').getByText('launch-rockets').waitFor();
});

test('a webhook event from the environment runs the flow', async () => {
  await page.goto(designerUrl + '#flow');
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.getByTestId('flow-name').fill('Greet new accounts');
  const step = page.getByTestId('step').first();
  await step.getByTestId('step-name').fill('greeting');
  await step.getByTestId('step-action').selectOption('create-entity');
  await field(page.getByTestId('step').first(), 'entityType').locator('input').fill('contacts');
  await field(page.getByTestId('step').first(), 'dynamicValues').locator('textarea').fill(JSON.stringify({
    lastname: 'Hello {{trigger.attributes.name}}',
    parentcustomerid_account: { table: 'accounts', id: '{{trigger.recordId}}' },
  }));
  await page.getByTestId('trigger-select').selectOption('webhook');
  const box = page.getByTestId('trigger-box');
  await field(box, 'entityType').locator('input').fill('account');
  await field(box, 'messages').locator('input').fill('Create');
  await page.getByTestId('trigger-start').click();
  await page.getByTestId('listening').waitFor();
  // Someone creates an account in the environment (straight through its Web API).
  const created = await webApi('POST', 'accounts', { name: 'Hooked Co' });
  assert.equal(created.status, 201);
  const event = page.getByTestId('event').filter({ hasText: 'Create account' });
  await event.locator('[data-status="succeeded"]').first().waitFor({ timeout: 20000 });
  const contacts = await webApi('GET', "contacts?$select=lastname,_parentcustomerid_value&$filter=lastname eq 'Hello Hooked Co'");
  assert.equal(contacts.body.value.length, 1, 'the flow ran once for the event');
  assert.equal(contacts.body.value[0]._parentcustomerid_value, created.body.accountid);
  await shot('08-webhook-event');
  // Stopping unregisters: the next account sends nothing.
  await page.getByTestId('trigger-stop').click();
  await page.getByTestId('trigger-status').getByText('Not listening.').waitFor();
  const endpoints = await webApi('GET', 'serviceendpoints?$select=name');
  assert.equal(endpoints.body.value.length, 0, 'the service endpoint is removed');
  await webApi('POST', 'accounts', { name: 'Unheard Co' });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await page.getByTestId('event').count(), 1);
});

// Picks `value` from the choices an input's data source lists through the component.
async function pickChoice(scope, key, value) {
  await field(scope, key).getByTestId('load-choices').click();
  await field(scope, key).getByText(/\d+ choices/).waitFor();
  await field(scope, key).getByTestId('choices').selectOption(value);
}

test('Relate Rows: the relationship is picked from metadata and the contact joins the account', async () => {
  const account = await webApi('POST', 'accounts', { name: 'Relate Parent Co' });
  const contact = await webApi('POST', 'contacts', { lastname: 'Relatedchild' });
  assert.equal(account.status, 201);
  assert.equal(contact.status, 201);
  await page.goto(designerUrl + '#actions/relate-rows');
  const panel = page.locator('#action-panel');
  await panel.getByRole('heading', { name: 'Relate Rows' }).waitFor();
  await field(panel, 'entityType').locator('input').fill('accounts');
  await field(panel, 'entityId').locator('input').fill(account.body.accountid);
  // The relationships come from the account's metadata, through the component.
  await pickChoice(panel, 'relationship', 'contact_customer_accounts');
  await field(panel, 'relatedEntityId').locator('input').fill(contact.body.contactid);
  await panel.getByTestId('run-action').click();
  const output = JSON.parse(await panel.getByTestId('output-json').innerText());
  assert.equal(output.related, true);
  const stored = await webApi('GET', `contacts(${contact.body.contactid})?$select=_parentcustomerid_value`);
  assert.equal(stored.body._parentcustomerid_value, account.body.accountid, 'the emulator holds the relation');
  await shot('09-relate-rows');
});

test('a file uploaded through the file picker is stored, and downloads back byte for byte', async () => {
  const project = await webApi('POST', 'new_projects', { new_name: 'Designer Files' });
  assert.equal(project.status, 201);
  const id = project.body.new_projectid;
  // Bytes of every value, so an encoding slip anywhere shows.
  const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
  await page.goto(designerUrl + '#actions/upload-file');
  const panel = page.locator('#action-panel');
  await panel.getByRole('heading', { name: 'Upload File or Image' }).waitFor();
  await field(panel, 'entityType').locator('input').fill('new_projects');
  await field(panel, 'entityId').locator('input').fill(id);
  await pickChoice(panel, 'column', 'new_contract');
  await field(panel, 'fileName').locator('input').fill('contract.bin');
  await field(panel, 'fileContent').getByTestId('file-picker').setInputFiles({ name: 'contract.bin', mimeType: 'application/octet-stream', buffer: bytes });
  await field(panel, 'fileContent').getByTestId('file-status').getByText('3000 bytes').waitFor();
  await panel.getByTestId('run-action').click();
  const uploaded = JSON.parse(await panel.getByTestId('output-json').innerText());
  assert.equal(uploaded.size, 3000);
  // The emulator's own answer for the column.
  const token = await emulatorToken();
  const stored = await fetch(`${emulatorBase}/api/data/v9.2/new_projects(${id})/new_contract/$value`, { headers: { authorization: 'Bearer ' + token } });
  assert.equal(stored.status, 200);
  assert.deepEqual(Buffer.from(await stored.arrayBuffer()), bytes, 'the emulator stored the bytes');
  await shot('10-upload-file');

  await page.goto(designerUrl + '#actions/download-file');
  await panel.getByRole('heading', { name: 'Download File or Image' }).waitFor();
  await field(panel, 'entityType').locator('input').fill('new_projects');
  await field(panel, 'entityId').locator('input').fill(id);
  await field(panel, 'column').locator('input').fill('new_contract');
  await panel.getByTestId('run-action').click();
  const link = panel.getByTestId('download-file');
  await link.waitFor();
  assert.equal(await link.innerText(), 'Download contract.bin');
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const path = join(work, 'downloaded.bin');
  await download.saveAs(path);
  assert.equal(download.suggestedFilename(), 'contract.bin');
  assert.deepEqual(readFileSync(path), bytes, 'the downloaded file is the uploaded one');
  // A long base64 string wraps inside the output instead of widening the page.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the page keeps its width');
  await shot('11-download-file');
});

test('Perform an Unbound Action: WinOpportunity renders its parameters as a form and wins the opportunity', async () => {
  const opportunity = await webApi('POST', 'opportunities', { name: 'Designer Deal' });
  assert.equal(opportunity.status, 201);
  const id = opportunity.body.opportunityid;
  await page.goto(designerUrl + '#actions/perform-unbound-action');
  const panel = page.locator('#action-panel');
  await panel.getByRole('heading', { name: 'Perform an Unbound Action' }).waitFor();
  // The actions come from the environment's $metadata; picking one asks the component for its
  // parameters, which appear as a second form.
  await pickChoice(panel, 'actionName', 'WinOpportunity');
  const parameters = panel.getByTestId('dynamic-inputs');
  await field(parameters, 'Status').waitFor();
  assert.equal(await field(parameters, 'Status').getAttribute('data-type'), 'number');
  assert.equal(await field(parameters, 'OpportunityClose').getAttribute('data-type'), 'code');
  assert.ok(await field(parameters, 'Status').locator('.required').count(), 'Status is marked required');
  // A required parameter left empty is caught at its field before anything is sent.
  const before = apiRuns.length;
  await panel.getByTestId('run-action').click();
  await panel.getByTestId('form-error').waitFor();
  assert.match(await field(parameters, 'Status').locator('.error').innerText(), /required/);
  assert.equal(apiRuns.length, before, 'no request was sent');
  await field(parameters, 'Status').locator('input').fill('3');
  await field(parameters, 'OpportunityClose').locator('textarea').fill(JSON.stringify({
    subject: 'Won in the designer',
    'opportunityid@odata.bind': `/opportunities(${id})`,
  }));
  await shot('12-perform-action-form');
  await panel.getByTestId('run-action').click();
  await panel.getByTestId('output').waitFor();
  assert.equal(await panel.getByTestId('error').count(), 0, await panel.innerText());
  const stored = await webApi('GET', `opportunities(${id})?$select=statecode,statuscode`);
  assert.equal(stored.body.statecode, 1, 'the opportunity is won');
  assert.equal(stored.body.statuscode, 3);
  const closes = await webApi('GET', `opportunitycloses?$select=subject&$filter=_opportunityid_value eq ${id}`);
  assert.deepEqual(closes.body.value.map((row) => row.subject), ['Won in the designer']);
});
