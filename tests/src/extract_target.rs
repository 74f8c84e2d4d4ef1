//! The database an extraction test lands rows in (SQLite, or PostgreSQL under
//! `tests/postgres.sh`), opened and read back as text. Shared by the end-to-end tests
//! (`e2e_tests::extract_target`) and host-harness's CLI tests (`tests/extract_database.rs`
//! includes this file), so the two cannot drift.

use std::path::PathBuf;

use host_harness::extract::database::Database;
use host_harness::extract::postgres::Postgres;
use host_harness::extract::sqlite::Sqlite;

/// A database a test lands rows in and reads back as text.
pub enum Target {
    Sqlite(PathBuf),
    /// The URL with the test's own schema first on the search path, and that schema.
    Postgres {
        url: String,
        schema: String,
    },
}

impl Target {
    /// A fresh SQLite file named for the test, in a directory of this process.
    pub fn sqlite(name: &str) -> Target {
        let dir = std::env::temp_dir().join(format!("dynamics-extract-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Target::Sqlite(path)
    }

    /// A fresh schema on the `DATABASE_URL` server; None (and a printed notice) without one.
    pub fn postgres(name: &str) -> Option<Target> {
        let Ok(base) = std::env::var("DATABASE_URL") else {
            eprintln!("skipped: DATABASE_URL is not set (run under tests/postgres.sh)");
            return None;
        };
        let schema = format!("{name}_{}", std::process::id());
        Postgres::connect(&base)
            .expect("DATABASE_URL connects")
            .execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(Target::Postgres {
            url: format!("{base}{separator}options=-csearch_path%3D{schema}%20-cTimeZone%3DUTC"),
            schema,
        })
    }

    /// The target as `dynamics extract --to` takes it.
    pub fn arg(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite:{}", path.display()),
            Target::Postgres { url, .. } => url.clone(),
        }
    }

    /// A connection, as the extraction opens one.
    pub fn open(&self) -> anyhow::Result<Box<dyn Database>> {
        Ok(match self {
            Target::Sqlite(path) => Box::new(Sqlite::open(path)?),
            Target::Postgres { url, .. } => Box::new(Postgres::connect(url)?),
        })
    }

    /// Rows of a query, every value as text (NULL as None).
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Target::Sqlite(path) => Sqlite::open(path).unwrap().rows_text(sql).unwrap(),
            Target::Postgres { url, .. } => Postgres::connect(url).unwrap().rows_text(sql).unwrap(),
        }
    }

    /// The first column of a query's rows, as text.
    pub fn column_text(&self, sql: &str) -> Vec<Option<String>> {
        self.query(sql)
            .into_iter()
            .map(|row| row.into_iter().next().flatten())
            .collect()
    }

    /// The first value of a query's first row.
    pub fn one(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next().flatten())
    }

    /// Column name → declared type.
    pub fn column_types(&self, table: &str) -> Vec<(String, String)> {
        let sql = match self {
            Target::Sqlite(_) => format!("SELECT name, type FROM pragma_table_info('{table}')"),
            Target::Postgres { schema, .. } => format!(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_schema = '{schema}' AND table_name = '{table}'"
            ),
        };
        self.query(&sql)
            .into_iter()
            .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
            .collect()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Target::Postgres { .. })
    }

    /// Removes a SQLite file (a PostgreSQL schema is dropped when the next run makes it).
    pub fn remove(&self) {
        if let Target::Sqlite(path) = self {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}
