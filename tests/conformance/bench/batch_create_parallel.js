// Creates COUNT accounts with dynamics-web-api's executeBatch, BATCH_SIZE per batch, GROUP
// batches at a time with Promise.all (one client per batch in flight, since a client holds one
// batch being built), as a user would write "parallel batches" by hand. Prints one JSON line:
// {"records": N, "failed": F, "ms": T}. Used by host-harness/benches/throughput.rs.
// Needs EMULATOR_URL, EMULATOR_TOKEN; COUNT (default 10000), BATCH_SIZE (default 1000),
// GROUP (default 10), PREFIX (default "Node Parallel").

"use strict";

const { DynamicsWebApi } = require("dynamics-web-api");

async function main() {
  const token = process.env.EMULATOR_TOKEN;
  const count = Number(process.env.COUNT || 10000);
  const batchSize = Number(process.env.BATCH_SIZE || 1000);
  const group = Number(process.env.GROUP || 10);
  const prefix = process.env.PREFIX || "Node Parallel";
  const client = () =>
    new DynamicsWebApi({
      serverUrl: `${process.env.EMULATOR_URL}/`,
      dataApi: { version: "9.2" },
      onTokenRefresh: async () => token,
      timeout: 600000,
    });
  const clients = Array.from({ length: group }, client);
  const batch = async (api, offset) => {
    api.startBatch();
    for (let i = offset; i < Math.min(offset + batchSize, count); i++) {
      api.create({ collection: "accounts", data: { name: `${prefix} ${i}`, accountnumber: `NODEP-${i}` } });
    }
    const responses = await api.executeBatch({ continueOnError: true });
    return responses.filter((r) => !(r instanceof Error)).length;
  };
  const started = process.hrtime.bigint();
  let created = 0;
  let failed = 0;
  const offsets = [];
  for (let offset = 0; offset < count; offset += batchSize) offsets.push(offset);
  for (let g = 0; g < offsets.length; g += group) {
    const slice = offsets.slice(g, g + group);
    const results = await Promise.allSettled(slice.map((offset, k) => batch(clients[k], offset)));
    results.forEach((r, k) => {
      const size = Math.min(batchSize, count - slice[k]);
      if (r.status === "fulfilled") {
        created += r.value;
        failed += size - r.value;
      } else {
        failed += size;
      }
    });
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(JSON.stringify({ records: created, failed, ms }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
