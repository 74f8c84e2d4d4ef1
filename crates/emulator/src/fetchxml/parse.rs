//! FetchXML, stage 1: the XML text into a small element tree (quick-xml). Only
//! well-formedness is checked here; what the elements mean is the planner's business.

use quick_xml::events::Event;

use super::invalid;
use crate::error::DvError;

/// A parsed XML element.
#[derive(Debug, Default, Clone)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a boolean attribute is set (`true` or `1`).
    pub fn flag(&self, name: &str) -> bool {
        self.attr(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }
}

fn resolve_ref(name: &str) -> Option<String> {
    if let Some(s) = quick_xml::escape::resolve_predefined_entity(name) {
        return Some(s.to_string());
    }
    let num = name.strip_prefix('#')?;
    let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => num.parse().ok()?,
    };
    char::from_u32(code).map(String::from)
}

fn element_of(s: &quick_xml::events::BytesStart) -> Result<Element, DvError> {
    let mut el = Element {
        name: s.name().as_ref().to_string(),
        ..Default::default()
    };
    for a in s.attributes() {
        let a = a.map_err(|e| not_well_formed(&e))?;
        let v = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| not_well_formed(&e))?;
        el.attrs.push((a.key.as_ref().to_string(), v.into_owned()));
    }
    Ok(el)
}

fn not_well_formed(e: &dyn std::fmt::Display) -> DvError {
    invalid(format!("The FetchXML is not well-formed: {e}"))
}

/// Parses an XML document into its root element.
pub fn parse_xml(text: &str) -> Result<Element, DvError> {
    // Text is kept whole and trimmed per element at its end: trimming each text event cut the
    // spaces around entity references (`A &amp; B` read as `A&B`).
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let attach = |el: Element, stack: &mut Vec<Element>, root: &mut Option<Element>| match stack
        .last_mut()
    {
        Some(parent) => {
            parent.children.push(el);
            Ok(())
        }
        None if root.is_none() => {
            *root = Some(el);
            Ok(())
        }
        None => Err(invalid(
            "The FetchXML is not well-formed: more than one root element.",
        )),
    };
    loop {
        match reader.read_event().map_err(|e| not_well_formed(&e))? {
            Event::Start(s) => stack.push(element_of(&s)?),
            Event::Empty(s) => {
                let el = element_of(&s)?;
                attach(el, &mut stack, &mut root)?;
            }
            Event::End(_) => {
                let mut el = stack.pop().ok_or_else(|| {
                    invalid("The FetchXML is not well-formed: unexpected end tag.")
                })?;
                let trimmed = el.text.trim();
                if trimmed.len() != el.text.len() {
                    el.text = trimmed.to_string();
                }
                attach(el, &mut stack, &mut root)?;
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => {
                        return Err(invalid(
                            "The FetchXML is not well-formed: text outside the root element.",
                        ));
                    }
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let name = r.into_inner();
                let s = resolve_ref(&name)
                    .ok_or_else(|| invalid(format!("Unknown entity reference '&{name};'.")))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(invalid(
            "The FetchXML is not well-formed: an element is not closed.",
        ));
    }
    root.ok_or_else(|| invalid("The FetchXML is empty."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INVALID_ARGUMENT;

    #[test]
    fn elements_attributes_and_text_make_one_tree() {
        let root = parse_xml(
            "<fetch top='5'>\n  <entity name=\"account\"><attribute name='name'/>\
             <filter><condition attribute='name' operator='in'><value>A&amp;B</value>\
             <value>&#65;&#x42;</value><value><![CDATA[<c>]]></value></condition></filter>\
             </entity></fetch>",
        )
        .unwrap();
        assert_eq!((root.name.as_str(), root.attr("top")), ("fetch", Some("5")));
        let entity = &root.children[0];
        assert_eq!(entity.attr("name"), Some("account"));
        assert_eq!(entity.children.len(), 2);
        let condition = &entity.children[1].children[0];
        let values: Vec<&str> = condition.children.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(values, ["A&B", "AB", "<c>"]);
        assert_eq!(root.attr("page"), None);
    }

    #[test]
    fn spaces_around_entity_references_are_kept_and_only_the_ends_trimmed() {
        let root = parse_xml(
            "<fetch><entity name='account'><filter><condition attribute='name' operator='eq'>\
             <value>  A &amp; B  </value></condition></filter></entity></fetch>",
        )
        .unwrap();
        let value = &root.children[0].children[0].children[0].children[0];
        assert_eq!(value.text, "A & B");
    }

    #[test]
    fn flags_are_true_or_one_in_any_case() {
        let root = parse_xml("<fetch aggregate='TRUE' distinct='1' no-lock='false'/>").unwrap();
        assert!(root.flag("aggregate") && root.flag("distinct"));
        assert!(!root.flag("no-lock") && !root.flag("absent"));
    }

    #[test]
    fn attribute_values_are_normalized_as_xml_says() {
        // Literal whitespace becomes a space; a character reference stays what it names.
        let root = parse_xml("<fetch><entity name='a\tb&#9;c &lt;x&gt;'/></fetch>").unwrap();
        assert_eq!(root.children[0].attr("name"), Some("a b\tc <x>"));
    }

    #[test]
    fn documents_that_are_not_well_formed_are_invalid_arguments() {
        for (xml, says) in [
            ("<fetch/><fetch/>", "more than one root element"),
            ("<fetch><entity>", "an element is not closed"),
            ("text<fetch/>", "text outside the root element"),
            (
                "<fetch>&nosuch;</fetch>",
                "Unknown entity reference '&nosuch;'",
            ),
            ("", "The FetchXML is empty."),
            ("<fetch a='1' a='2'/>", "not well-formed"),
        ] {
            let err = parse_xml(xml).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str()),
                (400, INVALID_ARGUMENT),
                "{xml}"
            );
            assert!(err.message.contains(says), "{xml}: {}", err.message);
        }
    }
}
