// The real npm client `dynamics-web-api` against the emulator. The emulator must answer the
// way Dataverse does for this client to get the results asserted here.
//
// Needs EMULATOR_URL (e.g. http://127.0.0.1:PORT) and EMULATOR_TENANT, EMULATOR_CLIENT_ID,
// EMULATOR_CLIENT_SECRET; run.sh starts the emulator and sets them.

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

let token;
let api;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function fetchToken() {
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
  const body = await res.json();
  assert.equal(body.token_type, "Bearer");
  assert.ok(body.expires_in > 0);
  return body.access_token;
}

before(async () => {
  token = await fetchToken();
  api = new DynamicsWebApi({
    serverUrl: `${base}/`,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
    timeout: 20000,
  });
});

test("the token endpoint refuses a wrong secret with AADSTS7000215", async () => {
  const res = await fetch(`${base}/${tenant}/oauth2/v2.0/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId,
      client_secret: "wrong",
      scope: `${base}/.default`,
    }),
  });
  assert.equal(res.status, 401);
  const body = await res.json();
  assert.equal(body.error, "invalid_client");
  assert.deepEqual(body.error_codes, [7000215]);
});

test("the web api answers 401 without a token", async () => {
  const res = await fetch(`${base}/api/data/v9.2/WhoAmI`);
  assert.equal(res.status, 401);
  assert.match(res.headers.get("www-authenticate"), /^Bearer authorization_uri=/);
});

test("WhoAmI through callFunction names an existing systemuser", async () => {
  const who = await api.callFunction("WhoAmI");
  assert.match(who.UserId, GUID);
  assert.match(who.BusinessUnitId, GUID);
  assert.match(who.OrganizationId, GUID);
  const user = await api.retrieve({
    collection: "systemusers",
    key: who.UserId,
    select: ["fullname", "domainname", "_businessunitid_value"],
  });
  assert.equal(user.systemuserid, who.UserId);
  assert.equal(user._businessunitid_value, who.BusinessUnitId);
  assert.ok(user.fullname.length > 0);
});

test("retrieveMultiple pages with maxPageSize and follows the nextLink", async () => {
  const first = await api.retrieveMultiple({
    collection: "accounts",
    select: ["name", "revenue"],
    filter: "revenue gt 0",
    orderBy: ["name asc"],
    maxPageSize: 7,
    count: true,
  });
  assert.equal(first.value.length, 7);
  assert.ok(first.oDataCount >= 7);
  assert.ok(first.oDataNextLink, "a nextLink on a partial page");
  for (const row of first.value) {
    assert.ok(row.revenue > 0);
    assert.match(row.accountid, GUID);
    assert.match(row["@odata.etag"], /^W\/"\d+"$/);
  }
  const second = await api.retrieveMultiple({ maxPageSize: 7 }, first.oDataNextLink);
  assert.equal(second.value.length, Math.min(7, first.oDataCount - 7));
  const seen = new Set(first.value.map((r) => r.accountid));
  for (const row of second.value) assert.ok(!seen.has(row.accountid), "pages do not overlap");
  const names = [...first.value, ...second.value].map((r) => r.name.toLowerCase());
  assert.deepEqual(names, [...names].sort(), "order survives paging");
});

test("retrieveAll gathers every row across pages", async () => {
  const total = await api.count({ collection: "contacts" });
  const all = await api.retrieveAll({ collection: "contacts", select: ["fullname"], maxPageSize: 9 });
  assert.equal(all.value.length, total);
  assert.equal(new Set(all.value.map((r) => r.contactid)).size, total);
  assert.equal(all.oDataNextLink, undefined);
});

test("count and countAll agree with a filter", async () => {
  const n = await api.count({ collection: "accounts", filter: "statecode eq 0" });
  const all = await api.countAll({ collection: "accounts", filter: "statecode eq 0", select: ["accountid"] });
  assert.ok(n > 0);
  assert.equal(all, n);
});

test("retrieve with expand and formatted values", async () => {
  const page = await api.retrieveMultiple({
    collection: "contacts",
    select: ["fullname", "_parentcustomerid_value"],
    filter: "_parentcustomerid_value ne null",
    maxPageSize: 1,
  });
  const contact = page.value[0];
  const got = await api.retrieve({
    collection: "contacts",
    key: contact.contactid,
    select: ["fullname", "_parentcustomerid_value", "statecode"],
    includeAnnotations: "*",
  });
  assert.equal(got.fullname, contact.fullname);
  assert.equal(got["statecode@OData.Community.Display.V1.FormattedValue"].length > 0, true);
  assert.ok(["account", "contact"].includes(got["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"]));
  const acc = await api.retrieveMultiple({
    collection: "accounts",
    select: ["name"],
    filter: "_primarycontactid_value ne null",
    expand: [{ property: "primarycontactid", select: ["fullname"] }],
    maxPageSize: 1,
  });
  assert.ok(acc.value[0].primarycontactid.fullname.length > 0);
});

test("create without and with return representation, then retrieve", async () => {
  const id = await api.create({ collection: "accounts", data: { name: "Conformance One", revenue: 1234.5, accountcategorycode: 1 } });
  assert.match(id, GUID);
  const rep = await api.create({
    collection: "accounts",
    data: { name: "Conformance Two", numberofemployees: 42 },
    returnRepresentation: true,
    select: ["name", "numberofemployees"],
  });
  assert.equal(rep.name, "Conformance Two");
  assert.equal(rep.numberofemployees, 42);
  assert.match(rep.accountid, GUID);
  const back = await api.retrieve({ collection: "accounts", key: id, select: ["name", "revenue", "accountcategorycode", "createdon"] });
  assert.equal(back.name, "Conformance One");
  assert.equal(back.revenue, 1234.5);
  assert.equal(back.accountcategorycode, 1);
  assert.ok(back.createdon instanceof Date, "ISO dates are revived by the client");
});

test("update, then update with a stale etag is refused with 412", async () => {
  const id = await api.create({ collection: "accounts", data: { name: "Before" } });
  const before = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
  const updated = await api.update({ collection: "accounts", key: id, data: { name: "After" }, returnRepresentation: true, select: ["name"] });
  assert.equal(updated.name, "After");
  // The client turns a 412 on a conditional update into `false`.
  const stale = await api.update({ collection: "accounts", key: id, data: { name: "Stale" }, ifmatch: before["@odata.etag"] });
  assert.equal(stale, false);
  const after = await api.retrieve({ collection: "accounts", key: id, select: ["name"] });
  assert.equal(after.name, "After");
  const raw = await fetch(`${base}/api/data/v9.2/accounts(${id})`, {
    method: "PATCH",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "If-Match": before["@odata.etag"] },
    body: JSON.stringify({ name: "Stale" }),
  });
  assert.equal(raw.status, 412);
  assert.equal((await raw.json()).error.code, "0x80060882");
});

test("upsert creates, then updates, by id and by alternate key", async () => {
  const key = "0d1ce5e5-0000-4000-8000-00000000abcd";
  const created = await api.upsert({ collection: "accounts", key, data: { name: "Upserted" } });
  assert.equal(created, key);
  await api.upsert({ collection: "accounts", key, data: { name: "Upserted again" } });
  const row = await api.retrieve({ collection: "accounts", key, select: ["name"] });
  assert.equal(row.name, "Upserted again");
  await api.upsert({ collection: "accounts", key: "accountnumber='CONF-1'", data: { name: "By key" } });
  const byKey = await api.retrieve({ collection: "accounts", key: "accountnumber='CONF-1'", select: ["name", "accountnumber"] });
  assert.equal(byKey.name, "By key");
  assert.equal(byKey.accountnumber, "CONF-1");
  // Create-only upsert of an existing row: a 412, which the client reports as null.
  const refused = await api.upsert({ collection: "accounts", key, data: { name: "x" }, ifnonematch: "*" });
  assert.equal(refused, null);
  // Update-only upsert of a missing row: a 404, also null.
  const missing = await api.upsert({ collection: "accounts", key: "0d1ce5e5-0000-4000-8000-00000000ffff", data: { name: "x" }, ifmatch: "*" });
  assert.equal(missing, null);
  await assert.rejects(api.retrieve({ collection: "accounts", key: "0d1ce5e5-0000-4000-8000-00000000ffff" }), (err) => err.status === 404);
});

test("delete removes the row; deleting again is a 404 with 0x80040217", async () => {
  const id = await api.create({ collection: "tasks", data: { subject: "Delete me" } });
  await api.deleteRecord({ collection: "tasks", key: id });
  await assert.rejects(api.retrieve({ collection: "tasks", key: id }), (err) => err.status === 404 && err.code === "0x80040217");
  await assert.rejects(api.deleteRecord({ collection: "tasks", key: id }), (err) => err.status === 404);
});

test("errors carry Dataverse codes: unknown set, unknown property, bad filter", async () => {
  await assert.rejects(api.retrieveMultiple({ collection: "acounts" }), (err) => err.status === 404 && /segment 'acounts'/.test(err.message));
  await assert.rejects(
    api.create({ collection: "accounts", data: { name: "x", bogus: 1 } }),
    (err) => err.status === 400 && err.code === "0x80060888",
  );
  await assert.rejects(api.retrieveMultiple({ collection: "accounts", filter: "name eqq 'x'" }), (err) => err.status === 400);
});

test("metadata: entity definition, entity list, attributes with a cast", async () => {
  const account = await api.retrieveEntity({ key: "LogicalName='account'", select: ["LogicalName", "EntitySetName", "PrimaryIdAttribute", "ObjectTypeCode"] });
  assert.equal(account.LogicalName, "account");
  assert.equal(account.EntitySetName, "accounts");
  assert.equal(account.PrimaryIdAttribute, "accountid");
  assert.equal(account.ObjectTypeCode, 1);
  const custom = await api.retrieveEntities({ select: ["LogicalName", "EntitySetName"], filter: "IsCustomEntity eq true" });
  // Tables metadata_writes.test.js creates meanwhile (new_conf...) may join the seeded ones.
  const seeded = custom.value.map((e) => e.LogicalName).filter((n) => !n.startsWith("new_conf"));
  assert.deepEqual(seeded, ["new_project", "new_sensorreading"]);
  const attrs = await api.retrieveAttributes({ entityKey: "LogicalName='account'", select: ["LogicalName", "AttributeType"] });
  const types = Object.fromEntries(attrs.value.map((a) => [a.LogicalName, a.AttributeType]));
  assert.equal(types.name, "String");
  assert.equal(types.revenue, "Money");
  assert.equal(types.primarycontactid, "Lookup");
  const picklists = await api.retrieveAttributes({
    entityKey: "LogicalName='account'",
    castType: "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
    select: ["LogicalName"],
    expand: [{ property: "OptionSet" }],
  });
  const category = picklists.value.find((a) => a.LogicalName === "accountcategorycode");
  assert.ok(category.OptionSet.Options.some((o) => o.Value === 1));
});

test("metadata: createAttribute, write and read the new column, updateAttribute merges labels", async () => {
  const label = (text, lang) => ({ "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", Label: text, LanguageCode: lang });
  const created = await api.createAttribute({
    entityKey: "LogicalName='account'",
    data: {
      "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
      AttributeType: "Money",
      AttributeTypeName: { Value: "MoneyType" },
      SchemaName: "new_ConformanceBalance",
      DisplayName: { "@odata.type": "Microsoft.Dynamics.CRM.Label", LocalizedLabels: [label("Balance", 1033), label("Saldo", 1031)] },
      Description: { "@odata.type": "Microsoft.Dynamics.CRM.Label", LocalizedLabels: [label("Enter the balance amount", 1033)] },
      RequiredLevel: { Value: "None", CanBeChanged: true, ManagedPropertyLogicalName: "canmodifyrequirementlevelsettings" },
      PrecisionSource: 2,
    },
  });
  const attributeId = typeof created === "string" ? created : created && created.id;
  assert.match(String(attributeId), GUID);

  const attr = await api.retrieveAttribute({
    entityKey: "LogicalName='account'",
    attributeKey: attributeId,
    castType: "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
  });
  assert.equal(attr.LogicalName, "new_conformancebalance");
  assert.equal(attr.MetadataId, attributeId);
  assert.equal(attr.DisplayName.UserLocalizedLabel.Label, "Balance");

  const withMoney = await api.retrieveEntity({
    key: "LogicalName='account'",
    select: ["LogicalName"],
    expand: [{ property: "Attributes", select: ["LogicalName"], filter: "AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Money'" }],
  });
  assert.ok(withMoney.Attributes.some((a) => a.LogicalName === "new_conformancebalance"));
  assert.ok(withMoney.Attributes.some((a) => a.LogicalName === "revenue"));
  assert.ok(!withMoney.Attributes.some((a) => a.LogicalName === "name"));

  const moneyCast = await api.retrieveAttributes({
    entityKey: "LogicalName='account'",
    castType: "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
    select: ["LogicalName", "PrecisionSource"],
    filter: "IsCustomAttribute eq true",
  });
  assert.deepEqual(moneyCast.value.map((a) => a.LogicalName), ["new_conformancebalance"]);

  const account = await api.create({ collection: "accounts", data: { name: "Conformance Balance" } });
  const accountId = typeof account === "string" ? account : account.accountid;
  await api.update({ collection: "accounts", key: accountId, data: { new_conformancebalance: 12.5 } });
  const row = await api.retrieve({ collection: "accounts", key: accountId, select: ["new_conformancebalance"] });
  assert.equal(row.new_conformancebalance, 12.5);

  attr.DisplayName = { "@odata.type": "Microsoft.Dynamics.CRM.Label", LocalizedLabels: [label("Account Balance", 1033)] };
  await api.updateAttribute({
    entityKey: "LogicalName='account'",
    castType: "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
    data: attr,
    mergeLabels: true,
  });
  const updated = await api.retrieveAttribute({ entityKey: "LogicalName='account'", attributeKey: "LogicalName='new_conformancebalance'" });
  const labels = Object.fromEntries(updated.DisplayName.LocalizedLabels.map((l) => [l.LanguageCode, l.Label]));
  assert.deepEqual(labels, { 1033: "Account Balance", 1031: "Saldo" });

  await assert.rejects(
    api.createAttribute({ entityKey: "LogicalName='account'", data: { "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata", SchemaName: "new_ConformanceBalance" } }),
    (e) => e.status === 412 && e.code === "0x80040237",
  );
});

test("deep insert, collection expand, associate and disassociate", async () => {
  const id = await api.create({
    collection: "accounts",
    data: { name: "Deep Co", primarycontactid: { firstname: "Ada", lastname: "Lovelace" }, Account_Tasks: [{ subject: "First" }, { subject: "Second" }] },
  });
  const got = await api.retrieve({
    collection: "accounts",
    key: id,
    select: ["name"],
    expand: [
      { property: "primarycontactid", select: ["fullname"] },
      { property: "Account_Tasks", select: ["subject"], orderBy: ["subject asc"] },
    ],
  });
  assert.equal(got.primarycontactid.fullname, "Ada Lovelace");
  assert.deepEqual(got.Account_Tasks.map((t) => t.subject), ["First", "Second"]);
  const taskId = await api.create({ collection: "tasks", data: { subject: "Third" } });
  await api.associate({ collection: "accounts", primaryKey: id, relationshipName: "Account_Tasks", relatedCollection: "tasks", relatedKey: taskId });
  assert.equal((await api.retrieveMultiple({ collection: "tasks", filter: `_regardingobjectid_value eq ${id}` })).value.length, 3);
  await api.disassociate({ collection: "accounts", primaryKey: id, relationshipName: "Account_Tasks", relatedKey: taskId });
  assert.equal((await api.retrieveMultiple({ collection: "tasks", filter: `_regardingobjectid_value eq ${id}` })).value.length, 2);
});

// ---- $batch, FetchXML paging (issue 6) ----

async function countWhere(collection, filter) {
  const res = await api.retrieveMultiple({ collection, filter, select: ["createdon"] });
  return res.value.length;
}

test("executeBatch: a change set with a Content-ID reference binds the account to the new contact", async () => {
  api.startBatch();
  api.create({ collection: "contacts", data: { firstname: "Batch", lastname: "Referenced" }, contentId: "1" });
  api.create({ collection: "accounts", data: { name: "Batch Ref Co", "primarycontactid@odata.bind": "$1" } });
  api.retrieveMultiple({ collection: "accounts", select: ["name"], filter: "name eq 'Batch Ref Co'" });
  const results = await api.executeBatch();
  assert.equal(results.length, 3);
  assert.match(results[0], GUID);
  assert.match(results[1], GUID);
  assert.equal(results[2].value.length, 1, "the GET after the change set sees the new account");
  const account = await api.retrieve({
    collection: "accounts",
    key: results[1],
    select: ["name"],
    expand: [{ property: "primarycontactid", select: ["fullname", "contactid"] }],
  });
  assert.equal(account.primarycontactid.contactid, results[0]);
  assert.equal(account.primarycontactid.fullname, "Batch Referenced");
});

test("executeBatch: a failing item rolls the whole change set back", async () => {
  const before = await api.count({ collection: "tasks" });
  api.startBatch();
  api.create({ collection: "tasks", data: { subject: "Batch rollback one" } });
  api.create({ collection: "tasks", data: { subject: "Batch rollback two" } });
  api.create({ collection: "tasks", data: { subject: "x".repeat(300) } });
  let failed;
  try {
    const results = await api.executeBatch();
    failed = results.find((r) => r instanceof Error || (r && r.status >= 400));
  } catch (err) {
    failed = Array.isArray(err) ? err.find((e) => e && e.status >= 400) : err;
  }
  assert.ok(failed, "the batch reports the failing item");
  assert.equal(failed.status, 400, JSON.stringify(failed));
  assert.equal(failed.code ?? failed.error?.code, "0x80044331", JSON.stringify(failed));
  assert.equal(await api.count({ collection: "tasks" }), before, "no task of the change set remains");
  assert.equal(await countWhere("tasks", "subject eq 'Batch rollback one'"), 0);
});

test("executeBatch with continueOnError: a failed change set rolls back, the next one lands", async () => {
  api.startBatch();
  api.create({ collection: "tasks", data: { subject: "Batch coe bad" } });
  api.create({ collection: "tasks", data: { subject: "x".repeat(300) } });
  api.retrieveMultiple({ collection: "tasks", select: ["subject"], filter: "subject eq 'Batch coe bad'" });
  api.create({ collection: "tasks", data: { subject: "Batch coe good" } });
  const results = await api.executeBatch({ continueOnError: true });
  const errors = results.filter((r) => r instanceof Error || (r && r.status >= 400));
  assert.equal(errors.length, 1, JSON.stringify(results));
  assert.equal(await countWhere("tasks", "subject eq 'Batch coe bad'"), 0);
  assert.equal(await countWhere("tasks", "subject eq 'Batch coe good'"), 1);
});

test("fetchXml pages with the paging cookie, and fetchAll returns every row once", async () => {
  const xml = "<fetch count='25'><entity name='contact'><attribute name='fullname'/><order attribute='fullname'/></entity></fetch>";
  const ann = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords";
  const first = await api.fetch({ collection: "contacts", fetchXml: xml, includeAnnotations: ann });
  assert.equal(first.value.length, 25);
  assert.ok(first.PagingInfo && first.PagingInfo.cookie, "a paging cookie on a partial page");
  assert.equal(first.PagingInfo.nextPage, 2);
  const second = await api.fetch({
    collection: "contacts",
    fetchXml: xml,
    includeAnnotations: ann,
    pageNumber: first.PagingInfo.nextPage,
    pagingCookie: first.PagingInfo.cookie,
  });
  const seen = new Set(first.value.map((r) => r.contactid));
  for (const r of second.value) assert.ok(!seen.has(r.contactid), "pages do not overlap");
  const total = await api.count({ collection: "contacts" });
  assert.ok(total > 50, "more than two pages of 25");
  const all = await api.fetchAll({ collection: "contacts", fetchXml: xml, includeAnnotations: ann });
  assert.equal(all.value.length, total);
  const ids = new Set(all.value.map((r) => r.contactid));
  assert.equal(ids.size, total, "every row exactly once");
  const odata = await api.retrieveAll({ collection: "contacts", select: ["contactid"] });
  for (const r of odata.value) assert.ok(ids.has(r.contactid));
  const names = all.value.map((r) => (r.fullname || "").toLowerCase());
  assert.deepEqual(names, [...names].sort(), "order survives paging");
});

test("fetchXml with a filter, link-entity and aggregate agrees with OData", async () => {
  const filtered = await api.fetchAll({
    collection: "accounts",
    fetchXml: "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='statecode' operator='eq' value='0'/></filter></entity></fetch>",
  });
  assert.equal(filtered.value.length, await api.count({ collection: "accounts", filter: "statecode eq 0" }));
  const agg = await api.fetch({
    collection: "accounts",
    fetchXml: "<fetch aggregate='true'><entity name='account'><attribute name='accountid' aggregate='count' alias='n'/></entity></fetch>",
  });
  assert.equal(agg.value[0].n, await api.count({ collection: "accounts" }));
  const linked = await api.fetch({
    collection: "contacts",
    fetchXml: "<fetch count='5'><entity name='contact'><attribute name='fullname'/><link-entity name='account' from='accountid' to='parentcustomerid' alias='acc'><attribute name='name'/></link-entity></entity></fetch>",
  });
  assert.ok(linked.value.length > 0);
  for (const r of linked.value) assert.equal(typeof r["acc.name"], "string");
});

// ---- Change tracking past the first sync -------------------------------------------------------
// learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems

const isDeletedEntry = (row) =>
  /\/\$deletedEntity$/.test(row["@odata.context"] ?? row.oDataContext ?? "") && row.reason === "deleted";

/** Follows a link page by page with retrieveMultiple (no Prefer but maxPageSize). */
async function followPages(client, link, maxPageSize) {
  const pages = [];
  let next = link;
  while (next) {
    const page = await client.retrieveMultiple(maxPageSize ? { maxPageSize } : {}, next);
    pages.push(page);
    next = page.oDataNextLink;
  }
  return pages;
}

function assertPagedWithDeltaLinkLast(pages) {
  pages.slice(0, -1).forEach((p, i) => {
    assert.ok(p.oDataNextLink, `page ${i + 1} has a nextLink`);
    assert.equal(p.oDataDeltaLink, undefined, `page ${i + 1} has no deltaLink`);
  });
  const last = pages[pages.length - 1];
  assert.equal(last.oDataNextLink, undefined);
  assert.match(last.oDataDeltaLink, /\$deltatoken=/);
}

test("change tracking: the first tracked read is paged, its nextLink keeps tracking, the deltaLink comes last", async () => {
  const total = await api.count({ collection: "contacts" });
  const first = await api.retrieveMultiple({ collection: "contacts", select: ["fullname"], trackChanges: true, maxPageSize: 25 });
  assert.equal(first.value.length, 25);
  assert.equal(first.oDataDeltaLink, undefined, "no deltaLink on a page that is not the last");
  assert.match(first.oDataNextLink, /istracking=%22True%22/);
  // The next pages without odata.track-changes: the read still ends in a delta link.
  const pages = [first, ...(await followPages(api, first.oDataNextLink))];
  assertPagedWithDeltaLinkLast(pages);
  const ids = pages.flatMap((p) => p.value.map((r) => r.contactid));
  assert.equal(ids.length, total);
  assert.equal(new Set(ids).size, total);

  const all = await api.retrieveAll({ collection: "contacts", select: ["fullname"], trackChanges: true, maxPageSize: 25 });
  assert.equal(all.value.length, total);
  const nothing = await api.retrieveMultiple({}, all.oDataDeltaLink);
  assert.deepEqual(nothing.value, [], "nothing changed since");
  assert.match(nothing.oDataDeltaLink, /\$deltatoken=/);
});

test("change tracking: a delta read is paged, lists changes then deletions, and reports a row created and deleted since", async () => {
  const start = await api.retrieveAll({ collection: "leads", select: ["subject"], trackChanges: true, maxPageSize: 25 });
  const [updated1, updated2, removed] = start.value;
  const created = [];
  for (let i = 0; i < 7; i++) created.push(await api.create({ collection: "leads", data: { subject: `Delta lead ${i}` } }));
  await api.update({ collection: "leads", key: updated1.leadid, data: { subject: "Delta updated 1" } });
  await api.update({ collection: "leads", key: updated2.leadid, data: { subject: "Delta updated 2" } });
  await api.deleteRecord({ collection: "leads", key: removed.leadid });
  const brief = await api.create({ collection: "leads", data: { subject: "Created and deleted" } });
  await api.deleteRecord({ collection: "leads", key: brief });

  const pages = await followPages(api, start.oDataDeltaLink, 4);
  assertPagedWithDeltaLinkLast(pages);
  assert.deepEqual(pages.map((p) => p.value.length), [4, 4, 3]);
  const entries = pages.flatMap((p) => p.value);
  const changed = entries.slice(0, 9);
  const deleted = entries.slice(9);
  assert.deepEqual(
    changed.map((r) => r.leadid),
    [...created, updated1.leadid, updated2.leadid],
    "new and updated rows first, in the order they changed",
  );
  assert.deepEqual(changed.map((r) => r.subject).slice(7), ["Delta updated 1", "Delta updated 2"]);
  assert.ok(changed.every((r) => !isDeletedEntry(r)));
  assert.ok(deleted.every(isDeletedEntry), JSON.stringify(deleted));
  assert.deepEqual(deleted.map((r) => r.id), [removed.leadid, brief], "the row created and deleted since is reported deleted");

  const after = await api.retrieveMultiple({}, pages[pages.length - 1].oDataDeltaLink);
  assert.deepEqual(after.value, []);
});

test("change tracking: $count with a delta token counts the changes, not the table", async () => {
  const start = await api.retrieveAll({ collection: "tasks", select: ["subject"], trackChanges: true });
  const total = await api.count({ collection: "tasks" });
  const a = await api.create({ collection: "tasks", data: { subject: "Counted 1" } });
  await api.create({ collection: "tasks", data: { subject: "Counted 2" } });
  await api.update({ collection: "tasks", key: a, data: { subject: "Counted 1 again" } });
  await api.deleteRecord({ collection: "tasks", key: start.value[0].activityid });

  // GET tasks/$count?$deltatoken=… (the documented request)
  const count = await api.retrieveMultiple({}, start.oDataDeltaLink.replace("/tasks?", "/tasks/$count?"));
  assert.equal(Number(count), 3);
  assert.notEqual(total, 3);
  const counted = await api.retrieveMultiple({ maxPageSize: 2 }, `${start.oDataDeltaLink}&$count=true`);
  assert.equal(counted.oDataCount, 3);
  assert.equal(counted.value.length, 2);
  assert.ok(counted.oDataNextLink);
});

test("change tracking: a delta token older than the window answers ExpiredVersionStamp and a full sync starts over", async () => {
  const shortBase = process.env.EMULATOR_SHORT_DELTA_URL;
  assert.ok(shortBase, "run.sh starts a second emulator with --delta-token-lifetime-secs 1");
  const res = await fetch(`${shortBase}/${tenant}/oauth2/v2.0/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret, scope: `${shortBase}/.default` }),
  });
  const shortToken = (await res.json()).access_token;
  const short = new DynamicsWebApi({ serverUrl: `${shortBase}/`, dataApi: { version: "9.2" }, onTokenRefresh: async () => shortToken });

  const first = await short.retrieveAll({ collection: "accounts", select: ["name"], trackChanges: true });
  assert.ok((await short.retrieveMultiple({}, first.oDataDeltaLink)).oDataDeltaLink, "valid while young");
  await new Promise((resolve) => setTimeout(resolve, 2200));
  await assert.rejects(short.retrieveMultiple({}, first.oDataDeltaLink), (err) => {
    assert.equal(err.status, 400);
    assert.equal(err.code, "0x80044352");
    assert.match(err.message, /expired\. Please perform a full sync/);
    return true;
  });
  const again = await short.retrieveAll({ collection: "accounts", select: ["name"], trackChanges: true });
  assert.equal(again.value.length, first.value.length);
  assert.deepEqual((await short.retrieveMultiple({}, again.oDataDeltaLink)).value, []);
});

test("change tracking: a table without it refuses odata.track-changes; EntityDefinitions say which tables have it", async () => {
  await assert.rejects(api.retrieveMultiple({ collection: "annotations", select: ["subject"], trackChanges: true }), (err) => {
    assert.equal(err.status, 400);
    assert.match(err.message, /Change tracking is not enabled for the entity 'annotation'/);
    return true;
  });
  const note = await api.retrieveEntity({ key: "LogicalName='annotation'", select: ["LogicalName", "ChangeTrackingEnabled", "CanChangeTrackingBeEnabled"] });
  assert.equal(note.ChangeTrackingEnabled, false);
  assert.deepEqual(note.CanChangeTrackingBeEnabled, { Value: true, CanBeChanged: true, ManagedPropertyLogicalName: "canchangetrackingbeenabled" });
  const tracked = await api.retrieveEntities({ select: ["SchemaName"], filter: "ChangeTrackingEnabled eq true" });
  const trackedNames = tracked.value.map((e) => e.SchemaName);
  for (const name of ["Account", "Contact", "Lead", "Task"]) assert.ok(trackedNames.includes(name), name);
  assert.ok(!trackedNames.includes("Annotation"));
  const ineligible = await api.retrieveEntities({
    select: ["SchemaName", "ChangeTrackingEnabled"],
    filter: "ChangeTrackingEnabled eq false and CanChangeTrackingBeEnabled/Value eq false",
  });
  const ineligibleNames = ineligible.value.map((e) => e.SchemaName);
  assert.ok(ineligibleNames.includes("SdkMessageProcessingStep"), ineligibleNames.join());
  assert.ok(!ineligibleNames.includes("Account"));
});

// ---- Impersonation -----------------------------------------------------------------------------
// learn.microsoft.com/power-apps/developer/data-platform/webapi/impersonate-another-user-web-api:
// MSCRMCallerID (dynamics-web-api's `impersonate`) names a systemuserid, CallerObjectId
// (`impersonateAAD`) an Entra object id; the request runs as that user, createdonbehalfby /
// modifiedonbehalfby name the calling user. The emulator seeds a salesperson without the
// delegate privilege who signs in with the password grant, and a disabled user.

const publicClientId = process.env.EMULATOR_PUBLIC_CLIENT_ID;
const userPassword = process.env.EMULATOR_PASSWORD;
const SALES_USERNAME = "riley.sales@emulator.local";

async function seededUser(filter) {
  const found = await api.retrieveMultiple({
    collection: "systemusers",
    select: ["fullname", "azureactivedirectoryobjectid", "_businessunitid_value", "isdisabled"],
    filter,
  });
  assert.equal(found.value.length, 1, filter);
  return found.value[0];
}

test("impersonation: a create with impersonateAAD is createdby the impersonated user and createdonbehalfby the caller", async () => {
  const me = await api.callFunction("WhoAmI");
  const riley = await seededUser(`domainname eq '${SALES_USERNAME}'`);
  const id = await api.create({
    collection: "accounts",
    data: { name: "Sample Account created using impersonation" },
    impersonateAAD: riley.azureactivedirectoryobjectid,
  });
  const account = await api.retrieve({
    collection: "accounts",
    key: id,
    select: ["name"],
    expand: [
      { property: "createdby", select: ["fullname", "azureactivedirectoryobjectid"] },
      { property: "createdonbehalfby", select: ["fullname"] },
    ],
  });
  assert.equal(account.createdby.systemuserid, riley.systemuserid);
  assert.equal(account.createdby.fullname, riley.fullname);
  assert.equal(account.createdby.azureactivedirectoryobjectid, riley.azureactivedirectoryobjectid);
  assert.equal(account.createdonbehalfby.systemuserid, me.UserId);

  // An update with impersonate (MSCRMCallerID) sets modifiedby and modifiedonbehalfby; one
  // without impersonation clears modifiedonbehalfby.
  await api.update({ collection: "accounts", key: id, data: { name: "Renamed for Riley" }, impersonate: riley.systemuserid });
  let row = await api.retrieve({ collection: "accounts", key: id, select: ["_modifiedby_value", "_modifiedonbehalfby_value", "_createdonbehalfby_value"] });
  assert.equal(row._modifiedby_value, riley.systemuserid);
  assert.equal(row._modifiedonbehalfby_value, me.UserId);
  await api.update({ collection: "accounts", key: id, data: { name: "Renamed by me" } });
  row = await api.retrieve({ collection: "accounts", key: id, select: ["_modifiedby_value", "_modifiedonbehalfby_value", "_createdonbehalfby_value"] });
  assert.equal(row._modifiedby_value, me.UserId);
  assert.equal(row._modifiedonbehalfby_value, null);
  assert.equal(row._createdonbehalfby_value, me.UserId);
});

test("impersonation: WhoAmI answers the impersonated user and their business unit", async () => {
  const me = await api.callFunction("WhoAmI");
  const riley = await seededUser(`domainname eq '${SALES_USERNAME}'`);
  for (const header of [{ impersonate: riley.systemuserid }, { impersonateAAD: riley.azureactivedirectoryobjectid }]) {
    const who = await api.callFunction({ name: "WhoAmI", ...header });
    assert.equal(who.UserId, riley.systemuserid);
    assert.equal(who.BusinessUnitId, riley._businessunitid_value);
    assert.notEqual(who.BusinessUnitId, me.BusinessUnitId, "the salesperson works in a business unit of their own");
  }
});

test("impersonation: a client configured with impersonateAAD runs every request of a batch as that user", async () => {
  const me = await api.callFunction("WhoAmI");
  const riley = await seededUser(`domainname eq '${SALES_USERNAME}'`);
  const asRiley = new DynamicsWebApi({
    serverUrl: `${base}/`,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
    impersonateAAD: riley.azureactivedirectoryobjectid,
  });
  asRiley.startBatch();
  asRiley.create({ collection: "accounts", data: { name: "Batch for Riley 1" } });
  asRiley.create({ collection: "accounts", data: { name: "Batch for Riley 2" } });
  const ids = await asRiley.executeBatch();
  assert.equal(ids.length, 2);
  for (const id of ids) {
    const row = await api.retrieve({ collection: "accounts", key: id, select: ["_createdby_value", "_createdonbehalfby_value"] });
    assert.equal(row._createdby_value, riley.systemuserid);
    assert.equal(row._createdonbehalfby_value, me.UserId);
  }
});

test("impersonation: unknown and disabled users and callers without the privilege are refused with Dataverse codes", async () => {
  const nobody = "0d1ce5e5-0000-4000-8000-00000000fffe";
  const disabled = await seededUser("isdisabled eq true");
  const refused = async (request, status, code) =>
    assert.rejects(api.callFunction({ name: "WhoAmI", ...request }), (err) => {
      assert.equal(err.status, status, JSON.stringify(err));
      assert.equal(err.code, code);
      return true;
    });
  await refused({ impersonate: nobody }, 404, "0x80040217");
  await refused({ impersonateAAD: nobody }, 400, "0x80072560");
  await refused({ impersonate: disabled.systemuserid }, 400, "0x80040225");
  await refused({ impersonateAAD: disabled.azureactivedirectoryobjectid }, 400, "0x80040225");
  const before = await api.count({ collection: "accounts" });
  await assert.rejects(
    api.create({ collection: "accounts", data: { name: "never" }, impersonate: disabled.systemuserid }),
    (err) => err.status === 400 && /is disabled\. Disabled users cannot access the system/.test(err.message),
  );
  assert.equal(await api.count({ collection: "accounts" }), before, "nothing was written");

  // The salesperson has no prvActOnBehalfOfAnotherUser: 403 CannotActOnBehalfOfAnotherUser.
  assert.ok(publicClientId && userPassword, "run.sh sets EMULATOR_PUBLIC_CLIENT_ID and EMULATOR_PASSWORD");
  const res = await fetch(`${base}/${tenant}/oauth2/v2.0/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "password",
      client_id: publicClientId,
      username: SALES_USERNAME,
      password: userPassword,
      scope: `${base}/user_impersonation`,
    }),
  });
  assert.equal(res.status, 200);
  const rileyToken = (await res.json()).access_token;
  const asRiley = new DynamicsWebApi({ serverUrl: `${base}/`, dataApi: { version: "9.2" }, onTokenRefresh: async () => rileyToken });
  const me = await api.callFunction("WhoAmI");
  await assert.rejects(asRiley.callFunction({ name: "WhoAmI", impersonate: me.UserId }), (err) => {
    assert.equal(err.status, 403);
    assert.equal(err.code, "0x8004A110");
    assert.equal(err.message, "User does not have the privilege to act on behalf another user.");
    return true;
  });
  const riley = await asRiley.callFunction("WhoAmI");
  assert.notEqual(riley.UserId, me.UserId, "without the header the salesperson is served as themselves");
});
