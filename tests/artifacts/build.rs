//! Builds the guests of the connector world for `wasm32-wasip2` with the `component` profile,
//! the way wasmtime's `test-programs/artifacts` does: into a target directory of their own (the
//! outer cargo holds the lock on its own), without the host's rustflags or wrappers, and with
//! `rerun-if-changed` taken from the nested build's dep-info, so any source file of a guest
//! (its crate, `crates/dataverse`, the WIT files) rebuilds it and nothing else does.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A guest: its package, and the env var that carries its path to `lib.rs`.
struct Guest {
    package: &'static str,
    env: &'static str,
}

const DYNAMICS: Guest = Guest {
    package: "dynamics-connector",
    env: "DYNAMICS_CONNECTOR_WASM",
};

const RUNAWAY: Guest = Guest {
    package: "runaway-connector",
    env: "RUNAWAY_CONNECTOR_WASM",
};

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/artifacts sits two levels below the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out; share one guest build between
    // debug and release builds.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("test-artifacts"))
        .unwrap_or_else(|| out_dir.join("test-artifacts"));
    ensure_wasm_target();
    let mut guests = vec![DYNAMICS];
    if env::var_os("CARGO_FEATURE_RUNAWAY").is_some() {
        guests.push(RUNAWAY);
    }
    let artifacts = target_dir.join(WASM_TARGET).join("component");
    for guest in &guests {
        build(&root, &target_dir, guest.package);
        let stem = guest.package.replace('-', "_");
        let wasm = artifacts.join(format!("{stem}.wasm"));
        println!("cargo:rustc-env={}={}", guest.env, wasm.display());
        for source in dep_info(&artifacts.join(format!("{stem}.d"))) {
            println!("cargo:rerun-if-changed={}", source.display());
        }
    }
    // What the dep-info cannot name: the manifests (profile, dependencies) and the lock file.
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "crates/connector/Cargo.toml",
        "crates/dataverse/Cargo.toml",
        "tests/guests/runaway/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
}

/// Builds `package` (an rlib in the workspace: its imports exist only in a host, so a native
/// cdylib cannot link) as the cdylib that is the component.
fn build(root: &Path, target_dir: &Path, package: &str) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(&cargo)
        .current_dir(root)
        .args([
            "rustc",
            "--lib",
            "--crate-type",
            "cdylib",
            "--target",
            WASM_TARGET,
            "--profile",
            "component",
            "-p",
            package,
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_LLVM_COV")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building {package} for {WASM_TARGET} failed"
    );
}

/// The source files a make-style dep-info file (`output: source source ...`) lists, with `\ `
/// as an escaped space. Missing or unreadable: none, and the next build writes it.
fn dep_info(path: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Some(line) = text.lines().next() else {
        return Vec::new();
    };
    let Some((_, sources)) = line.split_once(": ") else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = sources.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    paths
}

const WASM_TARGET: &str = "wasm32-wasip2";

/// Makes sure the toolchain that builds us has the standard library for `wasm32-wasip2`.
///
/// `rust-toolchain.toml` lists the target, but rustup installs listed targets only when it
/// installs the toolchain itself: a machine whose Rust 1.95 came without the target (and with
/// `RUSTUP_AUTO_INSTALL=0`, as on many CI images) would otherwise fail deep in the nested build
/// with "can't find crate for `core`". So the build asks rustup for the target once, and says
/// what to run when rustup is not there.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let Some(sysroot) = sysroot(&rustc) else {
        // No sysroot to look at: let the nested build report whatever is wrong.
        return;
    };
    if has_target(&sysroot) {
        return;
    }
    println!(
        "cargo:warning=the {WASM_TARGET} target is missing from {}; asking rustup for it",
        sysroot.display()
    );
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", WASM_TARGET]);
    // Under rustup's proxy, RUSTUP_TOOLCHAIN names the toolchain building us (the pinned one).
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    match rustup.status() {
        Ok(status) if status.success() && has_target(&sysroot) => {}
        Ok(status) => panic!(
            "the Rust standard library for {WASM_TARGET} is missing and `rustup target add {WASM_TARGET}` failed ({status}); \
             run it by hand (it needs network access to static.rust-lang.org), then build again"
        ),
        Err(error) => panic!(
            "the Rust standard library for {WASM_TARGET} is missing from {} and rustup could not be run ({error}); \
             install rustup and run `rustup target add {WASM_TARGET}`, or install the {WASM_TARGET} standard library \
             for this toolchain by other means, then build again",
            sysroot.display()
        ),
    }
}

fn sysroot(rustc: &str) -> Option<PathBuf> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(text.trim()))
}

fn has_target(sysroot: &Path) -> bool {
    sysroot
        .join("lib")
        .join("rustlib")
        .join(WASM_TARGET)
        .join("lib")
        .is_dir()
}
