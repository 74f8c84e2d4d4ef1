//! The connections: the three connection types and their inputs (`definitions`), the settings an
//! invocation derives from a connection (`settings`), and the connection test (`test`).
//!
//! Dependencies run one way: the test signs in through `auth` and asks through `client`, which
//! both read `Settings`; nothing here below the test reaches back up.

mod definitions;
mod settings;
mod test;

pub use definitions::definitions;
pub use settings::Settings;
pub use test::test;
