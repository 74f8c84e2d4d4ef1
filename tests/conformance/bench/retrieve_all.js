// Reads every row of a table with dynamics-web-api's retrieveAll and prints one JSON line:
// {"records": N, "ms": T}. Used by host-harness/benches/read_all.rs for a side-by-side figure.
// Needs EMULATOR_URL, EMULATOR_TOKEN, BENCH_SELECT (comma-separated), BENCH_TABLE.

"use strict";

const { DynamicsWebApi } = require("dynamics-web-api");

async function main() {
  const token = process.env.EMULATOR_TOKEN;
  const api = new DynamicsWebApi({
    serverUrl: `${process.env.EMULATOR_URL}/`,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => token,
    timeout: 120000,
  });
  const started = process.hrtime.bigint();
  const result = await api.retrieveAll({
    collection: process.env.BENCH_TABLE || "accounts",
    select: (process.env.BENCH_SELECT || "name").split(","),
    maxPageSize: 5000,
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(JSON.stringify({ records: result.value.length, ms }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
