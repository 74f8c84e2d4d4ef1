// dynamics-web-api's own callAction and callFunction against the emulator: an unbound custom
// API, bound and unbound Dataverse messages, functions with parameters, a background operation,
// and the bypass header the library sends. The emulator must answer as Dataverse does for the
// library to return what is asserted here.
//
// Needs EMULATOR_URL, EMULATOR_TENANT, EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET (run.sh sets
// them).

"use strict";

const { test, before } = require("node:test");
const assert = require("node:assert/strict");
const { DynamicsWebApi } = require("dynamics-web-api");

const base = process.env.EMULATOR_URL;
const tenant = process.env.EMULATOR_TENANT;
const clientId = process.env.EMULATOR_CLIENT_ID;
const clientSecret = process.env.EMULATOR_CLIENT_SECRET;
if (!base || !tenant || !clientId || !clientSecret) {
  throw new Error("set EMULATOR_URL, EMULATOR_TENANT, EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET (run.sh does)");
}

let api;

before(async () => {
  const res = await fetch(`${base}/${tenant}/oauth2/v2.0/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId,
      client_secret: clientSecret,
      scope: `${base}/.default`,
    }),
  });
  assert.equal(res.status, 200);
  const token = (await res.json()).access_token;
  api = new DynamicsWebApi({
    serverUrl: `${base}/`,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
    timeout: 20000,
  });
});

async function firstOpen(collection, key) {
  const page = await api.retrieveMultiple({ collection, select: [key], filter: "statecode eq 0", top: 1 });
  assert.equal(page.value.length, 1, `an open row in ${collection}`);
  return page.value[0][key];
}

test("an unbound custom API through callAction returns its response properties", async () => {
  const res = await api.callAction({ actionName: "new_CalculateDiscount", action: { Amount: 200, Percentage: 15 } });
  assert.equal(res.DiscountAmount, 30);
  assert.equal(res.FinalAmount, 170);
  await assert.rejects(
    api.callAction({ actionName: "new_CalculateDiscount", action: { Percentage: 15 } }),
    (err) => err.status === 400 && /'Amount'/.test(err.message),
  );
});

test("a custom API bound to a row and a custom function", async () => {
  const id = await api.create({ collection: "accounts", data: { name: "Fabrikam" } });
  const score = await api.callAction({ collection: "accounts", key: id, actionName: "Microsoft.Dynamics.CRM.new_ScoreAccount", action: { Weight: 2 } });
  assert.equal(score.Score, 16);
  const greeting = await api.callFunction({ name: "new_GetGreeting", parameters: { Name: "Ada" } });
  assert.equal(greeting.Greeting, "Hello, Ada!");
});

test("QualifyLead, bound to a lead, returns the created records and qualifies the lead", async () => {
  const lead = await firstOpen("leads", "leadid");
  const res = await api.callAction({
    collection: "leads",
    key: lead,
    actionName: "Microsoft.Dynamics.CRM.QualifyLead",
    action: { CreateAccount: true, CreateContact: true, CreateOpportunity: false, Status: 3 },
  });
  assert.equal(res.value.length, 2);
  const account = res.value.find((r) => r["@odata.type"] === "#Microsoft.Dynamics.CRM.account");
  assert.ok(account && account.accountid);
  const created = await api.retrieve({ collection: "accounts", key: account.accountid, select: ["name"] });
  assert.ok(created.name);
  const after = await api.retrieve({ collection: "leads", key: lead, select: ["statecode", "statuscode"] });
  assert.deepEqual([after.statecode, after.statuscode], [1, 3]);
});

test("WinOpportunity closes the opportunity with its close activity", async () => {
  const opp = await firstOpen("opportunities", "opportunityid");
  await api.callAction({
    actionName: "WinOpportunity",
    action: {
      Status: 3,
      OpportunityClose: { subject: "Won through dynamics-web-api", "opportunityid@odata.bind": `opportunities(${opp})` },
    },
  });
  const after = await api.retrieve({ collection: "opportunities", key: opp, select: ["statecode", "statuscode"] });
  assert.deepEqual([after.statecode, after.statuscode], [1, 3]);
  const closes = await api.retrieveMultiple({ collection: "opportunitycloses", filter: `_opportunityid_value eq ${opp}` });
  assert.equal(closes.value.length, 1);
  assert.equal(closes.value[0].subject, "Won through dynamics-web-api");
});

test("functions with parameters: RetrieveTotalRecordCount and RetrievePrincipalAccess", async () => {
  const counts = await api.callFunction({ name: "RetrieveTotalRecordCount", parameters: { EntityNames: ["account", "contact"] } });
  assert.deepEqual(counts.EntityRecordCountCollection.Keys, ["account", "contact"]);
  assert.equal(counts.EntityRecordCountCollection.Values.length, 2);
  assert.ok(counts.EntityRecordCountCollection.Values[0] > 0);

  const account = await api.create({ collection: "accounts", data: { name: "Access check" } });
  const who = await api.callFunction("WhoAmI");
  const access = await api.callFunction({
    collection: "systemusers",
    key: who.UserId,
    name: "Microsoft.Dynamics.CRM.RetrievePrincipalAccess",
    parameters: { Target: { "@odata.id": `accounts(${account})` } },
  });
  assert.match(access.AccessRights, /ReadAccess/);
  const version = await api.callFunction("RetrieveVersion");
  assert.match(version.Version, /^9\.2\./);
});

test("a custom API runs in the background with respondAsync and reports its status", async () => {
  const accepted = await api.callAction({ actionName: "new_CalculateDiscount", action: { Amount: 50, Percentage: 10 }, respondAsync: true });
  assert.ok(accepted.backgroundOperationId, JSON.stringify(accepted));
  assert.match(accepted.location, /\/api\/backgroundoperation\//);
  let status;
  for (let i = 0; i < 100; i++) {
    status = await api.getBackgroundOperationStatus(accepted.backgroundOperationId);
    if (status.backgroundOperationStateCode === 3) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(status.backgroundOperationStatusCode, 30, JSON.stringify(status));
  assert.equal(status.FinalAmount, 45);
  const row = await api.retrieve({ collection: "backgroundoperations", key: accepted.backgroundOperationId, select: ["name", "backgroundoperationstatuscode"] });
  assert.equal(row.name, "new_CalculateDiscount");
  await assert.rejects(api.cancelBackgroundOperation(accepted.backgroundOperationId), (err) => err.status === 400);
});

test("bypassCustomPluginExecution skips a failing synchronous step", async () => {
  // A synchronous step on lead creation whose endpoint does not answer: a create fails with it.
  const endpoint = await api.create({
    collection: "serviceendpoints",
    data: { name: "unreachable", url: "http://127.0.0.1:9/none", contract: 8, authtype: 5, authvalue: "k", messageformat: 2 },
  });
  const message = (await api.retrieveMultiple({ collection: "sdkmessages", filter: "name eq 'Create'" })).value[0].sdkmessageid;
  const filter = (
    await api.retrieveMultiple({ collection: "sdkmessagefilters", filter: `primaryobjecttypecode eq 'lead' and _sdkmessageid_value eq ${message}` })
  ).value[0].sdkmessagefilterid;
  const step = await api.create({
    collection: "sdkmessageprocessingsteps",
    data: {
      name: "Create of lead",
      stage: 40,
      mode: 0,
      rank: 1,
      supporteddeployment: 0,
      "sdkmessageid@odata.bind": `/sdkmessages(${message})`,
      "sdkmessagefilterid@odata.bind": `/sdkmessagefilters(${filter})`,
      "eventhandler_serviceendpoint@odata.bind": `/serviceendpoints(${endpoint})`,
    },
  });
  try {
    await assert.rejects(api.create({ collection: "leads", data: { subject: "Blocked", lastname: "Blocked" } }), (err) => err.status === 400);
    const id = await api.create({ collection: "leads", data: { subject: "Bypassed", lastname: "Bypassed" }, bypassCustomPluginExecution: true });
    const lead = await api.retrieve({ collection: "leads", key: id, select: ["subject"] });
    assert.equal(lead.subject, "Bypassed");
  } finally {
    await api.deleteRecord({ collection: "sdkmessageprocessingsteps", key: step });
  }
});
