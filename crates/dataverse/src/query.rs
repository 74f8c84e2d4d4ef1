//! Query options for a collection or a record, encoded for a URL.

use crate::encoding::percent_encode_query_value;

/// The system query options Query Entities and Get Entity send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// `$select` columns.
    pub select: Vec<String>,
    /// `$filter` expression, as the user wrote it.
    pub filter: Option<String>,
    /// `$orderby` terms (`name desc`).
    pub order_by: Vec<String>,
    /// `$expand` navigation properties, with nested options.
    pub expand: Vec<String>,
    /// `$count=true`.
    pub count: bool,
    /// `$top`.
    pub top: Option<u32>,
}

impl QueryOptions {
    /// `?$select=...&$filter=...` (empty when there are no options). Values are percent-encoded
    /// except for the characters OData expressions use freely.
    pub fn to_query_string(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.select.is_empty() {
            parts.push(format!(
                "$select={}",
                percent_encode_query_value(&self.select.join(","))
            ));
        }
        if let Some(filter) = &self.filter {
            parts.push(format!("$filter={}", percent_encode_query_value(filter)));
        }
        if !self.order_by.is_empty() {
            parts.push(format!(
                "$orderby={}",
                percent_encode_query_value(&self.order_by.join(","))
            ));
        }
        if !self.expand.is_empty() {
            parts.push(format!(
                "$expand={}",
                percent_encode_query_value(&self.expand.join(","))
            ));
        }
        if self.count {
            parts.push("$count=true".to_string());
        }
        if let Some(top) = self.top {
            parts.push(format!("$top={top}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// The `Prefer` header value of a read: page size and annotations.
pub fn prefer_header(max_page_size: Option<u32>, annotations: bool) -> Option<String> {
    let mut preferences = Vec::new();
    if let Some(size) = max_page_size {
        preferences.push(format!("odata.maxpagesize={size}"));
    }
    if annotations {
        preferences.push("odata.include-annotations=\"*\"".to_string());
    }
    (!preferences.is_empty()).then(|| preferences.join(","))
}

/// The `@odata.nextLink` a page of records ends with, read from its last bytes without parsing
/// it, so the next page can be asked for while this one is still being read.
///
/// Dataverse writes the link as the page's last member, after `value`
/// (<https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results>).
/// Only a tail of exactly `"@odata.nextLink":"…"}` (JSON whitespace allowed between tokens)
/// whose link holds no escape, quote or control character is taken; anything else is None and
/// the page is read first, as without this.
///
/// This is a guess, not the page's word: a page that does not parse has no next link at all,
/// whatever its tail says. Callers use the guess only for a read they may throw away, and
/// follow it only when the parsed page names the same link.
pub fn trailing_next_link(page: &[u8]) -> Option<&str> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let rest = trim_end(page, is_space);
    let rest = rest.strip_suffix(b"}")?;
    let rest = trim_end(rest, is_space);
    let rest = rest.strip_suffix(b"\"")?;
    let start = rest.iter().rposition(|&b| b == b'"')?;
    let link = &rest[start + 1..];
    if link.is_empty() || link.iter().any(|&b| b == b'\\' || b < 0x20) {
        return None;
    }
    let before = trim_end(&rest[..start], is_space);
    let before = before.strip_suffix(b":")?;
    let before = trim_end(before, is_space);
    let before = before.strip_suffix(b"\"@odata.nextLink\"")?;
    // The key's opening quote must open a member (`{` or `,` before it), not end an escape
    // inside another key (`"x\"@odata.nextLink"`).
    match trim_end(before, is_space).last() {
        Some(b',' | b'{') => std::str::from_utf8(link).ok(),
        _ => None,
    }
}

fn trim_end(bytes: &[u8], is_space: impl Fn(&u8) -> bool) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_read_from_a_pages_tail_only_when_it_is_plainly_there() {
        let page = br#"{"@odata.context":"c","value":[{"name":"x"}],"@odata.nextLink":"https://org.crm.dynamics.com/api/data/v9.2/accounts?$skiptoken=%3Ccookie%20pagenumber=%222%22%3E"}"#;
        assert_eq!(
            trailing_next_link(page),
            Some(
                "https://org.crm.dynamics.com/api/data/v9.2/accounts?$skiptoken=%3Ccookie%20pagenumber=%222%22%3E"
            )
        );
        let spaced = b"{\"value\":[],\n  \"@odata.nextLink\" :\t\"https://a/b\" \r\n}\n";
        assert_eq!(trailing_next_link(spaced), Some("https://a/b"));
        for page in [
            // The last page: no link.
            &br#"{"value":[{"name":"x"}]}"#[..],
            // The link is not last (another serializer's order): read the page first.
            br#"{"@odata.nextLink":"https://a/b","value":[]}"#,
            // An escape in the link: the parse decides what it is.
            br#"{"value":[],"@odata.nextLink":"https:\/\/a\/b"}"#,
            br#"{"value":[],"@odata.nextLink":"https://a/b""}"#,
            // Another member that ends the same way, a nested one, a cut page.
            br#"{"value":[],"x@odata.nextLink":"https://a/b"}"#,
            br#"{"value":[],"x\"@odata.nextLink":"https://a/b"}"#,
            br#"@odata.nextLink":"https://a/b"}"#,
            br#"{"value":[{"@odata.nextLink":"https://a/b"}]}"#,
            br#"{"value":[],"@odata.nextLink":"https://a/b"#,
            br#"{"value":[],"@odata.nextLink":""}"#,
            br#"{"value":[],"@odata.nextLink":"a
b"}"#,
            b"",
            b"}",
            b"\"}",
        ] {
            assert_eq!(
                trailing_next_link(page),
                None,
                "{}",
                String::from_utf8_lossy(page)
            );
        }
    }

    /// Whenever the tail names a link and the page parses, the page names the same link; a
    /// record's text cannot pass for the page's link.
    #[test]
    fn a_link_read_from_the_tail_is_the_one_the_parsed_page_names() {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(rename = "@odata.nextLink")]
            next_link: Option<String>,
        }
        let pages = [
            r#"{"value":[{"n":"","@odata.nextLink":"https://evil/x"}"}],"@odata.nextLink":"https://a/b"}"#,
            r#"{"value":[{"n":"x"}],"@odata.nextLink":"https://a/b","@odata.nextLink":"https://a/c"}"#,
            r#"{"value":[{"n":""}"}], "@odata.nextLink" : "https://a/b" }"#,
            r#"{"value":[],"@odata.nextLink":"https://a/c","@odata.nextLink":"https://a/b"}"#,
            r#"["@odata.nextLink":"https://a/b"}"#,
            r#"{"value":"@odata.nextLink":"https://a/b"}"#,
            r#"{"v":"x"@odata.nextLink":"https://a/b"}"#,
            r#"{"value":[],"x\"@odata.nextLink":"https://a/b"}"#,
        ];
        for page in pages {
            let parsed = serde_json::from_str::<Page>(page).ok();
            if let (Some(parsed), Some(link)) = (parsed, trailing_next_link(page.as_bytes())) {
                assert_eq!(parsed.next_link.as_deref(), Some(link), "{page}");
            }
        }
        // Every cut of a page either has no link in its tail or does not parse.
        let page = pages[0];
        for cut in 0..page.len() {
            let cut = &page.as_bytes()[..cut];
            assert!(
                trailing_next_link(cut).is_none() || serde_json::from_slice::<Page>(cut).is_err(),
                "{}",
                String::from_utf8_lossy(cut)
            );
        }
    }

    #[test]
    fn options_are_joined_and_encoded() {
        let options = QueryOptions {
            select: vec!["name".into(), "accountnumber".into()],
            filter: Some("name eq 'O''Brien & Sons' and revenue gt 100".into()),
            order_by: vec!["name desc".into()],
            expand: vec!["primarycontactid($select=fullname)".into()],
            count: true,
            top: None,
        };
        assert_eq!(
            options.to_query_string(),
            "?$select=name,accountnumber&$filter=name%20eq%20'O''Brien%20%26%20Sons'%20and%20revenue%20gt%20100&$orderby=name%20desc&$expand=primarycontactid($select%3Dfullname)&$count=true"
        );
        assert_eq!(QueryOptions::default().to_query_string(), "");
    }

    #[test]
    fn prefer_combines_page_size_and_annotations() {
        assert_eq!(
            prefer_header(Some(50), true).as_deref(),
            Some("odata.maxpagesize=50,odata.include-annotations=\"*\"")
        );
        assert_eq!(prefer_header(None, false), None);
    }
}
