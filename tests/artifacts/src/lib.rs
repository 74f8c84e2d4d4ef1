//! The guests of the connector world, built for `wasm32-wasip2` by this crate's build script
//! with the `component` profile, in a target directory of their own (as wasmtime's
//! `test-programs/artifacts` does).
//!
//! Depend on this crate for the component's bytes or for a guest's path; the build script
//! reruns when any source file the guests were built from changes (it reads their dep-info).

/// The Dynamics 365 component, embedded.
pub static DYNAMICS_CONNECTOR: &[u8] = include_bytes!(env!("DYNAMICS_CONNECTOR_WASM"));

/// Path of the built Dynamics component file.
pub const DYNAMICS_CONNECTOR_PATH: &str = env!("DYNAMICS_CONNECTOR_WASM");

/// Path of a deliberately misbehaving component, for tests of the host's limits.
#[cfg(feature = "runaway")]
pub const RUNAWAY_CONNECTOR_PATH: &str = env!("RUNAWAY_CONNECTOR_WASM");
