//! FetchXML queries, paging cookie annotations and cookies: `FetchQuery::parse`,
//! `with_paging`, `paging_cookie`, `cookie_page`.
//! The check and its properties: `fuzz_checks::fetchxml_paging`, shared with the seeded run in
//! `cargo test` (crates/dataverse/tests/fuzz_seeded.rs).

#![no_main]

#[path = "../../crates/dataverse/tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::fetchxml_paging(data));
