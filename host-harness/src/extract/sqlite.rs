//! SQLite, the embedded destination: one file, compiled in (rusqlite's `bundled`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params_from_iter};

use super::database::{
    Applied, Database, Deletes, Dialect, Landing, STATE_TABLE, SavedState, distinct_ids, quote,
};
use super::schema::Cell;

pub struct Sqlite {
    connection: Connection,
}

impl Sqlite {
    pub fn open(path: &Path) -> anyhow::Result<Sqlite> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let connection = Connection::open(path)
            .with_context(|| format!("opening SQLite database {}", path.display()))?;
        // Several table threads write the one file: WAL lets readers on while one writes, and
        // a writer waits its turn instead of failing with SQLITE_BUSY.
        connection.busy_timeout(Duration::from_secs(300))?;
        connection
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .context("setting the SQLite journal mode")?;
        Ok(Sqlite { connection })
    }

    /// The first column of a query's rows as text (NULL as None): a landed table read back by
    /// a script or a test.
    pub fn column_text(&self, sql: &str) -> anyhow::Result<Vec<Option<String>>> {
        let mut statement = self.connection.prepare(sql)?;
        let values = statement
            .query_map([], |row| row.get::<_, Option<String>>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(values)
    }

    /// Every column of a query's rows as text (NULL as None, a blob as `<blob>`), for tests
    /// that read landed rows back.
    pub fn rows_text(&self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        let mut statement = self.connection.prepare(sql)?;
        let width = statement.column_count();
        let rows = statement
            .query_map([], |row| {
                (0..width)
                    .map(|i| {
                        Ok(match row.get::<_, SqlValue>(i)? {
                            SqlValue::Null => None,
                            SqlValue::Integer(n) => Some(n.to_string()),
                            SqlValue::Real(f) => Some(f.to_string()),
                            SqlValue::Text(t) => Some(t),
                            SqlValue::Blob(_) => Some("<blob>".to_string()),
                        })
                    })
                    .collect()
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

fn value(cell: &Cell) -> SqlValue {
    match cell {
        Cell::Null => SqlValue::Null,
        Cell::Text(text) | Cell::Number(text) => SqlValue::Text(text.clone()),
        Cell::Int(n) => SqlValue::Integer(*n),
        Cell::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Cell::Float(f) => SqlValue::Real(*f),
    }
}

impl Database for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str) -> anyhow::Result<()> {
        self.connection.execute_batch(sql)?;
        Ok(())
    }

    fn columns(&mut self, table: &str) -> anyhow::Result<Vec<String>> {
        let mut statement = self
            .connection
            .prepare("SELECT name FROM pragma_table_info(?1)")?;
        let names = statement
            .query_map([table], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    }

    fn state(&mut self, table: &str) -> anyhow::Result<Option<SavedState>> {
        Ok(self
            .connection
            .query_row(
                &format!(
                    "SELECT mode, resume_from, complete FROM {STATE_TABLE} WHERE table_name = ?1"
                ),
                [table],
                |row| {
                    Ok(SavedState {
                        mode: row.get(0)?,
                        cursor: row.get(1)?,
                        complete: row.get::<_, i64>(2)? != 0,
                    })
                },
            )
            .optional()?)
    }

    fn ids(&mut self, table: &str, primary_id: &str) -> anyhow::Result<Vec<String>> {
        let mut statement = self.connection.prepare(&format!(
            "SELECT {} FROM {}",
            quote(primary_id),
            quote(table)
        ))?;
        let ids = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    fn count(&mut self, table: &str) -> anyhow::Result<u64> {
        let count: i64 = self.connection.query_row(
            &format!("SELECT count(*) FROM {}", quote(table)),
            [],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    fn apply(&mut self, landing: &Landing) -> anyhow::Result<Applied> {
        let statements = landing.statements(Dialect::Sqlite);
        // IMMEDIATE takes the write lock at the start, so two threads never both read and
        // then deadlock upgrading.
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut applied = Applied::default();
        {
            // Which of the page's rows are new, asked of the primary key's index before the
            // upserts (an upsert does not say whether it inserted).
            let mut held = transaction.prepare(&format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = ?1)",
                quote(landing.table),
                quote(landing.primary_id)
            ))?;
            for id in distinct_ids(landing) {
                if !held.query_row([id], |row| row.get::<_, bool>(0))? {
                    applied.added += 1;
                }
            }
            let mut upsert = transaction
                .prepare(&statements.upsert)
                .with_context(|| format!("preparing {}", statements.upsert))?;
            for (id, cells) in &landing.rows {
                let values =
                    std::iter::once(SqlValue::Text(id.clone())).chain(cells.iter().map(value));
                upsert
                    .execute(params_from_iter(values))
                    .with_context(|| format!("upserting row {id} of {}", landing.table))?;
            }
            let mut delete = transaction.prepare(&statements.delete)?;
            for id in &landing.deleted {
                let changed = delete.execute([id])?;
                if landing.deletes == Deletes::Delete {
                    applied.removed += changed as u64;
                }
            }
            transaction.execute(
                &statements.state,
                rusqlite::params![
                    landing.state_key,
                    landing.state.mode,
                    landing.state.cursor,
                    i64::from(landing.state.complete)
                ],
            )?;
        }
        transaction.commit()?;
        Ok(applied)
    }
}
