//! The `dynamics` command line and what it serves: the demo, the flow designer, extraction,
//! the auth-code sign-in and the webhook server, over the host library (`dynamics-host`).
//!
//! A library target only so that the end-to-end tests, the CLI tests and the benchmarks can
//! drive these pieces; embedders use `dynamics-host`, which has none of them.
//!
//! Dependency direction: this crate → `dynamics-host` (wasmtime, the policy, tokens) and →
//! `dataverse-emulator` (the demo's and the designer's embedded emulator). Nothing depends on
//! it but its own binary, tests and benchmarks and the e2e tests.

pub mod demo;
pub mod designer;
pub mod extract;
pub mod http;
pub mod login;
pub mod shop_sync;
pub mod webhook_server;
