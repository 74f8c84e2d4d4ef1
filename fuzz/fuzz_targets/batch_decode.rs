//! `dataverse::batch::decode` on $batch answers (first line: the content type).
//! The check and its properties: `fuzz_checks::batch_decode`, shared with the seeded run in
//! `cargo test` (crates/dataverse/tests/fuzz_seeded.rs).

#![no_main]

#[path = "../../crates/dataverse/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::batch_decode(data));
