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

#[cfg(test)]
mod tests {
    use super::*;

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
