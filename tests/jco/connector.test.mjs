// The connector component in its second host (host.mjs: jco + preview2-shim in Node) against the
// dataverse-emulator: sign in, Get Current User, Query Entities, each checked against what the
// emulator's own Web API answers a direct request. run.sh transpiles the component and starts
// the emulator; it passes JCO_OUT and the EMULATOR_* variables.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { loadConnector } from "./host.mjs";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run this through tests/jco/run.sh`);
  return value;
};

const base = env("EMULATOR_URL");
const tokenUrl = env("EMULATOR_TOKEN_URL");
const clientId = env("EMULATOR_CLIENT_ID");
const clientSecret = env("EMULATOR_CLIENT_SECRET");
const webApi = `${base}/api/data/v9.2`;

// The client-credentials connection of tests/src/lib.rs `client_credentials()`, as the world's
// `connection` record: definition, fields as (key, value) pairs, no token yet.
const connection = {
  definition: "oauth2-client-credentials",
  fields: [
    ["webApiUrl", base],
    ["tokenUrl", tokenUrl],
    ["clientId", clientId],
    ["clientSecret", clientSecret],
  ],
  token: undefined,
};

let host;
let signedIn; // the connection with the token the component acquired

// A token the emulator issues to this test directly, for the reference requests.
let directToken;
async function direct(path, headers = {}) {
  directToken ??= await fetch(tokenUrl, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId,
      client_secret: clientSecret,
      scope: `${base}/.default`,
    }),
  }).then(async (response) => {
    assert.equal(response.status, 200, "the emulator's token endpoint answers the test itself");
    return (await response.json()).access_token;
  });
  const url = path.startsWith("http") ? path : `${webApi}/${path}`;
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${directToken}`, accept: "application/json", ...headers },
  });
  assert.equal(response.status, 200, `GET ${url}`);
  return response.json();
}

before(async () => {
  host = await loadConnector(env("JCO_OUT"));
});

after(() => host?.close());

test("the component's definition lists the two actions", async () => {
  const definition = await host.definition();
  const keys = definition.actions.map((action) => action.key);
  assert.ok(keys.includes("get-current-user"), keys.join(", "));
  assert.ok(keys.includes("query-entities"), keys.join(", "));
  assert.ok(definition.connections.some((c) => c.key === "oauth2-client-credentials"));
});

test("endpoints name the emulator's origin, the host's whole allow-list", async () => {
  assert.deepEqual(await host.endpoints(connection), [new URL(base).origin]);
});

test("signs in with client credentials against the emulator's token endpoint", async () => {
  const token = await host.acquireToken(connection);
  assert.equal(token.tokenType, "Bearer");
  assert.match(token.accessToken, /^[\w-]+\.[\w-]+\.[\w-]+$/, "a JWT");
  assert.ok(token.expiresInSecs > 0);
  signedIn = { ...connection, token };
  assert.ok(
    host.requests.some((line) => line === `POST ${new URL(tokenUrl).origin}${new URL(tokenUrl).pathname}`),
    host.requests.join("\n"),
  );
});

test("a wrong client secret comes back as the component's error, not a host failure", async () => {
  const wrong = {
    ...connection,
    fields: connection.fields.map(([k, v]) => [k, k === "clientSecret" ? "not-the-secret" : v]),
  };
  await assert.rejects(host.acquireToken(wrong), (error) => {
    assert.equal(error.code, "unauthenticated", error.message);
    assert.ok(!error.message.includes("not-the-secret"), "the secret stays out of the error");
    return true;
  });
});

test("Get Current User answers the emulator's WhoAmI", async () => {
  assert.ok(signedIn, "signed in by the test before");
  const output = await host.invoke("get-current-user", signedIn, {});
  const whoAmI = await direct("WhoAmI");
  assert.equal(output.userId, whoAmI.UserId);
  assert.equal(output.businessUnitId, whoAmI.BusinessUnitId);
  assert.equal(output.organizationId, whoAmI.OrganizationId);
  assert.equal(output.user.systemuserid, whoAmI.UserId);
  const user = await direct(`systemusers(${whoAmI.UserId})`);
  assert.equal(output.user.fullname, user.fullname);
  assert.equal(output.user.domainname, user.domainname);
});

test("an action's parameters come from the environment: input-definitions of world 0.2.0", async () => {
  assert.ok(signedIn, "signed in by the test before");
  const definition = await host.definition();
  const perform = definition.actions.find((action) => action.key === "perform-unbound-action");
  assert.equal(perform.dynamicInputs, true);
  assert.equal(definition.actions.find((action) => action.key === "get-entity").dynamicInputs, false);
  const inputs = await host.inputDefinitions("perform-unbound-action", signedIn, { actionName: "WinOpportunity" });
  const byKey = new Map(inputs.map((input) => [input.key, input]));
  assert.ok(byKey.has("actionName"), "the action's own inputs come first");
  assert.equal(byKey.get("Status")?.inputType, "number");
  assert.equal(byKey.get("Status")?.required, true);
  assert.equal(byKey.get("OpportunityClose")?.inputType, "code");
  // Nothing chosen yet: only the action's own inputs.
  const own = await host.inputDefinitions("perform-unbound-action", signedIn, {});
  assert.ok(!own.some((input) => input.key === "Status"));
});

test("Query Entities returns the emulator's accounts, page by page", async () => {
  assert.ok(signedIn, "signed in by the test before");
  const input = { entityType: "accounts", fieldNames: ["name", "accountid"], recordsPerPage: 4 };
  const first = await host.invoke("query-entities", signedIn, input);
  const prefer = { prefer: "odata.maxpagesize=4" };
  const expected = await direct("accounts?$select=name,accountid", prefer);
  assert.equal(first.records.length, 4);
  assert.deepEqual(
    first.records.map((r) => [r.accountid, r.name]),
    expected.value.map((r) => [r.accountid, r.name]),
  );
  assert.equal(first.pages, 1);
  assert.equal(first.truncated, false);
  assert.ok(first.nextPageId, "more accounts than one page");
  assert.equal(first.nextPageId, expected["@odata.nextLink"]);

  // The next page through the component's cursor: the records of the emulator's next link.
  const second = await host.invoke("query-entities", signedIn, { ...input, nextPageId: first.nextPageId });
  const expectedSecond = await direct(expected["@odata.nextLink"], prefer);
  assert.deepEqual(
    second.records.map((r) => [r.accountid, r.name]),
    expectedSecond.value.map((r) => [r.accountid, r.name]),
  );
  const seen = new Set(first.records.map((r) => r.accountid));
  assert.ok(second.records.every((r) => !seen.has(r.accountid)), "no record twice");
});

test("Query Entities reading every page matches the emulator's count", async () => {
  assert.ok(signedIn, "signed in by the test before");
  const all = await host.invoke("query-entities", signedIn, {
    entityType: "accounts",
    fieldNames: ["accountid"],
    recordsPerPage: 5,
    fetchAll: true,
    includeCount: true,
  });
  const everything = await direct("accounts?$select=accountid&$count=true");
  assert.equal(all.count, everything["@odata.count"]);
  assert.equal(all.records.length, everything.value.length);
  assert.ok(all.pages > 1, `${all.pages} pages of 5`);
  assert.equal(all.nextPageId, null);
});

test("the host sends only to the connection's origins", async () => {
  const before = host.requests.length;
  const other = "http://127.0.0.1:9"; // the discard port: nothing should ever be sent there
  const refused = host.sendAs([base], { method: "GET", url: `${other}/api/data/v9.2/WhoAmI` });
  assert.equal(refused.tag, "err");
  assert.equal(refused.val.tag, "denied");
  const sameHostOtherPort = host.sendAs([`${other}`], { method: "GET", url: `${webApi}/WhoAmI` });
  assert.equal(sameHostOtherPort.val.tag, "denied");
  assert.equal(host.requests.length, before, "nothing was sent");

  const allowed = host.sendAs([base], { method: "GET", url: `${webApi}/WhoAmI` });
  assert.equal(allowed.tag, "ok");
  assert.equal(allowed.val.status, 401, "reached the emulator, which wants a token");
  assert.ok(allowed.val.headers.every(([name]) => name === name.toLowerCase()));
});
