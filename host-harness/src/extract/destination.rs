//! Where `dynamics extract --to` lands the rows.

use std::path::PathBuf;

/// `sqlite:PATH`, `postgres://…` (or `postgresql://…`), or `ndjson:DIR`.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    Sqlite(PathBuf),
    /// A libpq-style URL, kept whole (it may hold a password: never print it as is).
    Postgres(String),
    Ndjson(PathBuf),
}

impl std::str::FromStr for Destination {
    type Err = String;

    fn from_str(text: &str) -> Result<Destination, String> {
        let text = text.trim();
        let nonempty = |rest: &str, what: &str| {
            if rest.is_empty() {
                Err(format!(
                    "{what} needs a path after the colon, such as {what}:crm.db"
                ))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if let Some(rest) = text.strip_prefix("sqlite:") {
            return nonempty(rest.strip_prefix("//").unwrap_or(rest), "sqlite")
                .map(Destination::Sqlite);
        }
        if let Some(rest) = text.strip_prefix("ndjson:") {
            return nonempty(rest, "ndjson").map(Destination::Ndjson);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Destination::Postgres(text.to_string()));
        }
        Err(format!(
            "{:?} is not a destination: give sqlite:PATH, postgres://USER@HOST/DB or ndjson:DIR",
            super::postgres::without_password(text)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_a_wrong_one_is_named_without_its_password() {
        assert_eq!(
            "sqlite:out/crm.db".parse(),
            Ok(Destination::Sqlite("out/crm.db".into()))
        );
        assert_eq!("ndjson:out".parse(), Ok(Destination::Ndjson("out".into())));
        assert_eq!(
            "postgresql://u@127.0.0.1:5433/crm".parse(),
            Ok(Destination::Postgres(
                "postgresql://u@127.0.0.1:5433/crm".into()
            ))
        );
        let problem = "mysql://u:pw@host/db".parse::<Destination>().unwrap_err();
        assert!(problem.contains("is not a destination"), "{problem}");
        assert!(!problem.contains("pw"), "{problem}");
        assert!("sqlite:".parse::<Destination>().is_err());
    }
}
