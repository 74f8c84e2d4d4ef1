//! End-to-end: the built component, loaded by the harness, against servers on 127.0.0.1.

mod admin;
mod bad_input;
mod beyond_crud;
mod bulk;
mod catalogue;
mod connections;
mod current_user;
mod designer;
mod exactly_once;
mod extract;
mod files;
mod hostile;
mod impersonation;
mod incremental;
mod limits;
mod logs;
mod metadata;
mod metadata_writes;
mod raw_request;
mod records;
mod resilience;
mod retries;
mod search;
mod sync;
mod tls;
mod triggers;
