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

/// A partitioned read as saved in the table's state row: where the next read starts once every
/// range is complete, and the inner bounds of the ranges (n - 1 bounds for n ranges).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
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
    /// slices of time; None when there is nothing to split (one instant, or unreadable values).
    /// `anchor` (the user's `--since`) is kept as the next start when it is the later one.
    pub fn new(
        oldest: &str,
        newest: &str,
        modified: &str,
        parts: usize,
        anchor: Option<&str>,
    ) -> Option<Plan> {
        let (low, high) = (parse_instant(oldest)?, parse_instant(newest)?);
        let bounds = slice_bounds(low, high, parts);
        if bounds.is_empty() {
            return None;
        }
        let mut since = parse_instant(modified)? - SAFETY_MARGIN_SECS;
        if let Some(anchor) = anchor.and_then(parse_instant) {
            since = since.max(anchor);
        }
        Some(Plan {
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

    /// A saved plan; None when the text is not one (the read then starts over).
    pub fn parse(text: &str) -> Option<Plan> {
        let plan: Plan = serde_json::from_str(text).ok()?;
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

/// Seconds since 1970 of an ISO 8601 instant as Dataverse writes them (`2024-01-31T10:00:00Z`,
/// fractions and `±hh:mm` offsets accepted, fractions dropped); None for anything else.
pub fn parse_instant(text: &str) -> Option<i64> {
    let text = text.trim();
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if b[16] != b':' || !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return None;
        }
        rest = &fraction[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of the civil-from-days
/// reckoning `dataverse::encoding::iso_datetime` uses).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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
        for bad in [
            "",
            "2024-01-31",
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
            Some("2000-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(plan.since, "2023-06-01T00:05:00Z");
        let ranges = plan.ranges();
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[0].from, None);
        assert_eq!(ranges[3].before, None);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].before, pair[1].from);
        }
        assert_eq!(Plan::parse(&plan.to_text()), Some(plan));
        assert_eq!(Plan::parse(r#"{"since":"x","bounds":[]}"#), None);
        let later_anchor = Plan::new(
            "2023-01-01T00:00:00Z",
            "2023-01-02T00:00:00Z",
            "2023-06-01T00:10:00Z",
            2,
            Some("2024-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(later_anchor.since, "2024-01-01T00:00:00Z");
        assert_eq!(
            Plan::new(
                "2023-01-01T00:00:00Z",
                "2023-01-01T00:00:00Z",
                "2023-01-01T00:00:00Z",
                4,
                None
            ),
            None
        );
    }
}
