// Creates COUNT accounts with dynamics-web-api's executeBatch, BATCH_SIZE per batch, and prints
// one JSON line: {"records": N, "ms": T}. Used by host-harness/benches/bulk.rs.
// Needs EMULATOR_URL, EMULATOR_TOKEN; COUNT (default 10000), BATCH_SIZE (default 1000).

"use strict";

const { DynamicsWebApi } = require("dynamics-web-api");

async function main() {
  const token = process.env.EMULATOR_TOKEN;
  const count = Number(process.env.COUNT || 10000);
  const batchSize = Number(process.env.BATCH_SIZE || 1000);
  const api = new DynamicsWebApi({
    serverUrl: `${process.env.EMULATOR_URL}/`,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
    timeout: 300000,
  });
  const started = process.hrtime.bigint();
  let created = 0;
  for (let offset = 0; offset < count; offset += batchSize) {
    api.startBatch();
    for (let i = offset; i < Math.min(offset + batchSize, count); i++) {
      api.create({ collection: "accounts", data: { name: `Node Batch ${i}`, accountnumber: `NODE-${i}` } });
    }
    const responses = await api.executeBatch({ continueOnError: true });
    created += responses.length;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(JSON.stringify({ records: created, ms }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
