//! Builds the Dynamics component (and the misbehaving test component) for `wasm32-wasip2` with
//! the `component` profile, into a target directory of their own: the outer cargo holds the lock
//! on its own profile directory, and wasmtime itself does not build for wasm.

use std::env;
use std::path::PathBuf;
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
