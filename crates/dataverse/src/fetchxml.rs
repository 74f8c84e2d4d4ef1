//! FetchXML: checked before it is sent, and the `fetch` element's paging attributes rewritten
//! with an XML parser (never by string surgery), so a cookie full of quotes and angle brackets
//! lands in the attribute intact.

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, Writer};

use crate::encoding::percent_decode;

/// What the connector needs to know of a FetchXML query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchQuery {
    /// The `entity` element's `name` (a logical name).
    pub entity: String,
    /// `aggregate="true"`.
    pub aggregate: bool,
    /// `top`, when given.
    pub top: Option<u32>,
    /// `count` (page size), when given.
    pub count: Option<u32>,
    /// `page`, when given.
    pub page: Option<u32>,
}

/// Why FetchXML was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchXmlError {
    /// Not well-formed XML.
    #[error("the FetchXML is not well-formed XML: {0}")]
    Malformed(String),
    /// The root element is not `fetch`.
    #[error("the root element must be <fetch>, not <{0}>")]
    Root(String),
    /// The number of `entity` elements under `fetch` is not one.
    #[error("<fetch> must contain exactly one <entity>, found {0}")]
    Entities(usize),
    /// The `entity` element has no usable `name`.
    #[error("<entity> needs a name attribute with the table's logical name")]
    EntityName,
    /// A numeric attribute of `fetch` is not a number.
    #[error("the {0} attribute of <fetch> must be a whole number, got {1:?}")]
    Number(&'static str, String),
}

impl FetchQuery {
    /// Parses and checks `xml`.
    pub fn parse(xml: &str) -> Result<FetchQuery, FetchXmlError> {
        let mut reader = Reader::from_str(xml);
        let mut depth = 0usize;
        let mut query: Option<FetchQuery> = None;
        let mut entities = 0usize;
        loop {
            let event = reader
                .read_event()
                .map_err(|problem| FetchXmlError::Malformed(problem.to_string()))?;
            match event {
                Event::Start(element) if depth == 0 && query.is_none() => {
                    query = Some(read_fetch(&element)?);
                    depth = 1;
                }
                Event::Empty(element) if depth == 0 && query.is_none() => {
                    query = Some(read_fetch(&element)?);
                }
                Event::Start(element) => {
                    if depth == 1 && local_name(&element) == "entity" {
                        entities += 1;
                        set_entity(&mut query, &element)?;
                    }
                    depth += 1;
                }
                Event::Empty(element) if depth == 1 && local_name(&element) == "entity" => {
                    entities += 1;
                    set_entity(&mut query, &element)?;
                }
                Event::End(_) => depth = depth.saturating_sub(1),
                Event::Eof if depth > 0 => {
                    return Err(FetchXmlError::Malformed(
                        "an element is not closed".to_string(),
                    ));
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let query =
            query.ok_or_else(|| FetchXmlError::Malformed("no element found".to_string()))?;
        if entities != 1 {
            return Err(FetchXmlError::Entities(entities));
        }
        Ok(query)
    }
}

fn read_fetch(element: &BytesStart) -> Result<FetchQuery, FetchXmlError> {
    let name = local_name(element);
    if name != "fetch" {
        return Err(FetchXmlError::Root(name));
    }
    let number = |attribute: &'static str| -> Result<Option<u32>, FetchXmlError> {
        match attribute_value(element, attribute)? {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<u32>()
                .map(Some)
                .map_err(|_| FetchXmlError::Number(attribute, text)),
        }
    };
    Ok(FetchQuery {
        entity: String::new(),
        aggregate: attribute_value(element, "aggregate")?
            .is_some_and(|value| value.eq_ignore_ascii_case("true")),
        top: number("top")?,
        count: number("count")?,
        page: number("page")?,
    })
}

fn set_entity(query: &mut Option<FetchQuery>, element: &BytesStart) -> Result<(), FetchXmlError> {
    let name = attribute_value(element, "name")?
        .filter(|name| crate::odata::is_identifier(name))
        .ok_or(FetchXmlError::EntityName)?;
    if let Some(query) = query.as_mut()
        && query.entity.is_empty()
    {
        query.entity = name.to_ascii_lowercase();
    }
    Ok(())
}

fn local_name(element: &BytesStart) -> String {
    element.local_name().as_ref().to_string()
}

fn attribute_value(element: &BytesStart, name: &str) -> Result<Option<String>, FetchXmlError> {
    for attribute in element.attributes() {
        let attribute =
            attribute.map_err(|problem| FetchXmlError::Malformed(problem.to_string()))?;
        if attribute.key.local_name().as_ref() == name {
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|problem| FetchXmlError::Malformed(problem.to_string()))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// `xml` with the `fetch` element's `page`, `count` and `paging-cookie` set (a `None` cookie
/// removes the attribute). Everything else is copied as it is.
pub fn with_paging(
    xml: &str,
    page: u32,
    count: Option<u32>,
    cookie: Option<&str>,
) -> Result<String, FetchXmlError> {
    let mut reader = Reader::from_str(xml);
    let mut writer = Writer::new(Vec::with_capacity(xml.len() + 256));
    let mut root_done = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|problem| FetchXmlError::Malformed(problem.to_string()))?;
        let event = match event {
            Event::Start(element) if !root_done => {
                root_done = true;
                Event::Start(rewrite_fetch(&element, page, count, cookie)?)
            }
            Event::Empty(element) if !root_done => {
                root_done = true;
                Event::Empty(rewrite_fetch(&element, page, count, cookie)?)
            }
            Event::Eof => break,
            other => other,
        };
        writer
            .write_event(event)
            .map_err(|problem| FetchXmlError::Malformed(problem.to_string()))?;
    }
    String::from_utf8(writer.into_inner())
        .map_err(|problem| FetchXmlError::Malformed(problem.to_string()))
}

fn rewrite_fetch(
    element: &BytesStart,
    page: u32,
    count: Option<u32>,
    cookie: Option<&str>,
) -> Result<BytesStart<'static>, FetchXmlError> {
    let name = element.name().as_ref().to_string();
    let mut rewritten = BytesStart::new(name);
    for attribute in element.attributes() {
        let attribute =
            attribute.map_err(|problem| FetchXmlError::Malformed(problem.to_string()))?;
        let key = attribute.key.local_name();
        let key = key.as_ref();
        let replaced =
            key == "page" || key == "paging-cookie" || (key == "count" && count.is_some());
        if !replaced {
            // The value is copied as it was written but always between double quotes, so a
            // double quote inside a single-quoted value must become a reference.
            let value = attribute.value.replace('"', "&quot;");
            rewritten.push_attribute(Attribute {
                key: attribute.key,
                value: value.into(),
            });
        }
    }
    rewritten.push_attribute(("page", page.to_string().as_str()));
    if let Some(count) = count {
        rewritten.push_attribute(("count", count.to_string().as_str()));
    }
    if let Some(cookie) = cookie {
        // push_attribute escapes the value, so the cookie's markup stays inside the attribute.
        rewritten.push_attribute(("paging-cookie", cookie));
    }
    Ok(rewritten)
}

/// The inner paging cookie of a `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` annotation
/// (`<cookie pagenumber=".." pagingcookie="<double URL-encoded>" .../>`), decoded.
pub fn paging_cookie(annotation: &str) -> Option<String> {
    let mut reader = Reader::from_str(annotation);
    loop {
        match reader.read_event().ok()? {
            Event::Start(element) | Event::Empty(element) => {
                let encoded = attribute_value(&element, "pagingcookie").ok()??;
                return Some(percent_decode(&percent_decode(&encoded, true), true));
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The `page` attribute of a decoded paging cookie (`<cookie page="3">`).
pub fn cookie_page(cookie: &str) -> Option<u32> {
    let mut reader = Reader::from_str(cookie);
    loop {
        match reader.read_event().ok()? {
            Event::Start(element) | Event::Empty(element) => {
                return attribute_value(&element, "page").ok()??.parse().ok();
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &str = "<fetch count='3' page='1'><entity name='contact'><attribute name='fullname'/><order attribute='fullname' descending='true'/></entity></fetch>";

    #[test]
    fn a_query_with_one_entity_is_read() {
        let query = FetchQuery::parse(QUERY).unwrap();
        assert_eq!(
            query,
            FetchQuery {
                entity: "contact".into(),
                aggregate: false,
                top: None,
                count: Some(3),
                page: Some(1)
            }
        );
        let aggregate = FetchQuery::parse("<fetch aggregate='true'><entity name='account'><attribute name='accountid' aggregate='count' alias='n'/></entity></fetch>").unwrap();
        assert!(aggregate.aggregate);
    }

    #[test]
    fn malformed_xml_wrong_roots_and_entity_counts_are_refused() {
        assert!(matches!(
            FetchQuery::parse("<fetch><entity name='a'>"),
            Err(FetchXmlError::Malformed(_))
        ));
        assert!(matches!(
            FetchQuery::parse("<fetch><entity name='a'></fetch>"),
            Err(FetchXmlError::Malformed(_))
        ));
        assert!(
            matches!(FetchQuery::parse("<query><entity name='a'/></query>"), Err(FetchXmlError::Root(root)) if root == "query")
        );
        assert!(matches!(
            FetchQuery::parse("<fetch><entity name='a'/><entity name='b'/></fetch>"),
            Err(FetchXmlError::Entities(2))
        ));
        assert!(matches!(
            FetchQuery::parse("<fetch/>"),
            Err(FetchXmlError::Entities(0))
        ));
        assert!(matches!(
            FetchQuery::parse("<fetch><entity/></fetch>"),
            Err(FetchXmlError::EntityName)
        ));
        assert!(matches!(
            FetchQuery::parse("<fetch count='x'><entity name='a'/></fetch>"),
            Err(FetchXmlError::Number("count", _))
        ));
        let nested = "<fetch><entity name='a'><link-entity name='b'><entity name='c'/></link-entity></entity></fetch>";
        assert_eq!(
            FetchQuery::parse(nested)
                .map(|query| query.entity)
                .as_deref(),
            Ok("a")
        );
    }

    #[test]
    fn paging_attributes_are_replaced_and_the_cookie_is_escaped_inside_its_attribute() {
        let cookie = r#"<cookie page="1"><fullname last="O'Brien &amp; Sons" first="A" /><contactid last="{70BF4D48-34CB-ED11-B596-0022481D68CD}" /></cookie>"#;
        let paged = with_paging(QUERY, 2, Some(50), Some(cookie)).unwrap();
        assert!(
            paged.starts_with("<fetch page=\"2\" count=\"50\" paging-cookie=\""),
            "{paged}"
        );
        assert!(paged.ends_with("<entity name='contact'><attribute name='fullname'/><order attribute='fullname' descending='true'/></entity></fetch>"));
        let mut reader = Reader::from_str(&paged);
        let Ok(Event::Start(fetch)) = reader.read_event() else {
            panic!("a start tag")
        };
        assert_eq!(
            attribute_value(&fetch, "paging-cookie").unwrap().as_deref(),
            Some(cookie)
        );
        let without = with_paging(&paged, 1, None, None).unwrap();
        assert!(!without.contains("paging-cookie"));
        assert!(without.contains("count=\"50\""));
    }

    #[test]
    fn single_quoted_attributes_with_double_quotes_stay_well_formed_when_paged() {
        // Found by the fetchxml_paging fuzz target: the attribute was copied between double
        // quotes as it was, which ended the value early.
        let query =
            "<fetch aggregate='\"rue' options='a\"b&amp;c'><entity name='account'/></fetch>";
        let paged = with_paging(query, 2, None, None).unwrap();
        assert_eq!(
            paged,
            "<fetch aggregate=\"&quot;rue\" options=\"a&quot;b&amp;c\" page=\"2\"><entity name='account'/></fetch>"
        );
        let mut reader = Reader::from_str(&paged);
        let Ok(Event::Start(fetch)) = reader.read_event() else {
            panic!("a start tag")
        };
        assert_eq!(
            attribute_value(&fetch, "options").unwrap().as_deref(),
            Some("a\"b&c")
        );
        assert_eq!(FetchQuery::parse(&paged).unwrap().page, Some(2));
    }

    #[test]
    fn the_annotation_cookie_is_url_decoded_twice() {
        let annotation = r#"<cookie pagenumber="2" pagingcookie="%253ccookie%2520page%253d%25221%2522%253e%253cfullname%2520last%253d%2522Susanna%2520Stubberod%2520%2528sample%2529%2522%2520first%253d%2522Yvonne%2520McKay%2520%2528sample%2529%2522%2520%252f%253e%253ccontactid%2520last%253d%2522%257b70BF4D48-34CB-ED11-B596-0022481D68CD%257d%2522%2520first%253d%2522%257b49B0BE2E-D01C-ED11-B83E-000D3A572421%257d%2522%2520%252f%253e%253c%252fcookie%253e" istracking="False" />"#;
        let cookie = paging_cookie(annotation).unwrap();
        assert_eq!(
            cookie,
            r#"<cookie page="1"><fullname last="Susanna Stubberod (sample)" first="Yvonne McKay (sample)" /><contactid last="{70BF4D48-34CB-ED11-B596-0022481D68CD}" first="{49B0BE2E-D01C-ED11-B83E-000D3A572421}" /></cookie>"#
        );
        assert_eq!(cookie_page(&cookie), Some(1));
        assert_eq!(paging_cookie("<nothing/>"), None);
    }
}
