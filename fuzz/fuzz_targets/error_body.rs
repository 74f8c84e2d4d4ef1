//! Error answers: `error::read_error` (two bytes of status, a Retry-After line, the body).
//! The check and its properties: `fuzz_checks::error_body`, shared with the seeded run in
//! `cargo test` (crates/dataverse/tests/fuzz_seeded.rs).

#![no_main]

#[path = "../../crates/dataverse/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::error_body(data));
