//! The check that fuzzing runs on the component's input parser, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/input_parse.rs`, with the `fuzzing` feature) and the seeded run in
//! `cargo test` below.

use crate::actions::CATALOGUE;
use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::definition::Kind;
use crate::input::Input;

/// Parses `data` as the input JSON of every action: it is accepted or refused as invalid input
/// naming the field, never a panic; one-line inputs that are accepted hold no control character.
pub fn input_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for action in CATALOGUE {
        match Input::parse(action.inputs, text) {
            Ok(input) => {
                for definition in action.inputs {
                    if matches!(definition.kind, Kind::Text | Kind::Picklist)
                        && let Some(value) = input.text(definition.key)
                    {
                        assert!(
                            !value.chars().any(char::is_control),
                            "{}: {} accepted a control character",
                            action.key,
                            definition.key
                        );
                    }
                }
            }
            Err(failure) => {
                assert_eq!(
                    failure.code,
                    ErrorCode::InvalidInput,
                    "{}: {failure:?}",
                    action.key
                );
                assert!(failure.field.is_some(), "{}: {failure:?}", action.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs that real flows send, to mutate from.
    const SEEDS: &[&str] = &[
        r#"{"entityType": "accounts", "entityId": "accountnumber='A-1'", "fieldNames": ["name"]}"#,
        r#"{"entityType": "accounts", "fieldValues": [{"key": "name", "value": "x"}], "dynamicValues": {"parentaccountid": {"table": "accounts", "id": "00000000-0000-0000-0000-000000000001"}}}"#,
        r#"{"batchActions": [{"collection": "accounts", "action": "create", "data": {"name": "a"}}], "allOrNothing": "true"}"#,
        r#"{"url": "/api/data/v9.2/accounts?$top=1", "method": "GET", "headers": {"Prefer": "odata.maxpagesize=1"}, "queryParams": [{"key": "a", "value": "b"}]}"#,
        r#"{"entityType": "accounts", "records": [{"accountnumber": "A-1"}], "matchOn": "accountnumber", "batchSize": 10}"#,
        r#"{"entityType": "accounts", "recordsPerPage": "50", "fetchAll": true, "maxRecords": 1e3}"#,
        "\u{feff}{}",
        "",
        "null",
    ];

    const TOKENS: &[&str] = &[
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\\u0000",
        "\\r\\n",
        "\u{0}",
        "\r\n",
        "'",
        "null",
        "true",
        "1e999",
        "-0",
        "\"entityId\"",
        "\"batchActions\"",
        "%41",
        "\u{202e}",
        "\u{feff}",
    ];

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn input_parsing_survives_a_seeded_run_of_mutated_inputs() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for seed in SEEDS {
            input_parse(seed.as_bytes());
        }
        for _ in 0..1_500 {
            let mut text: Vec<u8> = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
            for _ in 0..rng.below(4) + 1 {
                let at = if text.is_empty() {
                    0
                } else {
                    rng.below(text.len() + 1)
                };
                match rng.below(4) {
                    0 => {
                        let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                        text.splice(at..at, token.iter().copied());
                    }
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    2 if at < text.len() => text[at] = (rng.next() & 0xff) as u8,
                    _ => text.truncate(at),
                }
            }
            input_parse(&text);
        }
    }
}
