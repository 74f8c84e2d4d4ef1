//! Thin wrappers over the host's log import.

use crate::bindings::dynamics::connector::log::{Level, log};

pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}

pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}
