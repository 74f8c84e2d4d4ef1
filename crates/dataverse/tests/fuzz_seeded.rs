//! A short, deterministic run of every fuzz target inside `cargo test`: the same checks as
//! `fuzz/fuzz_targets/*.rs` (they live in `tests/fuzz_checks/mod.rs`), fed a few thousand
//! inputs each from a fixed-seed xorshift generator: the seeds of `tests/fuzz_seeds/<target>/`
//! (also the fuzzers' starting corpus) as they are, mutated, spliced, and plain random bytes.
//! A failure names the target and the input, to replay or to add to the seeds.

mod fuzz_checks;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use serde_json::Value;

/// Inputs per target, besides the seeds themselves.
const RUNS: usize = 3000;

/// xorshift64* (Vigna): small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `bound` (which must not be 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Fragments that matter to the parsers, spliced in by the mutator.
const TOKENS: &[&str] = &[
    "\r\n",
    "\n",
    "\r",
    "\r\n\r\n",
    "--",
    "--batchresponse_1",
    "--batchresponse_1--",
    "--changesetresponse_2",
    "--changesetresponse_2--",
    "Content-Type: multipart/mixed; boundary=",
    "Content-Type: application/http\r\n",
    "Content-ID: ",
    "HTTP/1.1 200 OK\r\n",
    "HTTP/1.1 99999 X",
    "boundary=\"",
    ";",
    ":",
    "'",
    "''",
    "\"",
    "=",
    ",",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "<",
    ">",
    "/>",
    "</",
    "&amp;",
    "&#10;",
    "&#xD800;",
    "&bogus;",
    "<![CDATA[",
    "<!DOCTYPE fetch>",
    "<?xml version=\"1.0\"?>",
    "<!--",
    "-->",
    "xmlns:a=\"x\"",
    "a:",
    "%",
    "%25",
    "%2",
    "%253c",
    "%C3%A9",
    "%FF",
    "+",
    "\\u0000",
    "\\ud800",
    "/Date(",
    ")/",
    "/Date(-9223372036854775808)/",
    "/Date(9223372036854775807-0700)/",
    "/Date(-)/",
    "__type",
    "EntityReference:",
    "OptionSetValue:",
    "\"key\":",
    "\"value\":",
    "\"Attributes\":",
    "1e300",
    "-0",
    ".",
    "-9223372036854775809",
    "18446744073709551616",
    "NaN",
    "inf",
    "{6F4B8D4E-0000-0000-0000-000000000001}",
    "é",
    "\u{feff}",
    "\u{2028}",
    "\0",
];

/// One input derived from the seeds: a seed with a few mutations, or random bytes.
fn input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(8) == 0 {
        let length = rng.below(200);
        return (0..length).map(|_| rng.next() as u8).collect();
    }
    let mut data = rng.pick(seeds).clone();
    for _ in 0..1 + rng.below(6) {
        mutate(rng, &mut data, seeds);
    }
    data
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let at = |rng: &mut Rng, data: &Vec<u8>| rng.below(data.len() + 1);
    match rng.below(9) {
        // Flip a bit.
        0 if !data.is_empty() => {
            let index = rng.below(data.len());
            data[index] ^= 1 << rng.below(8);
        }
        // Replace a byte with a random or a boundary value.
        1 if !data.is_empty() => {
            let index = rng.below(data.len());
            data[index] = *rng.pick(&[0, b'\n', b'\r', b'-', b'\'', b'"', b'<', 0x7f, 0x80, 0xff]);
            if rng.below(2) == 0 {
                data[index] = rng.next() as u8;
            }
        }
        // Insert random bytes.
        2 => {
            let index = at(rng, data);
            let length = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..length).map(|_| rng.next() as u8).collect();
            data.splice(index..index, bytes);
        }
        // Delete a range.
        3 if !data.is_empty() => {
            let start = rng.below(data.len());
            let end = (start + 1 + rng.below(32)).min(data.len());
            data.drain(start..end);
        }
        // Copy a range elsewhere.
        4 if !data.is_empty() => {
            let start = rng.below(data.len());
            let end = (start + 1 + rng.below(64)).min(data.len());
            let copy = data[start..end].to_vec();
            let index = at(rng, data);
            data.splice(index..index, copy);
        }
        // Truncate.
        5 => {
            let end = at(rng, data);
            data.truncate(end);
        }
        // Splice in part of another seed.
        6 => {
            let other = rng.pick(seeds);
            if !other.is_empty() {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(128)).min(other.len());
                let index = at(rng, data);
                data.splice(index..index, other[start..end].iter().copied());
            }
        }
        // A JSON value replaced by another, keeping the body JSON (webhook bodies).
        7 => {
            if let Ok(mut value) = serde_json::from_slice::<Value>(data) {
                replace_json(rng, &mut value);
                *data = value.to_string().into_bytes();
            }
        }
        // Insert a token.
        _ => {
            let index = at(rng, data);
            let token = rng.pick(TOKENS).as_bytes();
            data.splice(index..index, token.iter().copied());
        }
    }
}

/// Replaces one value somewhere in `value` by a random one.
fn replace_json(rng: &mut Rng, value: &mut Value) {
    let children = match value {
        Value::Array(items) => items.len(),
        Value::Object(object) => object.len(),
        _ => 0,
    };
    if children > 0 && rng.below(4) != 0 {
        let index = rng.below(children);
        let child = match value {
            Value::Array(items) => &mut items[index],
            Value::Object(object) => object.values_mut().nth(index).expect("in range"),
            _ => unreachable!(),
        };
        return replace_json(rng, child);
    }
    *value = match rng.below(9) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => serde_json::json!(rng.next() as i64),
        3 => serde_json::json!(f64::from_bits(rng.next()) % 1e300),
        4 => Value::String(rng.pick(TOKENS).to_string()),
        5 => Value::String(format!("/Date({})/", rng.next() as i64)),
        6 => {
            serde_json::json!([{"key": "x", "value": {"__type": "EntityReference:x", "Id": "1", "LogicalName": "a"}}])
        }
        7 => serde_json::json!({"Attributes": [{"key": "k", "value": {"Value": 3}}]}),
        _ => serde_json::json!([{"key": rng.pick(TOKENS), "value": {"Attributes": []}}]),
    };
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_seeds")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&folder)
        .unwrap_or_else(|problem| panic!("{}: {problem}", folder.display()))
        .map(|entry| entry.expect("a readable folder").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| fs::read(file).expect("a readable seed"))
        .collect()
}

/// Runs `check` on `data`; a panic fails the test with the target and the input.
fn run(target: &str, check: fuzz_checks::Check, data: &[u8]) {
    if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| check(data))) {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        panic!(
            "{target} failed on {:?} (bytes {data:?}): {message}",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn every_fuzz_target_survives_a_seeded_run() {
    for (number, (target, check)) in fuzz_checks::TARGETS.into_iter().enumerate() {
        let seeds = seeds(target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for seed in &seeds {
            run(target, check, seed);
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ number as u64);
        for _ in 0..RUNS {
            run(target, check, &input(&mut rng, &seeds));
        }
    }
}
