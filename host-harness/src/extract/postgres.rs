//! PostgreSQL, the destination for teams, through the synchronous `postgres` client.
//!
//! Each page's rows are `COPY`ed as text into a temporary table and moved by one upsert that
//! casts each column (`c2::NUMERIC`), so a decimal keeps all its digits. Where the role may not
//! create temporary tables, or a table is too wide for the stage, rows are bound as text
//! parameters instead (`$2::text::numeric`), up to PostgreSQL's 65,535 a statement.

use std::io::Write as _;

use anyhow::Context as _;
use postgres::{Client, NoTls};

use super::database::{
    Applied, Database, Deletes, Dialect, Landing, STATE_TABLE, SavedState, cell_text, distinct_ids,
    quote,
};

/// Bytes of COPY text sent to the server at a time.
const COPY_CHUNK: usize = 64 * 1024;

/// Parameters of one statement on the fallback path; PostgreSQL takes at most 65,535.
const MAX_PARAMETERS: usize = 65_000;

/// The temporary table a page is copied into, in the session's own temporary schema so that no
/// table of the database can be taken for it.
const STAGE: &str = "pg_temp._dynamics_stage";

/// PostgreSQL's limit on a table's columns; the stage has two more than the page's columns.
const MAX_COLUMNS: usize = 1600;

/// Appends `value` as a field of PostgreSQL's COPY text format: `\N` for NULL; backslash, tab,
/// newline and carriage return escaped (<https://www.postgresql.org/docs/current/sql-copy.html>,
/// "Text Format").
fn push_copy_field(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &byte in value.as_bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

pub struct Postgres {
    client: Client,
    /// Whether the role may create temporary tables (the COPY path needs one).
    may_stage: bool,
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
        let mut postgres = Postgres {
            client,
            may_stage: true,
        };
        // A hardened database may revoke TEMPORARY from PUBLIC; rows then go as parameters.
        postgres.may_stage = postgres
            .client
            .query_one(
                "SELECT has_database_privilege(current_database(), 'TEMPORARY')",
                &[],
            )
            .map(|row| row.get::<_, bool>(0))
            .unwrap_or(false);
        Ok(postgres)
    }

    /// Lands rows as text parameters only, as where temporary tables are not allowed (tests).
    pub fn without_staging(mut self) -> Postgres {
        self.may_stage = false;
        self
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
            &format!("SELECT {}::text FROM {}", quote(primary_id), quote(table)),
            &[],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn count(&mut self, table: &str) -> anyhow::Result<u64> {
        let row = self
            .client
            .query_one(&format!("SELECT count(*) FROM {}", quote(table)), &[])?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn apply(&mut self, landing: &Landing) -> anyhow::Result<Applied> {
        let statements = landing.statements(Dialect::Postgres);
        let mut transaction = self.client.transaction()?;
        let mut applied = Applied::default();
        if !landing.rows.is_empty() {
            // Which of the page's rows are new, asked of the primary key's index before the
            // upsert: INSERT … ON CONFLICT reports rows written, not which were new (short of
            // reading the system column xmax, which PostgreSQL does not document for this).
            let ids = distinct_ids(landing);
            let held: i64 = transaction
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {} WHERE {} = ANY($1::text[]::uuid[])",
                        quote(landing.table),
                        quote(landing.primary_id)
                    ),
                    &[&ids],
                )
                .with_context(|| format!("looking up the page's rows in {}", landing.table))?
                .get(0);
            applied.added = (ids.len() as u64).saturating_sub(held as u64);
        }
        if self.may_stage && landing.columns.len() + 2 <= MAX_COLUMNS {
            stage_and_upsert(&mut transaction, landing)?;
        } else {
            upsert_by_parameters(&mut transaction, landing)?;
        }
        if !landing.deleted.is_empty() {
            let delete = transaction.prepare(&statements.delete)?;
            for id in &landing.deleted {
                let changed = transaction.execute(&delete, &[id])?;
                if landing.deletes == Deletes::Delete {
                    applied.removed += changed;
                }
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
        Ok(applied)
    }
}

/// Copies the page's rows into a temporary table and moves them with one upsert. A multi-row
/// INSERT … VALUES with a parameter per cell spent most of a page in PostgreSQL's parser and
/// planner (a statement of up to 65,000 parameters, planned again for each page); COPY streams
/// the text and the upsert is planned once per page. The table goes at commit or rollback.
fn stage_and_upsert(
    transaction: &mut postgres::Transaction<'_>,
    landing: &Landing,
) -> anyhow::Result<()> {
    if landing.rows.is_empty() {
        return Ok(());
    }
    let staging = || format!("staging {} rows of {}", landing.rows.len(), landing.table);
    transaction
        .batch_execute(&landing.stage_ddl(STAGE))
        .with_context(staging)?;
    let mut writer = transaction
        .copy_in(&landing.stage_copy(STAGE))
        .with_context(staging)?;
    let mut buffer = Vec::with_capacity(COPY_CHUNK + 4096);
    for (id, cells) in &landing.rows {
        push_copy_field(&mut buffer, Some(id));
        for cell in cells {
            buffer.push(b'\t');
            push_copy_field(&mut buffer, cell_text(cell).as_deref());
        }
        buffer.push(b'\n');
        if buffer.len() >= COPY_CHUNK {
            writer.write_all(&buffer).with_context(staging)?;
            buffer.clear();
        }
    }
    writer.write_all(&buffer).with_context(staging)?;
    writer.finish().with_context(staging)?;
    transaction
        .batch_execute(&landing.upsert_staged(STAGE))
        .with_context(|| {
            format!(
                "upserting {} rows of {} (a value that does not fit its column's type is named above)",
                landing.rows.len(),
                landing.table
            )
        })?;
    Ok(())
}

/// Upserts the page's rows as text parameters, up to 1,000 rows a statement (a page that names
/// a row twice goes a row at a time, so its later version lands).
fn upsert_by_parameters(
    transaction: &mut postgres::Transaction<'_>,
    landing: &Landing,
) -> anyhow::Result<()> {
    let width = landing.columns.len() + 1;
    let per_statement = if distinct_ids(landing).len() == landing.rows.len() {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn copy_fields_escape_what_the_text_format_reads_as_structure() {
        let mut out = Vec::new();
        super::push_copy_field(&mut out, Some("a\tb\nc\rd\\e\\N é"));
        assert_eq!(out, "a\\tb\\nc\\rd\\\\e\\\\N é".as_bytes());
        out.clear();
        super::push_copy_field(&mut out, None);
        assert_eq!(out, b"\\N");
        out.clear();
        super::push_copy_field(&mut out, Some(""));
        assert!(out.is_empty(), "an empty text is an empty field, not NULL");
    }

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
