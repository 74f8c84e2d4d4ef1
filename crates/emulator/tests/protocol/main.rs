//! The emulator's HTTP tests, as a client sees the protocol: one test binary for them all, since
//! each binary links the whole emulator (one per file cost 37 MB of disk and a link each).

mod support;

mod admin_api;
mod bulk;
mod bulk_messages;
mod change_tracking;
mod cost_model;
mod custom_api_steps;
mod entra_tls;
mod files_search;
mod fno;
mod impersonation;
mod messages;
mod metadata_webhooks;
mod metadata_writes;
mod product_catalog;
mod refusals;
mod step_context;
mod web_api;
