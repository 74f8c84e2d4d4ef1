//! What a client needs to know about the Dataverse Web API and Entra ID, with no I/O: how to
//! address an environment, how to write OData literals and identifiers safely, how to read the
//! service's errors. Everything here is plain functions over values, tested natively.

#![deny(missing_docs)]

pub mod batch;
pub mod bulk;
pub mod csdl;
pub mod encoding;
pub mod entra;
pub mod environment;
pub mod error;
pub mod fetchxml;
pub mod guid;
pub mod keys;
pub mod multipart;
pub mod odata;
pub mod query;
pub mod retry;
pub mod webhook;
