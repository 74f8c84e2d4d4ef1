// dynamics-web-api's own file calls against the emulator: uploadFile (its chunked protocol:
// x-ms-transfer-mode: chunked, then Content-Range chunks to the Location it was given) and
// downloadFile (Range requests of 4 MB), with a file bigger than one chunk; the emulator's
// copy is read back through the documented $value download
// (learn.microsoft.com/power-apps/developer/data-platform/file-column-data).
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
  return (await res.json()).access_token;
}

before(async () => {
  token = await fetchToken();
  api = new DynamicsWebApi({
    serverUrl: `${base}/`,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
    timeout: 60000,
  });
});

/// Bytes that differ from one position to the next, so a misplaced chunk shows.
function sample(length) {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31) % 251;
  return bytes;
}

async function newProject(name) {
  const id = await api.create({ collection: "new_projects", data: { new_name: name } });
  assert.ok(id);
  return id;
}

test("uploadFile sends a file over 4 MB in chunks and downloadFile reads it back whole", async () => {
  const id = await newProject("conformance files: chunked");
  const data = sample(5 * 1024 * 1024 + 123);
  await api.uploadFile({
    collection: "new_projects",
    key: id,
    property: "new_contract",
    fileName: "contract.bin",
    data,
  });

  // The emulator holds the file under its name: the row names it, $value returns it.
  const row = await api.retrieve({
    collection: "new_projects",
    key: id,
    select: ["new_contract", "new_contract_name"],
  });
  assert.equal(row.new_contract_name, "contract.bin");
  assert.match(row.new_contract, /^[0-9a-f-]{36}$/);
  const raw = await fetch(`${base}/api/data/v9.2/new_projects(${id})/new_contract/$value`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(raw.status, 200);
  assert.equal(raw.headers.get("x-ms-file-name"), "contract.bin");
  assert.equal(raw.headers.get("x-ms-file-size"), String(data.length));
  assert.deepEqual(new Uint8Array(await raw.arrayBuffer()), data);

  const down = await api.downloadFile({ collection: "new_projects", key: id, property: "new_contract" });
  assert.equal(down.fileName, "contract.bin");
  assert.equal(down.fileSize, data.length);
  assert.deepEqual(new Uint8Array(down.data), data);
});

test("a small file goes up and comes down in one chunk", async () => {
  const id = await newProject("conformance files: small");
  const data = new TextEncoder().encode("Signed by both parties.\n");
  await api.uploadFile({ collection: "new_projects", key: id, property: "new_contract", fileName: "terms.txt", data });
  const down = await api.downloadFile({ collection: "new_projects", key: id, property: "new_contract" });
  assert.equal(down.fileName, "terms.txt");
  assert.equal(new TextDecoder().decode(down.data), "Signed by both parties.\n");
});

test("uploading again replaces the file and deleteRecord on the column removes it", async () => {
  const id = await newProject("conformance files: replace");
  await api.uploadFile({ collection: "new_projects", key: id, property: "new_contract", fileName: "a.txt", data: new TextEncoder().encode("first") });
  await api.uploadFile({ collection: "new_projects", key: id, property: "new_contract", fileName: "b.txt", data: new TextEncoder().encode("second") });
  const down = await api.downloadFile({ collection: "new_projects", key: id, property: "new_contract" });
  assert.equal(down.fileName, "b.txt");
  assert.equal(new TextDecoder().decode(down.data), "second");

  await api.deleteRecord({ collection: "new_projects", key: id, property: "new_contract" });
  const row = await api.retrieve({ collection: "new_projects", key: id, select: ["new_contract", "new_contract_name"] });
  assert.equal(row.new_contract, null);
  assert.equal(row.new_contract_name, null);
});

test("a file over the column's MaxSizeInKB is refused with the documented error", async () => {
  const meta = await api.retrieveAttribute({
    entityKey: "LogicalName='new_project'",
    attributeKey: "LogicalName='new_contract'",
    castType: "Microsoft.Dynamics.CRM.FileAttributeMetadata",
    select: ["MaxSizeInKB"],
  });
  assert.equal(meta.MaxSizeInKB, 32768);
  const id = await newProject("conformance files: too big");
  await assert.rejects(
    api.uploadFile({
      collection: "new_projects",
      key: id,
      property: "new_contract",
      fileName: "huge.bin",
      data: new Uint8Array(32768 * 1024 + 1),
    }),
    (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.code, "0x80044a02");
      return true;
    },
  );
});
