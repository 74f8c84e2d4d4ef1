//! Checks that keep the crate's layout (see the crate docs) from drifting back.

use std::path::{Path, PathBuf};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Every Rust source of the crate but this one, with its path below `src/`, and its code up
/// to its tests (from a `#[cfg(test)]` line on, left out: tests may spell out what they check).
fn sources() -> Vec<(String, String)> {
    let src = Path::new(MANIFEST_DIR).join("src");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.strip_prefix(&src).unwrap().display().to_string();
                if name == "layout.rs" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let code: Vec<&str> = text
                    .lines()
                    .take_while(|line| line.trim() != "#[cfg(test)]")
                    .collect();
                out.push((name, code.join("\n")));
            }
        }
    }
    out
}

/// The crate modules a source names: `crate::x::…`, `crate::x;` and the members of
/// `crate::{x, y::…}`.
fn modules_used(code: &str) -> Vec<&str> {
    let mut modules: Vec<&str> = code
        .split("crate::")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .next()
        })
        .collect();
    for group in code.split("crate::{").skip(1) {
        let members = group.split('}').next().unwrap_or_default();
        modules.extend(
            members
                .split(',')
                .filter_map(|m| m.trim().split("::").next()),
        );
    }
    modules
}

#[test]
fn the_emulator_does_not_depend_on_the_connectors_dataverse_crate() {
    let manifest = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("Cargo.toml")).unwrap();
    let depends = manifest.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("dataverse ")
            || line.starts_with("dataverse=")
            || line.starts_with("dataverse.")
            || line.contains("crates/dataverse\"")
    });
    assert!(
        !depends,
        "the emulator must stay independent of crates/dataverse"
    );
    let uses: Vec<String> = sources()
        .into_iter()
        .filter(|(_, code)| code.contains("dataverse::"))
        .map(|(name, _)| name)
        .collect();
    assert!(uses.is_empty(), "{uses:?} use the dataverse crate");
}

#[test]
fn error_codes_are_spelled_only_in_error_rs() {
    let spelled: Vec<String> = sources()
        .into_iter()
        .filter(|(name, code)| name != "error.rs" && code.contains("\"0x8"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        spelled.is_empty(),
        "{spelled:?} spell an error code: use the constants of error.rs"
    );
}

#[test]
fn only_the_front_and_batch_import_the_dispatcher() {
    // The dispatcher knows every handler; a handler that imported it back would make the two
    // depend on each other again.
    let mut importers: Vec<String> = sources()
        .into_iter()
        .filter(|(name, code)| name != "routes.rs" && modules_used(code).contains(&"routes"))
        .map(|(name, _)| name)
        .collect();
    importers.sort();
    assert_eq!(importers, ["batch.rs", "server.rs"]);
}

#[test]
fn nothing_below_the_handlers_imports_a_handler() {
    const ABOVE: &[&str] = &[
        "server", "routes", "batch", "read", "writes", "delta", "fetchxml", "metadata", "csdl",
        "messages", "files", "search",
    ];
    const BELOW: &[&str] = &[
        "wire.rs",
        "row_key.rs",
        "render.rs",
        "paging.rs",
        "impersonation.rs",
        "webhooks.rs",
        "error.rs",
        "schema.rs",
        "catalog.rs",
        "store.rs",
        "blobs.rs",
        "seed.rs",
        "guid.rs",
        "datetime.rs",
        "odata.rs",
    ];
    let mut upward = Vec::new();
    for (name, code) in sources() {
        if !BELOW.contains(&name.as_str()) && !name.starts_with("odata/") {
            continue;
        }
        let modules = modules_used(&code);
        for handler in ABOVE {
            if modules.contains(handler) {
                upward.push(format!("{name} imports {handler}"));
            }
        }
    }
    assert!(upward.is_empty(), "{upward:?}");
}
