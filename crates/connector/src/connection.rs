//! The connections: the three connection types and their inputs (`definitions`), the settings an
//! invocation derives from a connection (`settings`), and the connection test (`test`).
//!
//! Dependencies run one way: the test signs in through `auth` and asks through `client`, which
//! both read `Settings`; nothing here below the test reaches back up.

mod certificate;
mod definitions;
mod settings;
mod test;

pub use certificate::{JWT_BEARER, SigningCertificate, hint as assertion_hint};
pub use definitions::{CLIENT_CERTIFICATE, FEDERATED, MANAGED_IDENTITY, definitions};
pub use settings::Settings;
pub use test::test;
