//! Range partitioning of a table's first watermark read: the rows are split into ranges of
//! `createdon`, each read page by page by its own worker through Get New and Updated Records'
//! Created From / Created Before inputs, at the same time.
//!
//! Only a watermark read can be split: with `Prefer: odata.track-changes` the service refuses
//! `$filter`, `$orderby`, `$expand` and `$top`, and the delta link comes only on the last page of
//! the whole read (learn.microsoft.com/power-apps/developer/data-platform/
//! use-change-tracking-synchronize-data-external-systems).
//!
//! The ranges meet: the first is open below (and holds the rows without a `createdon`), the last
//! open above, each one's end the next one's start, so every row falls in exactly one.
//!
//! After the ranges, the table's watermark cannot be the newest `modifiedon` seen: ranges end at
//! different times, so a row of a range already finished, modified afterwards, is older than a
//! row another range read later still, and would be skipped. The next read instead starts from
//! the newest `modifiedon` the table had when the read began, less [`SAFETY_MARGIN_SECS`], so
//! every row modified during the load is read again (the upserts make that harmless).

use serde::{Deserialize, Serialize};

/// How far before the newest `modifiedon` at the start the next read begins: a write whose
/// transaction stamped `modifiedon` before the read began but committed after it is still seen.
pub const SAFETY_MARGIN_SECS: i64 = 300;

/// The most ranges a table is split into (`--partitions`).
pub const MAX_PARTITIONS: usize = 32;

/// A partitioned read as saved in the table's state row: where every range's first read starts,
/// where the next read starts once every range is complete, and the inner bounds of the ranges
/// (n - 1 bounds for n ranges).
///
/// The start is fixed when the plan is made, not taken from each run's flags: a range first
/// read by a rerun with another `--since` (or none, which means one year back from that day)
/// would otherwise start later than the others and miss rows for good, since the table's next
/// read begins after the plan's `since`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub anchor: String,
    pub since: String,
    pub bounds: Vec<String>,
}

/// One range of `createdon`: from (inclusive) and before (exclusive), None when open.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub from: Option<String>,
    pub before: Option<String>,
}

impl Plan {
    /// The plan of a table whose `createdon` values run from `oldest` to `newest` (instants as
    /// Dataverse writes them) and whose newest `modifiedon` is `modified`, in `parts` equal
    /// slices of time (at most [`MAX_PARTITIONS`]); None when there is nothing to split (one
    /// instant, or unreadable values). `anchor` (seconds: the user's `--since`, or one year
    /// back) is where every range starts, and the next start when it is the later one.
    pub fn new(
        oldest: &str,
        newest: &str,
        modified: &str,
        parts: usize,
        anchor: i64,
    ) -> Option<Plan> {
        let (low, high) = (parse_instant(oldest)?, parse_instant(newest)?);
        // drop_range_states clears the states of MAX_PARTITIONS ranges: never plan more.
        let bounds = slice_bounds(low, high, parts.min(MAX_PARTITIONS));
        if bounds.is_empty() {
            return None;
        }
        let since = (parse_instant(modified)? - SAFETY_MARGIN_SECS).max(anchor);
        Some(Plan {
            anchor: dataverse::encoding::iso_datetime(anchor),
            since: dataverse::encoding::iso_datetime(since),
            bounds: bounds
                .into_iter()
                .map(dataverse::encoding::iso_datetime)
                .collect(),
        })
    }

    /// The ranges, in order: open below, meeting at each bound, open above.
    pub fn ranges(&self) -> Vec<Range> {
        let mut ranges = Vec::with_capacity(self.bounds.len() + 1);
        let mut from = None;
        for bound in &self.bounds {
            ranges.push(Range {
                from: from.take(),
                before: Some(bound.clone()),
            });
            from = Some(bound.clone());
        }
        ranges.push(Range { from, before: None });
        ranges
    }

    /// The plan as the state row's cursor.
    pub fn to_text(&self) -> String {
        // Strings only: always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A saved plan; None when the text is not one (the read then starts over), including a
    /// plan of more ranges than [`MAX_PARTITIONS`], whose states could not all be cleared.
    pub fn parse(text: &str) -> Option<Plan> {
        let plan: Plan = serde_json::from_str(text).ok()?;
        if plan.bounds.len() >= MAX_PARTITIONS || parse_instant(&plan.anchor).is_none() {
            return None;
        }
        let ordered = plan
            .bounds
            .iter()
            .map(|b| parse_instant(b))
            .collect::<Option<Vec<_>>>()?
            .windows(2)
            .all(|pair| pair[0] < pair[1]);
        (ordered && parse_instant(&plan.since).is_some()).then_some(plan)
    }
}

/// The inner bounds (whole seconds) of `parts` equal slices from `low` to `high`, strictly
/// increasing and above `low`: slices thinner than a second merge, so there may be fewer.
pub fn slice_bounds(low: i64, high: i64, parts: usize) -> Vec<i64> {
    let mut bounds: Vec<i64> = Vec::new();
    if high <= low || parts < 2 {
        return bounds;
    }
    let span = i128::from(high - low);
    for i in 1..parts {
        let bound = low + (span * i as i128 / parts as i128) as i64;
        if bound > low && bounds.last().is_none_or(|last| *last < bound) {
            bounds.push(bound);
        }
    }
    bounds
}

/// Seconds since 1970 of an ISO 8601 date or instant (`2024-01-31`, `2024-01-31T10:00:00Z`,
/// fractions and `±hh:mm` offsets accepted, fractions dropped), read by the one strict parser
/// the connector's inputs use too; None for anything else.
pub fn parse_instant(text: &str) -> Option<i64> {
    dataverse::encoding::parse_instant(text)
        .ok()
        .map(|instant| instant.unix_seconds)
}

/// Where a first read starts, in seconds: `since` (the user's `--since`, checked), or one
/// year before `now` as Get New and Updated Records reads without an Anchor Date.
pub fn first_start(
    since: Option<&str>,
    now: i64,
) -> Result<i64, dataverse::encoding::InstantError> {
    match since {
        Some(text) => dataverse::encoding::parse_instant(text).map(|i| i.unix_seconds),
        None => Ok(now - 365 * 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_to_the_seconds_iso_datetime_writes() {
        for seconds in [0, 1_672_531_200, 1_709_210_096, 951_782_400, 4_102_444_799] {
            let text = dataverse::encoding::iso_datetime(seconds);
            assert_eq!(parse_instant(&text), Some(seconds), "{text}");
        }
        assert_eq!(
            parse_instant("2024-01-31T10:00:00.123+01:00"),
            parse_instant("2024-01-31T09:00:00Z")
        );
        assert_eq!(
            parse_instant("2024-01-31"),
            parse_instant("2024-01-31T00:00:00Z")
        );
        for bad in [
            "",
            "2024-13-01T00:00:00Z",
            "2024-01-31 10:00:00Z",
            "2024-01-31T10:00:00",
            "2024-01-31T10:00:00.Z",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn slices_are_equal_strictly_increasing_and_merge_below_a_second() {
        assert_eq!(slice_bounds(0, 400, 4), [100, 200, 300]);
        assert_eq!(slice_bounds(0, 2, 4), [1]);
        assert!(slice_bounds(5, 5, 4).is_empty(), "one instant: no split");
        assert!(slice_bounds(0, 100, 1).is_empty());
    }

    #[test]
    fn ranges_meet_open_at_both_ends_and_the_next_read_starts_before_the_newest_change() {
        let plan = Plan::new(
            "2023-01-01T00:00:00Z",
            "2023-01-01T00:04:00Z",
            "2023-06-01T00:10:00Z",
            4,
            parse_instant("2000-01-01T00:00:00Z").unwrap(),
        )
        .unwrap();
        assert_eq!(plan.since, "2023-06-01T00:05:00Z");
        assert_eq!(plan.anchor, "2000-01-01T00:00:00Z");
        let ranges = plan.ranges();
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[0].from, None);
        assert_eq!(ranges[3].before, None);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].before, pair[1].from);
        }
        assert_eq!(Plan::parse(&plan.to_text()), Some(plan));
        assert_eq!(Plan::parse(r#"{"since":"x","bounds":[]}"#), None);
        assert_eq!(
            Plan::parse(r#"{"since":"2024-01-01T00:00:00Z","bounds":["2023-01-01T00:00:00Z"]}"#),
            None,
            "a plan saved without its anchor is not resumed"
        );
        let later_anchor = Plan::new(
            "2023-01-01T00:00:00Z",
            "2023-01-02T00:00:00Z",
            "2023-06-01T00:10:00Z",
            2,
            parse_instant("2024-01-01T00:00:00Z").unwrap(),
        )
        .unwrap();
        assert_eq!(later_anchor.since, "2024-01-01T00:00:00Z");
        assert_eq!(
            Plan::new(
                "2023-01-01T00:00:00Z",
                "2023-01-01T00:00:00Z",
                "2023-01-01T00:00:00Z",
                4,
                0
            ),
            None
        );
    }

    #[test]
    fn no_plan_has_more_ranges_than_the_states_a_new_split_clears() {
        let plan = Plan::new(
            "2023-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
            1000,
            0,
        )
        .unwrap();
        assert_eq!(plan.ranges().len(), MAX_PARTITIONS);
        assert_eq!(Plan::parse(&plan.to_text()), Some(plan.clone()));
        let mut more = plan;
        more.bounds.push("2025-01-01T00:00:00Z".to_string());
        assert_eq!(Plan::parse(&more.to_text()), None, "33 ranges are refused");
    }

    #[test]
    fn a_first_read_starts_at_since_or_one_year_back() {
        assert_eq!(first_start(None, 400 * 86_400), Ok(35 * 86_400));
        assert_eq!(first_start(Some("1970-01-02"), 0), Ok(86_400));
        assert!(first_start(Some("2024-01-01T::::::::"), 0).is_err());
    }
}
