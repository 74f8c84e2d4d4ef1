//! PostgreSQL, the destination for teams, through the synchronous `postgres` client.
//!
//! Every value is bound as text and cast in the statement (`$2::text::numeric`), so one binding
//! type serves every column type and a decimal keeps all its digits.

use anyhow::Context as _;
use postgres::{Client, NoTls};

use super::database::{Database, Dialect, Landing, STATE_TABLE, SavedState, cell_text};

/// PostgreSQL's limit on a statement's parameters is 65,535.
const MAX_PARAMETERS: usize = 65_000;

pub struct Postgres {
    client: Client,
}

impl Postgres {
    /// Connects with a libpq-style URL. TLS is not compiled in: a URL asking for
    /// `sslmode=require` is refused by the server handshake, so name a loopback or private
    /// server, or tunnel (say so in the error).
    pub fn connect(url: &str) -> anyhow::Result<Postgres> {
        let client = Client::connect(url, NoTls).map_err(|problem| {
            anyhow::anyhow!(
                "connecting to PostgreSQL at {}: {problem}",
                without_password(url)
            )
        })?;
        Ok(Postgres { client })
    }

    /// The first column of a query's rows as text (NULL as None): a landed table read back by
    /// a script or a test.
    pub fn column_text(&mut self, sql: &str) -> anyhow::Result<Vec<Option<String>>> {
        Ok(self
            .client
            .simple_query(sql)?
            .into_iter()
            .filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
                _ => None,
            })
            .collect())
    }

    /// Every column of a query's rows as text (NULL as None), for tests that read landed
    /// rows back.
    pub fn rows_text(&mut self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        Ok(self
            .client
            .simple_query(sql)?
            .into_iter()
            .filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }
}

/// The URL as it may be shown: a password in it is replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            let masked = if authority[..authority.len() - host.len() - 1].contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

impl Database for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str) -> anyhow::Result<()> {
        self.client.batch_execute(sql)?;
        Ok(())
    }

    fn columns(&mut self, table: &str) -> anyhow::Result<Vec<String>> {
        let rows = self.client.query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn state(&mut self, table: &str) -> anyhow::Result<Option<SavedState>> {
        let row = self.client.query_opt(
            &format!("SELECT mode, resume_from, complete FROM {STATE_TABLE} WHERE table_name = $1"),
            &[&table],
        )?;
        Ok(row.map(|row| SavedState {
            mode: row.get(0),
            cursor: row.get(1),
            complete: row.get(2),
        }))
    }

    fn ids(&mut self, table: &str, primary_id: &str) -> anyhow::Result<Vec<String>> {
        let rows = self.client.query(
            &format!("SELECT \"{primary_id}\"::text FROM \"{table}\""),
            &[],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn count(&mut self, table: &str) -> anyhow::Result<u64> {
        let row = self
            .client
            .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn apply(&mut self, landing: &Landing) -> anyhow::Result<()> {
        let statements = landing.statements(Dialect::Postgres);
        let mut transaction = self.client.transaction()?;
        // Many rows per statement: one round trip per chunk instead of per row. A chunk
        // may not name a row twice (ON CONFLICT cannot change one row twice in a command), so
        // a call's output that repeats an ID goes row by row.
        let width = landing.columns.len() + 1;
        let ids: std::collections::HashSet<&str> =
            landing.rows.iter().map(|(id, _)| id.as_str()).collect();
        let per_statement = if ids.len() == landing.rows.len() {
            (MAX_PARAMETERS / width).clamp(1, 1000)
        } else {
            1
        };
        let mut prepared: Option<(usize, postgres::Statement)> = None;
        for chunk in landing.rows.chunks(per_statement) {
            let statement = match &prepared {
                Some((rows, statement)) if *rows == chunk.len() => statement.clone(),
                _ => {
                    let sql = landing.upsert(Dialect::Postgres, chunk.len());
                    let statement = transaction
                        .prepare(&sql)
                        .with_context(|| format!("preparing the upsert into {}", landing.table))?;
                    prepared = Some((chunk.len(), statement.clone()));
                    statement
                }
            };
            let values: Vec<Option<String>> = chunk
                .iter()
                .flat_map(|(id, cells)| {
                    std::iter::once(Some(id.clone())).chain(cells.iter().map(cell_text))
                })
                .collect();
            let parameters: Vec<&(dyn postgres::types::ToSql + Sync)> = values
                .iter()
                .map(|v| v as &(dyn postgres::types::ToSql + Sync))
                .collect();
            transaction
                .execute(&statement, &parameters)
                .with_context(|| {
                    format!(
                        "upserting rows {}..{} of {}",
                        chunk[0].0,
                        chunk[chunk.len() - 1].0,
                        landing.table
                    )
                })?;
        }
        if !landing.deleted.is_empty() {
            let delete = transaction.prepare(&statements.delete)?;
            for id in &landing.deleted {
                transaction.execute(&delete, &[id])?;
            }
        }
        let complete = landing.state.complete.to_string();
        transaction.execute(
            &statements.state,
            &[
                &landing.state_key,
                &landing.state.mode,
                &landing.state.cursor,
                &complete,
            ],
        )?;
        transaction.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(
            without_password("postgres://app:s3cret@db.local:5432/crm?sslmode=disable"),
            "postgres://app:***@db.local:5432/crm?sslmode=disable"
        );
        assert_eq!(
            without_password("postgres://app@127.0.0.1/crm"),
            "postgres://app@127.0.0.1/crm"
        );
        assert_eq!(without_password("postgres:///crm"), "postgres:///crm");
    }
}
