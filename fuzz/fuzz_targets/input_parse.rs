//! The component's input parser, `Input::parse`, over every action's input definitions. The
//! check and its properties: `dynamics_connector::fuzzing::input_parse`, shared with the seeded
//! run in `cargo test -p dynamics-connector`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dynamics_connector::fuzzing::input_parse(data));
