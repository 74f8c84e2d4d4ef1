// dynamics-web-api's own search calls (query, suggest, autocomplete) against the emulator's
// Dataverse search 2.0 endpoints (learn.microsoft.com/power-apps/developer/data-platform/search/query,
// .../search/suggest, .../search/autocomplete), with the rows it finds checked against the data
// read through the Web API.
//
// Needs EMULATOR_URL, EMULATOR_TENANT, EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET (run.sh sets them).

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
  token = (await res.json()).access_token;
  api = new DynamicsWebApi({
    serverUrl: `${base}/`,
    dataApi: { version: "9.2" },
    searchApi: { version: "2.0" },
    onTokenRefresh: async () => token,
    timeout: 20000,
  });
});

test("query finds a created account by a word of its name, with highlights and the count", async () => {
  const name = "Zephyrine Trading Company";
  const id = await api.create({ collection: "accounts", data: { name } });
  const result = await api.query({
    query: {
      search: "zephyrine",
      count: true,
      entities: [{ name: "account", selectColumns: ["name", "createdon"], searchColumns: ["name"] }],
    },
  });
  const response = result.response;
  assert.equal(response.Error, null);
  assert.equal(response.Count, 1);
  assert.equal(response.Value.length, 1);
  const hit = response.Value[0];
  assert.equal(hit.Id, id);
  assert.equal(hit.EntityName, "account");
  assert.equal(hit.Attributes["@search.objecttypecode"], 1);
  assert.equal(hit.Attributes.name, name);
  assert.deepEqual(hit.Highlights.name, ["{crmhit}Zephyrine{/crmhit} Trading Company"]);
  assert.ok(hit.Score > 0);
});

test("query pages with top and skip and counts facets over every match", async () => {
  // Other suites add contacts too: compare with the contacts whose email has the word.
  const contacts = await api.retrieveMultiple({
    collection: "contacts",
    select: ["contactid"],
    filter: "contains(emailaddress1, '@example.')",
  });
  const entities = [{ name: "contact", selectColumns: ["fullname"], searchColumns: ["emailaddress1"] }];
  const all = (await api.query({ query: { search: "example", count: true, entities, facets: ["entityname,count:5"] } })).response;
  assert.equal(all.Count, contacts.value.length);
  assert.deepEqual(all.Facets.entityname.map((f) => [f.value, f.count]), [["contact", contacts.value.length]]);

  const page = (await api.query({ query: { search: "example", count: true, entities, top: 2, skip: 3 } })).response;
  assert.equal(page.Value.length, 2);
  assert.deepEqual(page.Value.map((v) => v.Id), all.Value.slice(3, 5).map((v) => v.Id));
});

test("query applies a filter to the rows it searches", async () => {
  const entities = [{ name: "contact", selectColumns: ["fullname"], searchColumns: ["emailaddress1"], filter: "statecode eq 1" }];
  const inactive = await api.retrieveMultiple({ collection: "contacts", select: ["contactid"], filter: "statecode eq 1" });
  const result = (await api.query({ query: { search: "example", count: true, entities } })).response;
  assert.equal(result.Count, inactive.value.length);
  const ids = new Set(inactive.value.map((c) => c.contactid));
  for (const v of result.Value) assert.ok(ids.has(v.Id), v.Id);
});

test("suggest and autocomplete complete a prefix of a name", async () => {
  await api.create({ collection: "accounts", data: { name: "Quillfeather Analytics" } });
  const entities = [{ name: "account", selectColumns: ["name"], searchColumns: ["name"] }];
  const suggest = (await api.suggest({ query: { search: "quillf", top: 3, entities } })).response;
  assert.equal(suggest.Error, null);
  assert.ok(suggest.Value.length >= 1);
  assert.equal(suggest.Value[0].Text, "{crmhit}Quillfeather{/crmhit} Analytics");
  assert.equal(suggest.Value[0].Document["@search.entityname"], "account");
  assert.equal(suggest.Value[0].Document.name, "Quillfeather Analytics");

  const complete = (await api.autocomplete({ query: { search: "quillf", entities } })).response;
  assert.equal(complete.Value, "{crmhit}quillfeather{/crmhit}");
});

test("what the emulator does not run answers 501 instead of a plausible result", async () => {
  await assert.rejects(
    api.query({ query: { search: "contoso~", options: { queryType: "lucene" } } }),
    (e) => e.status === 501,
  );
  await assert.rejects(api.suggest({ query: { search: "contoso", fuzzy: true } }), (e) => e.status === 501);
});
