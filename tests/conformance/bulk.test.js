// dynamics-web-api's own callAction with the bulk operation messages (CreateMultiple,
// UpdateMultiple, UpsertMultiple, DeleteMultiple) against the emulator, as
// learn.microsoft.com/power-apps/developer/data-platform/bulk-operations documents them, and
// the sdkmessagefilters query that tells a client which tables have them.
//
// Needs EMULATOR_URL, EMULATOR_TENANT, EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET; run.sh sets them.

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
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Names unique to this file: the emulator is shared with the other suites.
const tag = `bulk-${process.pid}`;

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

const account = (name) => ({ "@odata.type": "Microsoft.Dynamics.CRM.account", name });

test("CreateMultiple through callAction answers the ids in input order", async () => {
  const names = [`${tag} one`, `${tag} two`, `${tag} three`];
  const res = await api.callAction({
    collection: "accounts",
    actionName: "Microsoft.Dynamics.CRM.CreateMultiple",
    action: { Targets: names.map(account) },
  });
  assert.equal(res.Ids.length, 3);
  for (const [i, id] of res.Ids.entries()) {
    assert.match(id, GUID);
    const row = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
    assert.equal(row.name, names[i]);
  }
});

test("UpdateMultiple through callAction updates each record", async () => {
  const { Ids } = await api.callAction({
    collection: "accounts",
    actionName: "Microsoft.Dynamics.CRM.CreateMultiple",
    action: { Targets: [account(`${tag} u1`), account(`${tag} u2`)] },
  });
  await api.callAction({
    collection: "accounts",
    actionName: "Microsoft.Dynamics.CRM.UpdateMultiple",
    action: {
      Targets: Ids.map((id, i) => ({ "@odata.type": "Microsoft.Dynamics.CRM.account", accountid: id, name: `${tag} updated ${i}` })),
    },
  });
  const rows = await Promise.all(Ids.map((key) => api.retrieve({ collection: "accounts", key, select: ["name"] })));
  assert.deepEqual(
    rows.map((r) => r.name),
    [`${tag} updated 0`, `${tag} updated 1`],
  );
});

test("UpsertMultiple through callAction creates then updates by alternate key", async () => {
  const target = (code, name) => ({
    "@odata.type": "Microsoft.Dynamics.CRM.new_project",
    "@odata.id": `new_projects(new_code='${code}')`,
    new_name: name,
  });
  const a = `U${process.pid}A`.slice(0, 20);
  const b = `U${process.pid}B`.slice(0, 20);
  await api.callAction({
    collection: "new_projects",
    actionName: "Microsoft.Dynamics.CRM.UpsertMultiple",
    action: { Targets: [target(a, "first"), target(b, "second")] },
  });
  await api.callAction({
    collection: "new_projects",
    actionName: "Microsoft.Dynamics.CRM.UpsertMultiple",
    action: { Targets: [target(a, "first again")] },
  });
  const rows = await api.retrieveMultiple({
    collection: "new_projects",
    select: ["new_code", "new_name"],
    filter: `new_code eq '${a}' or new_code eq '${b}'`,
  });
  const byCode = Object.fromEntries(rows.value.map((r) => [r.new_code, r.new_name]));
  assert.deepEqual(byCode, { [a]: "first again", [b]: "second" });
});

test("a failing record of a standard table rolls the whole CreateMultiple back", async () => {
  const existing = (await api.retrieveMultiple({ collection: "accounts", select: ["accountid"], top: 1 })).value[0].accountid;
  const name = `${tag} rolled back`;
  await assert.rejects(
    api.callAction({
      collection: "accounts",
      actionName: "Microsoft.Dynamics.CRM.CreateMultiple",
      action: { Targets: [account(name), { ...account(`${tag} clash`), accountid: existing }] },
    }),
    (err) => err.status === 412 && err.code === "0x80040237",
  );
  const left = await api.retrieveMultiple({ collection: "accounts", select: ["accountid"], filter: `name eq '${name}'` });
  assert.equal(left.value.length, 0);
});

test("the sdkmessagefilters query tells which tables have the bulk messages", async () => {
  const has = async (message, table) =>
    (
      await api.retrieveMultiple({
        collection: "sdkmessagefilters",
        select: ["sdkmessagefilterid"],
        filter: `sdkmessageid/name eq '${message}' and primaryobjecttypecode eq '${table}'`,
      })
    ).value.length === 1;
  assert.equal(await has("CreateMultiple", "account"), true);
  assert.equal(await has("CreateMultiple", "annotation"), false);
  assert.equal(await has("DeleteMultiple", "account"), false);
  assert.equal(await has("DeleteMultiple", "new_sensorreading"), true);
  await assert.rejects(
    api.callAction({
      collection: "annotations",
      actionName: "Microsoft.Dynamics.CRM.CreateMultiple",
      action: { Targets: [{ "@odata.type": "Microsoft.Dynamics.CRM.annotation", subject: tag }] },
    }),
    (err) => err.status === 400 && err.code === "0x80040800",
  );
});

test("the elastic table takes CreateMultiple and DeleteMultiple with partitionid", async () => {
  const partition = `device-${process.pid}`;
  const reading = (n) => ({
    "@odata.type": "Microsoft.Dynamics.CRM.new_sensorreading",
    new_name: `${tag} r${n}`,
    new_value: n,
    partitionid: partition,
  });
  const { Ids } = await api.callAction({
    collection: "new_sensorreadings",
    actionName: "Microsoft.Dynamics.CRM.CreateMultiple",
    action: { Targets: [reading(1), reading(2)] },
  });
  assert.equal(Ids.length, 2);
  const one = await api.retrieve({
    collection: "new_sensorreadings",
    key: `new_sensorreadingid=${Ids[0]},partitionid='${partition}'`,
    select: ["new_name", "partitionid"],
  });
  assert.equal(one.partitionid, partition);
  await api.callAction({
    collection: "new_sensorreadings",
    actionName: "Microsoft.Dynamics.CRM.DeleteMultiple",
    action: {
      Targets: Ids.map((id) => ({ "@odata.type": "Microsoft.Dynamics.CRM.new_sensorreading", new_sensorreadingid: id, partitionid: partition })),
    },
  });
  await assert.rejects(api.retrieve({ collection: "new_sensorreadings", key: Ids[0] }), (err) => err.status === 404);
});
