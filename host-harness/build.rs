//! Builds the Dynamics component (and the misbehaving test component) for `wasm32-wasip2` with
//! the `component` profile, into a target directory of their own: the outer cargo holds the lock
//! on its own profile directory, and wasmtime itself does not build for wasm.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host-harness sits in the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out; share one component build
    // between debug and release builds of the harness.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("component"))
        .unwrap_or_else(|| out_dir.join("component"));
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    ensure_wasm_target();
    for package in ["dynamics-connector", "runaway-connector"] {
        // The crates are rlibs in the workspace (their imports exist only in a host, so a
        // native cdylib cannot link); the component is the cdylib asked for here.
        let status = Command::new(&cargo)
            .current_dir(&root)
            .args([
                "rustc",
                "--lib",
                "--crate-type",
                "cdylib",
                "--target",
                "wasm32-wasip2",
                "--profile",
                "component",
                "-p",
                package,
            ])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_LLVM_COV")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building {package} for wasm32-wasip2 failed"
        );
    }
    let artifacts = target_dir.join("wasm32-wasip2").join("component");
    println!(
        "cargo:rustc-env=DYNAMICS_CONNECTOR_WASM={}",
        artifacts.join("dynamics_connector.wasm").display()
    );
    println!(
        "cargo:rustc-env=RUNAWAY_CONNECTOR_WASM={}",
        artifacts.join("runaway_connector.wasm").display()
    );
    for path in [
        "wit",
        "crates/connector",
        "crates/dataverse",
        "tests/guests/runaway",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
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
