//! `$skiptoken` paging cookies in Dataverse's format:
//! `<cookie pagenumber="2" pagingcookie="%253ccookie%2520page%253d%25221%2522%253e..." istracking="False" />`
//! where the inner cookie names the first and last primary keys of the page just served.

use crate::guid::Guid;

/// What a skiptoken says about the page before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cookie {
    /// The page number the token asks for (2 for the second page).
    pub page_number: usize,
    /// Primary key of the last row of the previous page.
    pub last: Option<Guid>,
    /// `istracking="True"`: a page of a change-tracking read, which ends in a delta link.
    pub tracking: bool,
    /// On tracked pages: the delta token (`<version>!<MM/dd/yyyy HH:mm:ss>`, not URL-encoded)
    /// the read will end with, fixed when its first page was served.
    pub snapshot: Option<String>,
}

fn enc_lower(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` value after page `page`: the outer
/// `<cookie pagenumber=... pagingcookie=... istracking="False" />` element whose `pagingcookie`
/// is the inner `<cookie page="N">` element URL-encoded twice. `items` are
/// (element name, last, first), already XML-escaped, primary key last.
pub fn fetch_cookie(page: usize, items: &[(String, String, String)]) -> String {
    let mut inner = format!("<cookie page=\"{page}\">");
    for (name, last, first) in items {
        inner.push_str(&format!("<{name} last=\"{last}\" first=\"{first}\" />"));
    }
    inner.push_str("</cookie>");
    let paging = enc_lower(&inner).replace('%', "%25");
    format!(
        "<cookie pagenumber=\"{}\" pagingcookie=\"{paging}\" istracking=\"False\" />",
        page + 1
    )
}

/// Builds the skiptoken for the page after one whose rows ran from `first` to `last`, already
/// encoded for use in a URL.
pub fn skiptoken(next_page: usize, pk: &str, first: &Guid, last: &Guid) -> String {
    encode_outer(next_page, pk, first, last, None)
}

/// The skiptoken of the next page of a change-tracking read: `istracking="True"`, and the inner
/// cookie carries the delta token the read ends with, so that the next page keeps tracking (and
/// its last page still answers `@odata.deltaLink`) even when `Prefer: odata.track-changes` is
/// not sent again. Paging a tracked read with `odata.maxpagesize` follows
/// learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems
/// ("the user can page through the collection"); the `istracking` attribute is the one every
/// Dataverse skiptoken carries (learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results).
pub fn tracking_skiptoken(
    next_page: usize,
    pk: &str,
    first: &Guid,
    last: &Guid,
    snapshot: &str,
) -> String {
    encode_outer(next_page, pk, first, last, Some(snapshot))
}

fn encode_outer(
    next_page: usize,
    pk: &str,
    first: &Guid,
    last: &Guid,
    snapshot: Option<&str>,
) -> String {
    let tracking = match snapshot {
        Some(s) => format!(" deltatoken=\"{s}\""),
        None => String::new(),
    };
    let inner = format!(
        "<cookie page=\"{}\"{tracking}><{pk} last=\"{}\" first=\"{}\" /></cookie>",
        next_page - 1,
        last.braced_upper(),
        first.braced_upper()
    );
    let paging = enc_lower(&inner).replace('%', "%25");
    let is_tracking = if snapshot.is_some() { "True" } else { "False" };
    let outer = format!(
        "<cookie pagenumber=\"{next_page}\" pagingcookie=\"{paging}\" istracking=\"{is_tracking}\" />"
    );
    outer
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('"', "%22")
        .replace(' ', "%20")
}

fn attr<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("{name}=\""))? + name.len() + 2;
    let end = text[start..].find('"')? + start;
    Some(&text[start..end])
}

/// Parses a (once-decoded) skiptoken; None when it is not a cookie this emulator understands.
pub fn parse(token: &str) -> Option<Cookie> {
    let token = token.trim();
    if !token.starts_with("<cookie") {
        return None;
    }
    let page_number = attr(token, "pagenumber")?.parse().ok()?;
    let mut paging = attr(token, "pagingcookie").unwrap_or("").to_string();
    for _ in 0..3 {
        if paging.starts_with('<') || paging.is_empty() {
            break;
        }
        paging = percent_encoding::percent_decode_str(&paging)
            .decode_utf8_lossy()
            .into_owned();
    }
    let last = attr(&paging, "last").and_then(Guid::parse);
    let tracking = attr(token, "istracking").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let snapshot = attr(&paging, "deltatoken").map(str::to_string);
    Some(Cookie {
        page_number,
        last,
        tracking,
        snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_survives_one_url_decoding_and_names_the_last_row() {
        let first = Guid::parse("49b0be2e-d01c-ed11-b83e-000d3a572421").unwrap();
        let last = Guid::parse("d5026a4d-d01c-ed11-b83e-000d3a572421").unwrap();
        let t = skiptoken(2, "contactid", &first, &last);
        assert!(t.starts_with("%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e%253ccontactid%2520last%253d%2522%257bD5026A4D-D01C-ED11-B83E-000D3A572421%257d"), "{t}");
        let decoded = crate::odata::query::decode_component(&t);
        assert_eq!(
            parse(&decoded),
            Some(Cookie {
                page_number: 2,
                last: Some(last),
                tracking: false,
                snapshot: None,
            })
        );
    }

    #[test]
    fn a_tracking_token_says_so_and_carries_the_delta_token_of_the_read() {
        let first = Guid::parse("49b0be2e-d01c-ed11-b83e-000d3a572421").unwrap();
        let last = Guid::parse("d5026a4d-d01c-ed11-b83e-000d3a572421").unwrap();
        let t = tracking_skiptoken(3, "accountid", &first, &last, "1042!05/06/2025 10:11:12");
        assert!(t.ends_with("istracking=%22True%22%20/%3E"), "{t}");
        let decoded = crate::odata::query::decode_component(&t);
        assert_eq!(
            parse(&decoded),
            Some(Cookie {
                page_number: 3,
                last: Some(last),
                tracking: true,
                snapshot: Some("1042!05/06/2025 10:11:12".into()),
            })
        );
        let plain =
            crate::odata::query::decode_component(&skiptoken(2, "accountid", &first, &last));
        assert!(!parse(&plain).unwrap().tracking);
    }

    #[test]
    fn foreign_tokens_are_rejected() {
        assert_eq!(parse("abc"), None);
        assert_eq!(parse("<cookie page=\"x\" />"), None);
    }
}
