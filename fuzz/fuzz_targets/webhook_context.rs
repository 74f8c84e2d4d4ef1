//! Webhook bodies: `webhook::read_context` (RemoteExecutionContext), `secrets_match`.
//! The check and its properties: `fuzz_checks::webhook_context`, shared with the seeded run in
//! `cargo test` (crates/dataverse/tests/fuzz_seeded.rs).

#![no_main]

#[path = "../../crates/dataverse/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::webhook_context(data));
