//! The call context: what every handler (an action, a trigger, a data source) gets besides its
//! input. It lives apart from the action catalogue so that the shared record, metadata and
//! trigger code depends on the context, never on the catalogue that depends on them.

use crate::bindings::dynamics::connector::types::Connection;
use crate::client::Client;
use crate::connection::Settings;
use crate::error::Result;
use crate::metadata::MetadataCache;

/// What a handler gets besides its input: the connection's client and the metadata read so far
/// in this invocation.
pub struct Context<'a> {
    pub client: Client<'a>,
    pub metadata: MetadataCache,
}

/// Runs `f` with the connection's client and a fresh metadata cache.
pub fn with_context<T>(
    connection: &Connection,
    f: impl FnOnce(&Context) -> Result<T>,
) -> Result<T> {
    let settings = Settings::from_connection(connection)?;
    let context = Context {
        client: Client::new(&settings, connection.token.as_ref()),
        metadata: MetadataCache::default(),
    };
    f(&context)
}
