//! Record keys and OData literals: `RecordKey::parse`, `from_object`, `segment`,
//! `display`, `odata::string_literal`, `is_identifier`, `keys::id_from_entity_url`.
//! The check and its properties: `fuzz_checks::odata_keys`, shared with the seeded run in
//! `cargo test` (crates/dataverse/tests/fuzz_seeded.rs).

#![no_main]

#[path = "../../crates/dataverse/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::odata_keys(data));
