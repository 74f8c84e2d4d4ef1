// dynamics-web-api's own metadata writes against the emulator: createEntity, createAttribute,
// createRelationship (one-to-many, and many-to-many with associate/disassociate), createGlobalOptionSet
// and deleting a column, following
// learn.microsoft.com/power-apps/developer/data-platform/webapi/create-update-entity-definitions-using-web-api,
// .../create-update-entity-relationships-using-web-api and .../create-update-optionsets.
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
// Names unique to this run of the file: the emulator is shared with the other suites.
const suffix = String(process.pid % 100000);
const table = `new_Conf${suffix}`;
const logical = table.toLowerCase();
const set = `${logical}s`;

const label = (text) => ({
  "@odata.type": "Microsoft.Dynamics.CRM.Label",
  LocalizedLabels: [{ "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", Label: text, LanguageCode: 1033 }],
});

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

test("createEntity makes a table that is defined and writable, then a column, a relationship and a choice join it", async (t) => {
  const id = await api.createEntity({
    data: {
      "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
      SchemaName: table,
      DisplayName: label("Conformance Table"),
      DisplayCollectionName: label("Conformance Tables"),
      Description: label("Created by dynamics-web-api's createEntity"),
      OwnershipType: "UserOwned",
      HasActivities: false,
      HasNotes: false,
      IsActivity: false,
      Attributes: [
        {
          "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
          AttributeType: "String",
          AttributeTypeName: { Value: "StringType" },
          SchemaName: `new_Conf${suffix}Name`,
          IsPrimaryName: true,
          MaxLength: 100,
          FormatName: { Value: "Text" },
          RequiredLevel: { Value: "None", CanBeChanged: true },
          DisplayName: label("Name"),
        },
      ],
    },
  });
  assert.match(id, GUID);
  const def = await api.retrieveEntity({ key: `LogicalName='${logical}'`, select: ["LogicalName", "EntitySetName", "PrimaryNameAttribute"] });
  assert.equal(def.EntitySetName, set);
  assert.equal(def.PrimaryNameAttribute, `new_conf${suffix}name`);

  await t.test("the table takes rows", async () => {
    const row = await api.create({ collection: set, data: { [`new_conf${suffix}name`]: "first" } });
    assert.match(row, GUID);
  });

  await t.test("createAttribute adds a column and deleting it removes it", async () => {
    const column = await api.createAttribute({
      entityKey: `LogicalName='${logical}'`,
      data: {
        "@odata.type": "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
        SchemaName: "new_Score",
        DisplayName: label("Score"),
        RequiredLevel: { Value: "None" },
      },
    });
    assert.match(column, GUID);
    const attr = await api.retrieveAttribute({ entityKey: `LogicalName='${logical}'`, attributeKey: "LogicalName='new_score'" });
    assert.equal(attr.AttributeType, "Integer");
    await api.deleteRecord({
      collection: "EntityDefinitions",
      key: `LogicalName='${logical}'`,
      navigationProperty: "Attributes",
      navigationPropertyKey: "LogicalName='new_score'",
    });
    await assert.rejects(
      api.retrieveAttribute({ entityKey: `LogicalName='${logical}'`, attributeKey: "LogicalName='new_score'" }),
      (err) => err.status === 404,
    );
  });

  await t.test("createRelationship makes a one-to-many relationship with its lookup", async () => {
    const rel = await api.createRelationship({
      data: {
        "@odata.type": "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        SchemaName: `new_account_${logical}`,
        ReferencedEntity: "account",
        ReferencedAttribute: "accountid",
        ReferencingEntity: logical,
        CascadeConfiguration: { Assign: "NoCascade", Delete: "RemoveLink", Merge: "NoCascade", Reparent: "NoCascade", Share: "NoCascade", Unshare: "NoCascade" },
        Lookup: {
          "@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
          AttributeType: "Lookup",
          AttributeTypeName: { Value: "LookupType" },
          SchemaName: "new_AccountId",
          DisplayName: label("Account"),
          RequiredLevel: { Value: "None" },
        },
      },
    });
    assert.match(rel, GUID);
    const account = (await api.retrieveMultiple({ collection: "accounts", select: ["accountid"], top: 1 })).value[0].accountid;
    const row = await api.create({
      collection: set,
      data: { [`new_conf${suffix}name`]: "linked", "new_AccountId@odata.bind": `/accounts(${account})` },
    });
    const back = await api.retrieve({ collection: set, key: row, select: ["_new_accountid_value"] });
    assert.equal(back._new_accountid_value, account);
    const defined = await api.retrieveRelationship({ key: `SchemaName='new_account_${logical}'` });
    assert.equal(defined.ReferencingAttribute, "new_accountid");
  });

  await t.test("createRelationship makes a many-to-many relationship that associate and disassociate use", async () => {
    const schemaName = `new_${logical}_contact`;
    const rel = await api.createRelationship({
      data: {
        "@odata.type": "Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
        SchemaName: schemaName,
        Entity1LogicalName: logical,
        Entity2LogicalName: "contact",
        IntersectEntityName: schemaName,
      },
    });
    assert.match(rel, GUID);
    const defined = await api.retrieveRelationship({ key: `SchemaName='${schemaName}'` });
    assert.equal(defined.IntersectEntityName, schemaName);
    const row = await api.create({ collection: set, data: { [`new_conf${suffix}name`]: "shared" } });
    const contact = (await api.retrieveMultiple({ collection: "contacts", select: ["contactid"], top: 1 })).value[0].contactid;
    await api.associate({
      collection: set,
      primaryKey: row,
      relationshipName: schemaName,
      relatedCollection: "contacts",
      relatedKey: contact,
    });
    const pairs = async () =>
      (await api.retrieveMultiple({ collection: `${schemaName}set`, filter: `contactid eq ${contact}` })).value.length;
    assert.equal(await pairs(), 1);
    await api.disassociate({ collection: set, primaryKey: row, relationshipName: schemaName, relatedKey: contact });
    assert.equal(await pairs(), 0);
  });
});

test("createGlobalOptionSet makes a global choice that a choice column uses", async () => {
  const name = `new_confcolors${suffix}`;
  const id = await api.createGlobalOptionSet({
    data: {
      "@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata",
      Name: name,
      DisplayName: label("Colors"),
      IsGlobal: true,
      OptionSetType: "Picklist",
      Options: [
        { Value: 727000000, Label: label("Red") },
        { Value: 727000001, Label: label("Green") },
      ],
    },
  });
  assert.match(id, GUID);
  const set = await api.retrieveGlobalOptionSet({ key: id });
  assert.equal(set.Name, name);
  assert.deepEqual(
    set.Options.map((o) => o.Value),
    [727000000, 727000001],
  );
  const column = `new_Color${suffix}`;
  await api.createAttribute({
    entityKey: "LogicalName='contact'",
    data: {
      "@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
      SchemaName: column,
      DisplayName: label("Color"),
      "GlobalOptionSet@odata.bind": `/GlobalOptionSetDefinitions(${id})`,
    },
  });
  const contact = await api.create({ collection: "contacts", data: { lastname: "Painted", [column.toLowerCase()]: 727000001 } });
  const back = await api.retrieve({ collection: "contacts", key: contact, select: [column.toLowerCase()] });
  assert.equal(back[column.toLowerCase()], 727000001);
  await assert.rejects(
    api.create({ collection: "contacts", data: { lastname: "Unpainted", [column.toLowerCase()]: 1 } }),
    (err) => err.status === 400,
  );
});
