//! Thin wrappers over the host's log import. Natively (unit tests) there is no host, so the
//! messages go to standard error instead.

#[cfg(target_arch = "wasm32")]
use crate::bindings::dynamics::connector::log::{Level, log};

#[cfg(target_arch = "wasm32")]
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}

#[cfg(target_arch = "wasm32")]
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}

#[cfg(not(target_arch = "wasm32"))]
pub fn info(message: impl AsRef<str>) {
    eprintln!("info: {}", message.as_ref());
}

#[cfg(not(target_arch = "wasm32"))]
pub fn warn(message: impl AsRef<str>) {
    eprintln!("warn: {}", message.as_ref());
}
