//! UTC timestamps as Dataverse prints them (`2024-01-02T03:04:05Z`), without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number since the epoch.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-01-02T03:04:05Z`.
pub fn format_iso(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2024-01-02` (date-only columns).
pub fn format_date(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `1/2/2024 3:04 AM`, the en-US formatted value Dataverse returns for date-time columns.
pub fn format_display(secs: i64, date_only: bool) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if date_only {
        return format!("{m}/{d}/{y}");
    }
    let (h, min) = (rem / 3600, rem % 3600 / 60);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{m}/{d}/{y} {h12}:{min:02} {ampm}")
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` with optional `Z` or `±HH:MM` offset.
pub fn parse_iso(text: &str) -> Option<i64> {
    let (date, time) = match text.find(['T', 't']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (y, m, d) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(time) = time {
        let (clock, offset) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
            (t, 0)
        } else if let Some(i) = time.rfind(['+', '-']) {
            let sign = if time.as_bytes()[i] == b'-' { -1 } else { 1 };
            let mut off = time[i + 1..].split(':');
            let oh = num(off.next()?)?;
            let om = off.next().map(num).unwrap_or(Some(0))?;
            (&time[..i], sign * (oh * 3600 + om * 60))
        } else {
            (time, 0)
        };
        let clock = clock.split('.').next()?;
        let mut c = clock.split(':');
        let h = num(c.next()?)?;
        let mi = num(c.next()?)?;
        let s = c.next().map(num).unwrap_or(Some(0))?;
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + s - offset;
    }
    Some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        let t = parse_iso("2024-02-29T13:45:10Z").unwrap();
        assert_eq!(format_iso(t), "2024-02-29T13:45:10Z");
        assert_eq!(format_display(t, false), "2/29/2024 1:45 PM");
        assert_eq!(format_date(t), "2024-02-29");
    }

    #[test]
    fn offsets_fractions_and_dates_parse() {
        assert_eq!(
            parse_iso("2024-01-01T01:00:00+01:00"),
            parse_iso("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_iso("2024-01-01T00:00:00.123Z"),
            parse_iso("2024-01-01")
        );
        assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0));
        assert!(parse_iso("2024-13-01").is_none());
        assert!(parse_iso("yesterday").is_none());
    }
}
