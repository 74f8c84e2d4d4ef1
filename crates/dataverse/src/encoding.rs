//! Percent-encoding and base64, the two encodings every request needs.

/// Percent-encodes `text` for a URL query value or form field: unreserved characters stay,
/// everything else (including `&`, `=`, `+`, `'`, `/`) is escaped as UTF-8 bytes.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0x0f));
        }
    }
    out
}

/// Like [`percent_encode`] but keeps the characters OData query expressions use freely
/// (`$`, `'`, `(`, `)`, `,`, `/`, `:`, `@`, `=`), so URLs stay readable in logs.
pub fn percent_encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'_' | b'.' | b'~' | b'$' | b'\'' | b'(' | b')' | b',' | b'/' | b':' | b'@'
            )
        {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0x0f));
        }
    }
    out
}

/// Decodes `%XX` escapes and, when `plus_is_space`, `+` as a space. Invalid escapes are kept
/// as they are; invalid UTF-8 is replaced.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                match (hex_value(bytes[index + 1]), hex_value(bytes[index + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        index += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0f)])
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let triple = u32::from(b0) << 16 | u32::from(b1) << 8 | u32::from(b2);
        for position in 0..4 {
            if position <= chunk.len() {
                let index = (triple >> (18 - 6 * position)) & 0x3f;
                out.push(char::from(BASE64_ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard or URL-safe base64, with or without padding; whitespace is ignored.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    let mut padding_seen = false;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                padding_seen = true;
                continue;
            }
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        if padding_seen {
            return None;
        }
        buffer = buffer << 6 | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_escapes_reserved_and_non_ascii_characters() {
        assert_eq!(percent_encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(
            percent_encode_query_value("name eq 'O''Brien'"),
            "name%20eq%20'O''Brien'"
        );
    }

    #[test]
    fn percent_decoding_round_trips_and_handles_plus() {
        let original = "$filter=name eq 'Å & co'";
        assert_eq!(percent_decode(&percent_encode(original), false), original);
        assert_eq!(percent_decode("a+b%20c", true), "a b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz", false), "%zz");
    }

    #[test]
    fn base64_round_trips_every_length() {
        for length in 0..10 {
            let data: Vec<u8> = (0..length).map(|i| (i * 37 + 11) as u8).collect();
            let encoded = base64_encode(&data);
            assert_eq!(encoded.len() % 4, 0);
            assert_eq!(base64_decode(&encoded), Some(data));
        }
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_decode("TWE"), Some(b"Ma".to_vec()));
        assert_eq!(base64_decode("T!E="), None);
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time in seconds (UTC, proleptic Gregorian).
pub fn iso_datetime(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let seconds = unix_seconds.rem_euclid(86_400);
    // Days to civil date, after Howard Hinnant's well-known algorithm description.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod date_tests {
    use super::iso_datetime;

    #[test]
    fn unix_times_become_iso_dates() {
        assert_eq!(iso_datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_datetime(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_datetime(1_795_334_195), "2026-11-22T07:56:35Z");
        assert_eq!(iso_datetime(-86_400), "1969-12-31T00:00:00Z");
    }
}

/// The longest text [`parse_instant`] reads: `YYYY-MM-DDThh:mm:ss.fffffff+hh:mm`.
pub const MAX_INSTANT_LEN: usize = 33;

/// An instant a user gave, checked: a date (midnight UTC) or a date and time with an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instant {
    /// Seconds since 1970-01-01T00:00:00Z, the fraction left out.
    pub unix_seconds: i64,
    /// The fraction of the second, in nanoseconds.
    pub nanos: u32,
    /// The instant as an OData `Edm.DateTimeOffset` literal: the text as given (trimmed), or a
    /// date with `T00:00:00Z` added.
    pub literal: String,
}

impl Instant {
    /// Whether this instant is strictly before `other`, fractions counted.
    pub fn is_before(&self, other: &Instant) -> bool {
        (self.unix_seconds, self.nanos) < (other.unix_seconds, other.nanos)
    }
}

/// Why a text is not an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InstantError {
    /// Nothing but whitespace.
    #[error("is empty")]
    Empty,
    #[error("is {0} characters long; an instant has at most {MAX_INSTANT_LEN}")]
    /// Longer than [`MAX_INSTANT_LEN`]; the length in characters.
    TooLong(usize),
    #[error(
        "is not an ISO 8601 date or instant (YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fffffff] with Z or ±hh:mm, such as 2024-01-31 or 2024-01-31T10:00:00Z)"
    )]
    /// Not laid out as an instant.
    Shape,
    /// Laid out as an instant, but the named field is out of its range.
    #[error("has its {0} out of range")]
    OutOfRange(&'static str),
}

impl InstantError {
    /// The reason with the text it is about, quoted, unless the text is too long to repeat.
    pub fn explain(&self, text: &str) -> String {
        match self {
            InstantError::TooLong(_) | InstantError::Empty => self.to_string(),
            _ => format!("{text:?} {self}"),
        }
    }
}

/// Reads `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss[.f{1,7}](Z|±hh:mm)` strictly: every field in range
/// and at most [`MAX_INSTANT_LEN`] characters, so what passes can go into a `$filter` as a
/// literal. The ranges are those of the SQL Server `datetimeoffset` Dataverse stores dates in
/// (learn.microsoft.com/sql/t-sql/data-types/datetimeoffset-transact-sql: years 0001 to 9999,
/// 00:00:00 to 23:59:59.9999999, so no leap second and at most seven fraction digits, offsets
/// from -14:00 to +14:00), the day within its month.
pub fn parse_instant(text: &str) -> Result<Instant, InstantError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(InstantError::Empty);
    }
    if text.len() > MAX_INSTANT_LEN {
        return Err(InstantError::TooLong(text.chars().count()));
    }
    let b = text.as_bytes();
    let number = |from: usize, len: usize| -> Result<i64, InstantError> {
        let part = b.get(from..from + len).ok_or(InstantError::Shape)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(InstantError::Shape);
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let separator = |at: usize, expected: u8| -> Result<(), InstantError> {
        (b.get(at) == Some(&expected))
            .then_some(())
            .ok_or(InstantError::Shape)
    };
    let year = number(0, 4)?;
    separator(4, b'-')?;
    let month = number(5, 2)?;
    separator(7, b'-')?;
    let day = number(8, 2)?;
    let in_range =
        |ok: bool, field: &'static str| ok.then_some(()).ok_or(InstantError::OutOfRange(field));
    if b.len() > 10 {
        // The shape is checked before the ranges, so `2024-99-99T::` is a shape error.
        separator(10, b'T')?;
    }
    in_range((1..=9999).contains(&year), "year")?;
    in_range((1..=12).contains(&month), "month")?;
    in_range((1..=days_in_month(year, month)).contains(&day), "day")?;
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Ok(Instant {
            unix_seconds: days * 86_400,
            nanos: 0,
            literal: format!("{text}T00:00:00Z"),
        });
    }
    let hour = number(11, 2)?;
    separator(13, b':')?;
    let minute = number(14, 2)?;
    separator(16, b':')?;
    let second = number(17, 2)?;
    let mut at = 19;
    let mut nanos = 0u32;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=7).contains(&digits) {
            return Err(InstantError::Shape);
        }
        let fraction = number(at + 1, digits)?;
        nanos = (fraction * 10i64.pow(9 - digits as u32)) as u32;
        at += 1 + digits;
    }
    let offset = match &b[at..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(at + 1, 2)?, number(at + 4, 2)?);
            in_range(minutes <= 59 && hours * 60 + minutes <= 14 * 60, "offset")?;
            let sign = if *sign == b'-' { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return Err(InstantError::Shape),
    };
    in_range(hour <= 23, "hour")?;
    in_range(minute <= 59, "minute")?;
    in_range(second <= 59, "second")?;
    Ok(Instant {
        unix_seconds: days * 86_400 + hour * 3600 + minute * 60 + second - offset,
        nanos,
        literal: text.to_string(),
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date: the inverse of the civil-from-days
/// reckoning in [`iso_datetime`].
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
mod instant_tests {
    use super::{InstantError, iso_datetime, parse_instant};

    #[test]
    fn instants_read_back_the_seconds_iso_datetime_writes() {
        for seconds in [
            0,
            951_782_400,
            1_672_531_200,
            1_709_210_096,
            -86_400,
            253_402_300_799,
        ] {
            let text = iso_datetime(seconds);
            let instant = parse_instant(&text).unwrap();
            assert_eq!(instant.unix_seconds, seconds, "{text}");
            assert_eq!(instant.literal, text);
        }
    }

    #[test]
    fn dates_fractions_and_offsets_are_read() {
        let date = parse_instant(" 2024-02-29 ").unwrap();
        assert_eq!(date.literal, "2024-02-29T00:00:00Z");
        assert_eq!(
            date.unix_seconds,
            parse_instant("2024-02-29T00:00:00Z").unwrap().unix_seconds
        );
        let offset = parse_instant("2024-01-31T10:00:00.1234567+01:00").unwrap();
        assert_eq!(
            offset.unix_seconds,
            parse_instant("2024-01-31T09:00:00Z").unwrap().unix_seconds
        );
        assert_eq!(offset.nanos, 123_456_700);
        assert_eq!(offset.literal, "2024-01-31T10:00:00.1234567+01:00");
        let later = parse_instant("2024-01-31T10:00:00Z").unwrap();
        assert!(!later.is_before(&offset));
        assert!(
            parse_instant("2024-01-31T09:00:00Z")
                .unwrap()
                .is_before(&offset)
        );
        assert!(parse_instant("2024-01-31T00:00:00-14:00").is_ok());
    }

    #[test]
    fn every_malformed_or_out_of_range_instant_is_refused_with_its_reason() {
        use InstantError::*;
        for (text, reason) in [
            ("", Empty),
            ("   ", Empty),
            ("2024-01-01T::::::::", Shape),
            ("2024-01-01T00:00:00-----", Shape),
            ("2024-01-01T00:00:00ZZZZ", Shape),
            ("2024-01-01T00:00:00", Shape),
            ("2024-01-01T00:00:00.Z", Shape),
            ("2024-01-01T00:00:00.12345678Z", Shape),
            ("2024-01-01 00:00:00Z", Shape),
            ("2024-01-01t00:00:00z", Shape),
            ("2024-01-01T00:00Z", Shape),
            ("2024-01-01T00:00:00+0100", Shape),
            ("2024-1-01", Shape),
            ("31/01/2024", Shape),
            ("2024-01-31T10:00:00Z' or 1 eq 1", Shape),
            ("２０２４-01-01", Shape),
            ("2024-99-99", OutOfRange("month")),
            ("2023-02-29", OutOfRange("day")),
            ("2024-04-31", OutOfRange("day")),
            ("0000-01-01", OutOfRange("year")),
            ("2024-01-01T24:00:00Z", OutOfRange("hour")),
            ("2024-01-01T00:60:00Z", OutOfRange("minute")),
            ("2024-01-01T00:00:60Z", OutOfRange("second")),
            ("2024-01-01T00:00:00+14:01", OutOfRange("offset")),
            ("2024-01-01T00:00:00+01:60", OutOfRange("offset")),
        ] {
            assert_eq!(parse_instant(text), Err(reason), "{text:?}");
        }
        let long = format!("2024-01-01T00:00:00Z{}", "0".repeat(100_000));
        assert_eq!(parse_instant(&long), Err(TooLong(100_020)));
        let explained = TooLong(100_020).explain(&long);
        assert!(
            explained.len() < 100,
            "a long value is not repeated: {explained}"
        );
        assert!(
            OutOfRange("month")
                .explain("2024-99-99")
                .starts_with("\"2024-99-99\" has its month")
        );
    }
}
