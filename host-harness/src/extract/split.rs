//! A table's first watermark read split into ranges of `createdon` (the plan itself is in
//! [`crate::extract::partitions`]): the plan made from three small queries and saved before any
//! range is read, each range read from where an earlier run left it, and the table's next start
//! saved by the worker that completes the last range. A child module of `database` (declared
//! there), whose workers read the ranges.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, anyhow};

use super::super::partitions::{Plan, Range};
use super::super::schema::TableSchema;
use super::{
    Database, Landing, Outcome, PARTITIONED, PageReport, Read, SINCE, STATE_TABLE, SavedState,
    WATERMARK, Worker, ensure, raw_get,
};

/// A table read in ranges at the same time: what each range's worker needs, and how far the
/// ranges are.
pub(super) struct Split {
    pub(super) table: String,
    pub(super) schema: TableSchema,
    pub(super) plan: Plan,
    pub(super) ranges: Vec<Range>,
    /// Ranges not yet complete; the worker that completes the last saves the table's state.
    pub(super) left: AtomicUsize,
    /// Rows and calls of every range this run, for the progress reports.
    pub(super) landed: AtomicU64,
    pub(super) pages: AtomicU64,
    /// The table's rows, kept by every range as its pages land.
    pub(super) rows: Mutex<u64>,
}

/// The state row of a split table's range `index` (entity set names hold no `#`).
fn range_key(table: &str, index: usize) -> String {
    format!("{table}#{index}")
}

/// Removes the state rows of a table's ranges, all there can be.
pub(super) fn drop_range_states(db: &mut dyn Database, table: &str) -> anyhow::Result<()> {
    // `table` passed check_identifier: letters, digits and underscores only.
    let keys: Vec<String> = (0..super::super::partitions::MAX_PARTITIONS)
        .map(|i| format!("'{}'", range_key(table, i)))
        .collect();
    db.execute(&format!(
        "DELETE FROM {STATE_TABLE} WHERE table_name IN ({})",
        keys.join(", ")
    ))
    .with_context(|| format!("clearing the range states of {table}"))
}

impl Worker<'_, '_> {
    /// A new split first read, when asked for and possible: its plan, saved as the table's
    /// state before any range is read.
    pub(super) fn start_split(
        &mut self,
        mode: &str,
        schema: &TableSchema,
        outcome: &mut Outcome,
    ) -> anyhow::Result<Option<Plan>> {
        if mode != WATERMARK || self.options.partitions < 2 {
            return Ok(None);
        }
        let Some(plan) = self.plan(schema, outcome)? else {
            return Ok(None);
        };
        let table = schema.table.as_str();
        // Ranges of an earlier split (read since in another mode) must not be taken for this
        // one's.
        drop_range_states(self.db, table)?;
        self.db.apply(&Landing {
            table,
            state_key: table,
            primary_id: &schema.primary_id,
            columns: &schema.columns,
            rows: Vec::new(),
            deleted: Vec::new(),
            deletes: self.options.deletes,
            state: SavedState {
                mode: PARTITIONED.to_string(),
                cursor: Some(plan.to_text()),
                complete: false,
            },
        })?;
        let text = format!(
            "first read in {} ranges of createdon at once, of rows modified since {}; the next run reads rows modified since {}",
            plan.bounds.len() + 1,
            plan.anchor,
            plan.since
        );
        self.notice(table, outcome, &text);
        Ok(Some(plan))
    }

    /// `rows`: the rows the table held when the run began.
    pub(super) fn split(&self, schema: TableSchema, plan: Plan, rows: u64) -> Arc<Split> {
        let ranges = plan.ranges();
        Arc::new(Split {
            table: schema.table.clone(),
            schema,
            left: AtomicUsize::new(ranges.len()),
            ranges,
            plan,
            landed: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            rows: Mutex::new(rows),
        })
    }

    /// The ranges of a table's first read: its oldest and newest `createdon` and its newest
    /// `modifiedon`, each from one small query (`$orderby` with `$top=1`,
    /// learn.microsoft.com/power-apps/developer/data-platform/webapi/query/overview#limit-the-number-of-rows
    /// and query/order-rows); rows without the value are left out of these queries with
    /// `ne null`, as order-rows' example does, so each edge is an instant (such rows belong to
    /// the first range). None (read whole, with a notice) when the table has no `createdon` or
    /// holds one instant only.
    fn plan(
        &mut self,
        schema: &TableSchema,
        outcome: &mut Outcome,
    ) -> anyhow::Result<Option<Plan>> {
        let table = schema.table.as_str();
        let has = |name: &str| schema.columns.iter().any(|c| c.name == name);
        if !has("createdon") || !has("modifiedon") {
            self.notice(
                table,
                outcome,
                "no createdon or modifiedon column: read whole, not in ranges",
            );
            return Ok(None);
        }
        let mut edge = |column: &str, order: &str| -> anyhow::Result<Option<String>> {
            let answer = raw_get(
                self.runner,
                &format!(
                    "{table}?$select={column}&$filter={column}%20ne%20null&$orderby={column}%20{order}&$top=1"
                ),
            )?;
            Ok(answer["value"][0][column].as_str().map(str::to_string))
        };
        let oldest = edge("createdon", "asc")?;
        let newest = edge("createdon", "desc")?;
        let modified = edge("modifiedon", "desc")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as i64)
            .unwrap_or_default();
        // Fixed here and saved in the plan: every range starts from it, whatever later runs
        // are given (run() checked --since).
        let anchor =
            super::super::partitions::first_start(self.options.anchor_date.as_deref(), now)
                .map_err(|problem| anyhow!("--since {problem}"))?;
        let (Some(oldest), Some(newest), Some(modified)) = (oldest, newest, modified) else {
            self.notice(
                table,
                outcome,
                "no row has both a createdon and a modifiedon (the table is empty, or its rows lack them): read whole, not in ranges",
            );
            return Ok(None);
        };
        let plan = Plan::new(&oldest, &newest, &modified, self.options.partitions, anchor);
        if plan.is_none() {
            let text = if oldest == newest {
                format!(
                    "every row's createdon is the same instant ({oldest}): read whole, not in ranges"
                )
            } else {
                format!(
                    "createdon runs from {oldest:?} to {newest:?} (newest modifiedon {modified:?}), which cannot be split into ranges of whole seconds: read whole"
                )
            };
            self.notice(table, outcome, &text);
        }
        Ok(plan)
    }

    /// One range of a split table, from where an earlier run left it; the worker that completes
    /// the last range saves the table's next start and drops the ranges' states.
    pub(super) fn land_range(&mut self, split: &Split, index: usize) -> anyhow::Result<Outcome> {
        let table = split.table.as_str();
        let key = range_key(table, index);
        let mut outcome = Outcome::default();
        let (cursor, done) = match self.db.state(&key)? {
            Some(saved) if saved.mode == WATERMARK => (saved.cursor, saved.complete),
            _ => (None, false),
        };
        outcome.complete = done || {
            let mut schema = split.schema.clone();
            let mut known = HashSet::new();
            ensure(self.db, &schema, self.options.deletes, &mut known)?;
            let read = Read {
                table,
                state_key: &key,
                mode: WATERMARK,
                cursor,
                // The plan's start, not this run's --since: see Plan.
                anchor: Some(split.plan.anchor.clone()),
                range: Some(&split.ranges[index]),
                split: Some(split),
                rows: &split.rows,
            };
            self.pages(read, &mut schema, &mut known, &mut outcome)?
        };
        if outcome.complete && split.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.db.apply(&Landing {
                table,
                state_key: table,
                primary_id: &split.schema.primary_id,
                columns: &split.schema.columns,
                rows: Vec::new(),
                deleted: Vec::new(),
                deletes: self.options.deletes,
                state: SavedState {
                    mode: SINCE.to_string(),
                    cursor: Some(split.plan.since.clone()),
                    complete: true,
                },
            })?;
            drop_range_states(self.db, table)?;
            self.progress.page(&PageReport {
                table,
                table_number: 0,
                tables: self.options.tables.len(),
                rows_in_all: *split.rows.lock().unwrap_or_else(PoisonError::into_inner),
                rows_this_run: split.landed.load(Ordering::SeqCst),
                rows_this_page: 0,
                pages_this_run: split.pages.load(Ordering::SeqCst),
                complete: true,
            });
        }
        Ok(outcome)
    }
}
