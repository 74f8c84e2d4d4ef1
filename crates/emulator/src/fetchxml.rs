//! FetchXML over the Web API: `GET <entityset>?fetchXml=<url-encoded xml>`.
//!
//! Parsed with quick-xml into a small element tree, compiled against the schema (unknown
//! tables, columns and operators are 400s), then run over the in-memory rows. Without `order`
//! elements rows come in primary-key order and a paging cookie resumes by key range, so
//! following cookies costs O(page) per page.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use quick_xml::events::Event;

use crate::datetime;
use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::eval::Caller;
use crate::render::{self, FORMATTED, LOOKUP_LOGICAL};
use crate::schema::AttrKind;
use crate::store::{Row, Store, Val};
use crate::webapi::{Req, Resp};

/// Invalid argument (malformed FetchXML, bad values).
pub const INVALID_ARGUMENT: &str = "0x80040203";
/// An attribute the table does not have.
pub const NO_ATTRIBUTE: &str = "0x80041103";
/// Too many link-entity elements.
pub const TOO_MANY_LINKS: &str = "0x8004430D";
/// Aggregate over more rows than allowed.
pub const AGGREGATE_LIMIT: &str = "0x8004E023";

const PAGING_COOKIE: &str = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie";
const MORE_RECORDS: &str = "Microsoft.Dynamics.CRM.morerecords";
const ATTRIBUTE_NAME: &str = "OData.Community.Display.V1.AttributeName";
const MAX_PAGE: usize = 5000;
const MAX_AGGREGATE_ROWS: usize = 50_000;

fn invalid(message: impl Into<String>) -> DvError {
    DvError::new(400, INVALID_ARGUMENT, message)
}

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

    fn flag(&self, name: &str) -> bool {
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
        name: String::from_utf8_lossy(s.name().as_ref()).into_owned(),
        ..Default::default()
    };
    for a in s.attributes() {
        let a = a.map_err(|e| not_well_formed(&e))?;
        let v = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| not_well_formed(&e))?;
        el.attrs.push((
            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
            v.into_owned(),
        ));
    }
    Ok(el)
}

fn not_well_formed(e: &dyn std::fmt::Display) -> DvError {
    invalid(format!("The FetchXML is not well-formed: {e}"))
}

/// Parses an XML document into its root element.
pub fn parse_xml(text: &str) -> Result<Element, DvError> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let attach = |el: Element, stack: &mut Vec<Element>, root: &mut Option<Element>| {
        match stack.last_mut() {
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
        }
    };
    loop {
        match reader.read_event().map_err(|e| not_well_formed(&e))? {
            Event::Start(s) => stack.push(element_of(&s)?),
            Event::Empty(s) => {
                let el = element_of(&s)?;
                attach(el, &mut stack, &mut root)?;
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| invalid("The FetchXML is not well-formed: unexpected end tag."))?;
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
                    top.text.push_str(&String::from_utf8_lossy(&c));
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum AggFn {
    Count,
    CountColumn,
    Sum,
    Avg,
    Min,
    Max,
}

/// One output column.
#[derive(Debug, Clone)]
struct Column {
    slot: usize,
    col: usize,
    alias: Option<String>,
    agg: Option<AggFn>,
    distinct: bool,
    groupby: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    NotLike,
    In,
    NotIn,
    Null,
    NotNull,
    Between,
    NotBetween,
}

#[derive(Debug, Clone)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Test {
        slot: usize,
        col: usize,
        op: Op,
        vals: Vec<Val>,
        /// Lower-cased `like` pattern.
        pattern: String,
    },
}

/// The root table (slot 0) or a link-entity.
#[derive(Debug, Clone)]
struct Slot {
    entity: usize,
    alias: String,
    parent: usize,
    /// Column of this table matched against `to`.
    from: usize,
    /// Column of the parent table.
    to: usize,
    outer: bool,
    filter: Option<Cond>,
}

#[derive(Debug, Clone)]
struct OrderKey {
    slot: usize,
    col: Option<usize>,
    /// Aggregate queries order by alias.
    alias: Option<String>,
    desc: bool,
}

/// A compiled FetchXML query.
#[derive(Debug)]
pub struct Query {
    slots: Vec<Slot>,
    columns: Vec<Column>,
    filter: Option<Cond>,
    orders: Vec<OrderKey>,
    top: Option<usize>,
    count: usize,
    page: usize,
    cookie_last: Option<Guid>,
    aggregate: bool,
    distinct: bool,
    total_count: bool,
    explicit_attributes: bool,
}

fn no_attribute(entity: &str, name: &str) -> DvError {
    DvError::new(
        400,
        NO_ATTRIBUTE,
        format!("'{entity}' entity doesn't contain attribute with Name = '{name}' and NameMapping = 'Logical'."),
    )
}

fn parse_usize(el: &Element, name: &str) -> Result<Option<usize>, DvError> {
    match el.attr(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            invalid(format!(
                "The '{name}' attribute of 'fetch' must be a positive integer, not '{v}'."
            ))
        }),
    }
}

/// Converts a condition value to a cell value of a column.
fn literal(kind: &AttrKind, text: &str, entity: &str, attr: &str) -> Result<Val, DvError> {
    let t = text.trim();
    let fail = || {
        invalid(format!(
            "The value '{text}' is not valid for attribute '{attr}' of entity '{entity}'."
        ))
    };
    Ok(match kind {
        AttrKind::String { .. } | AttrKind::Memo { .. } => Val::str(text),
        AttrKind::Integer { .. }
        | AttrKind::BigInt
        | AttrKind::Picklist { .. }
        | AttrKind::State { .. }
        | AttrKind::Status { .. } => Val::Int(t.parse().map_err(|_| fail())?),
        AttrKind::Decimal { .. } | AttrKind::Money => Val::Num(t.parse().map_err(|_| fail())?),
        AttrKind::Boolean { .. } => match t.to_ascii_lowercase().as_str() {
            "1" | "true" => Val::Bool(true),
            "0" | "false" => Val::Bool(false),
            _ => return Err(fail()),
        },
        AttrKind::DateTime { .. } => Val::Date(datetime::parse_iso(t).ok_or_else(fail)?),
        AttrKind::Uniqueidentifier | AttrKind::Lookup { .. } => {
            Val::Guid(Guid::parse(t).ok_or_else(fail)?)
        }
    })
}

struct Compiler<'a> {
    store: &'a Store,
    caller: Caller,
    slots: Vec<Slot>,
    columns: Vec<Column>,
    orders: Vec<OrderKey>,
    aggregate: bool,
    links: usize,
    explicit_attributes: bool,
    root_filters: Vec<Cond>,
}

impl Compiler<'_> {
    fn col(&self, slot: usize, name: &str) -> Result<usize, DvError> {
        let ent = self.store.entity(self.slots[slot].entity);
        ent.attr(name)
            .ok_or_else(|| no_attribute(&ent.logical_name, name))
    }

    fn slot_named(&self, name: &str) -> Result<usize, DvError> {
        self.slots
            .iter()
            .position(|s| s.alias == name)
            .or_else(|| {
                self.slots
                    .iter()
                    .position(|s| self.store.entity(s.entity).logical_name == name)
            })
            .ok_or_else(|| {
                invalid(format!(
                    "The entityname '{name}' does not name a link-entity of the query."
                ))
            })
    }

    /// Reads the children of an `entity` or `link-entity` element into slot `slot`.
    fn entity_children(&mut self, el: &Element, slot: usize) -> Result<(), DvError> {
        let mut any_attribute = false;
        for child in &el.children {
            match child.name.as_str() {
                "attribute" => {
                    any_attribute = true;
                    let name = child
                        .attr("name")
                        .ok_or_else(|| invalid("An 'attribute' element needs a 'name'."))?;
                    let col = self.col(slot, name)?;
                    let agg = match child.attr("aggregate") {
                        None => None,
                        Some(a) => Some(match a.to_ascii_lowercase().as_str() {
                            "count" => AggFn::Count,
                            "countcolumn" => AggFn::CountColumn,
                            "sum" => AggFn::Sum,
                            "avg" => AggFn::Avg,
                            "min" => AggFn::Min,
                            "max" => AggFn::Max,
                            other => {
                                return Err(invalid(format!(
                                    "The aggregate function '{other}' is not valid."
                                )));
                            }
                        }),
                    };
                    let groupby = child.flag("groupby");
                    let alias = child.attr("alias").map(str::to_string);
                    if self.aggregate {
                        if alias.is_none() {
                            return Err(invalid(format!(
                                "An alias is required for the attribute '{name}' of an aggregate query."
                            )));
                        }
                        if agg.is_none() && !groupby {
                            return Err(invalid(format!(
                                "The attribute '{name}' of an aggregate query needs an 'aggregate' function or groupby='true'."
                            )));
                        }
                    } else if agg.is_some() || groupby {
                        return Err(invalid(
                            "The 'aggregate' and 'groupby' attributes need aggregate='true' on the 'fetch' element.",
                        ));
                    }
                    if matches!(agg, Some(AggFn::Sum | AggFn::Avg)) {
                        let kind = &self.store.entity(self.slots[slot].entity).attributes[col].kind;
                        if !matches!(
                            kind,
                            AttrKind::Integer { .. }
                                | AttrKind::BigInt
                                | AttrKind::Decimal { .. }
                                | AttrKind::Money
                        ) {
                            return Err(invalid(format!(
                                "The aggregate function of '{name}' needs a numeric attribute."
                            )));
                        }
                    }
                    self.columns.push(Column {
                        slot,
                        col,
                        alias,
                        agg,
                        distinct: child.flag("distinct"),
                        groupby,
                    });
                }
                "all-attributes" => {
                    any_attribute = true;
                    if self.aggregate {
                        return Err(invalid(
                            "An aggregate query cannot use 'all-attributes'.",
                        ));
                    }
                    let n = self.store.entity(self.slots[slot].entity).attributes.len();
                    for col in 0..n {
                        self.columns.push(Column {
                            slot,
                            col,
                            alias: None,
                            agg: None,
                            distinct: false,
                            groupby: false,
                        });
                    }
                }
                "order" => {
                    let desc = child.flag("descending");
                    if let Some(alias) = child.attr("alias") {
                        self.orders.push(OrderKey {
                            slot,
                            col: None,
                            alias: Some(alias.to_string()),
                            desc,
                        });
                    } else {
                        let name = child.attr("attribute").ok_or_else(|| {
                            invalid("An 'order' element needs an 'attribute' or an 'alias'.")
                        })?;
                        if self.aggregate {
                            return Err(invalid(
                                "An aggregate query orders by alias, not by attribute.",
                            ));
                        }
                        let col = self.col(slot, name)?;
                        self.orders.push(OrderKey {
                            slot,
                            col: Some(col),
                            alias: None,
                            desc,
                        });
                    }
                }
                "filter" => {
                    let f = self.filter(child, slot)?;
                    let target = if slot == 0 {
                        None
                    } else {
                        Some(slot)
                    };
                    match target {
                        None => self.push_root_filter(f),
                        Some(s) => {
                            let old = self.slots[s].filter.take();
                            self.slots[s].filter = Some(match old {
                                None => f,
                                Some(o) => Cond::And(vec![o, f]),
                            });
                        }
                    }
                }
                "link-entity" => self.link(child, slot)?,
                other => {
                    return Err(invalid(format!(
                        "The element '{other}' is not valid inside '{}'.",
                        el.name
                    )));
                }
            }
        }
        if slot == 0 {
            self.explicit_attributes = any_attribute;
        }
        Ok(())
    }

    fn push_root_filter(&mut self, f: Cond) {
        self.root_filters.push(f);
    }

    fn link(&mut self, el: &Element, parent: usize) -> Result<(), DvError> {
        self.links += 1;
        if self.links > 15 {
            return Err(DvError::new(
                400,
                TOO_MANY_LINKS,
                "Number of link entities in query exceeded maximum limit.",
            ));
        }
        let name = el
            .attr("name")
            .ok_or_else(|| invalid("A 'link-entity' element needs a 'name'."))?;
        let entity = self.store.schema.entity(name).ok_or_else(|| {
            invalid(format!(
                "The entity with a name = '{name}' with namemapping = 'Logical' was not found in the MetadataCache."
            ))
        })?;
        let from = el
            .attr("from")
            .ok_or_else(|| invalid(format!("The link-entity '{name}' needs a 'from' attribute.")))?;
        let to = el
            .attr("to")
            .ok_or_else(|| invalid(format!("The link-entity '{name}' needs a 'to' attribute.")))?;
        let outer = match el.attr("link-type").unwrap_or("inner") {
            "inner" => false,
            "outer" => true,
            other => {
                return Err(invalid(format!(
                    "The link-type '{other}' is not supported by the emulator."
                )));
            }
        };
        let to_col = self.col(parent, to)?;
        let from_col = self
            .store
            .entity(entity)
            .attr(from)
            .ok_or_else(|| no_attribute(name, from))?;
        let alias = match el.attr("alias") {
            Some(a) => a.to_string(),
            None => {
                let n = self
                    .slots
                    .iter()
                    .filter(|s| self.store.entity(s.entity).logical_name == name)
                    .count();
                format!("{name}{}", n + 1)
            }
        };
        self.slots.push(Slot {
            entity,
            alias,
            parent,
            from: from_col,
            to: to_col,
            outer,
            filter: None,
        });
        let slot = self.slots.len() - 1;
        self.entity_children(el, slot)
    }

    fn filter(&mut self, el: &Element, slot: usize) -> Result<Cond, DvError> {
        let mut items = Vec::new();
        for child in &el.children {
            match child.name.as_str() {
                "condition" => items.push(self.condition(child, slot)?),
                "filter" => items.push(self.filter(child, slot)?),
                other => {
                    return Err(invalid(format!(
                        "The element '{other}' is not valid inside 'filter'."
                    )));
                }
            }
        }
        match el.attr("type").unwrap_or("and") {
            "and" => Ok(Cond::And(items)),
            "or" => Ok(Cond::Or(items)),
            other => Err(invalid(format!(
                "The filter type '{other}' is not valid; use 'and' or 'or'."
            ))),
        }
    }

    fn condition(&mut self, el: &Element, slot: usize) -> Result<Cond, DvError> {
        let slot = match el.attr("entityname") {
            Some(n) => self.slot_named(n)?,
            None => slot,
        };
        let name = el
            .attr("attribute")
            .ok_or_else(|| invalid("A 'condition' element needs an 'attribute'."))?;
        let col = self.col(slot, name)?;
        let op_text = el
            .attr("operator")
            .ok_or_else(|| invalid("A 'condition' element needs an 'operator'."))?;
        let ent = self.store.entity(self.slots[slot].entity);
        let kind = &ent.attributes[col].kind;
        let mut texts: Vec<String> = el
            .children
            .iter()
            .filter(|c| c.name == "value")
            .map(|c| c.text.clone())
            .collect();
        if let Some(v) = el.attr("value") {
            texts.insert(0, v.to_string());
        }
        let lit = |t: &str| literal(kind, t, &ent.logical_name, name);
        let one = |texts: &[String]| -> Result<String, DvError> {
            texts.first().cloned().ok_or_else(|| {
                invalid(format!(
                    "The condition operator '{op_text}' on '{name}' needs a value."
                ))
            })
        };
        let test = |op: Op, vals: Vec<Val>, pattern: String| Cond::Test {
            slot,
            col,
            op,
            vals,
            pattern,
        };
        let day = |t: &str| -> Result<i64, DvError> {
            match lit(t)? {
                Val::Date(d) => Ok(d - d.rem_euclid(86_400)),
                _ => Err(invalid(format!(
                    "The operator '{op_text}' needs a date attribute, not '{name}'."
                ))),
            }
        };
        let like = |op: Op, pattern: String| -> Result<Cond, DvError> {
            if !matches!(kind, AttrKind::String { .. } | AttrKind::Memo { .. }) {
                return Err(invalid(format!(
                    "The operator '{op_text}' needs a string attribute, not '{name}'."
                )));
            }
            Ok(test(op, Vec::new(), pattern.to_lowercase()))
        };
        Ok(match op_text {
            "eq" | "ne" | "neq" | "gt" | "ge" | "lt" | "le" => {
                let v = lit(&one(&texts)?)?;
                let op = match op_text {
                    "eq" => Op::Eq,
                    "ne" | "neq" => Op::Ne,
                    "gt" => Op::Gt,
                    "ge" => Op::Ge,
                    "lt" => Op::Lt,
                    _ => Op::Le,
                };
                test(op, vec![v], String::new())
            }
            "like" => like(Op::Like, one(&texts)?)?,
            "not-like" => like(Op::NotLike, one(&texts)?)?,
            "begins-with" => like(Op::Like, format!("{}%", one(&texts)?))?,
            "not-begin-with" => like(Op::NotLike, format!("{}%", one(&texts)?))?,
            "ends-with" => like(Op::Like, format!("%{}", one(&texts)?))?,
            "not-end-with" => like(Op::NotLike, format!("%{}", one(&texts)?))?,
            "in" | "not-in" => {
                if texts.is_empty() {
                    return Err(invalid(format!(
                        "The condition operator '{op_text}' on '{name}' needs 'value' elements."
                    )));
                }
                let vals = texts.iter().map(|t| lit(t)).collect::<Result<Vec<_>, _>>()?;
                test(
                    if op_text == "in" { Op::In } else { Op::NotIn },
                    vals,
                    String::new(),
                )
            }
            "between" | "not-between" => {
                if texts.len() != 2 {
                    return Err(invalid(format!(
                        "The condition operator '{op_text}' on '{name}' needs exactly two 'value' elements."
                    )));
                }
                let vals = texts.iter().map(|t| lit(t)).collect::<Result<Vec<_>, _>>()?;
                test(
                    if op_text == "between" {
                        Op::Between
                    } else {
                        Op::NotBetween
                    },
                    vals,
                    String::new(),
                )
            }
            "null" => test(Op::Null, Vec::new(), String::new()),
            "not-null" => test(Op::NotNull, Vec::new(), String::new()),
            "on" => {
                let d = day(&one(&texts)?)?;
                test(
                    Op::Between,
                    vec![Val::Date(d), Val::Date(d + 86_399)],
                    String::new(),
                )
            }
            "on-or-after" => test(Op::Ge, vec![Val::Date(day(&one(&texts)?)?)], String::new()),
            "on-or-before" => test(
                Op::Le,
                vec![Val::Date(day(&one(&texts)?)? + 86_399)],
                String::new(),
            ),
            "eq-userid" | "ne-userid" | "eq-businessid" | "ne-businessid" => {
                let g = if op_text.ends_with("userid") {
                    self.caller.user
                } else {
                    self.caller.business_unit
                };
                test(
                    if op_text.starts_with("eq") {
                        Op::Eq
                    } else {
                        Op::Ne
                    },
                    vec![Val::Guid(g)],
                    String::new(),
                )
            }
            other => {
                return Err(invalid(format!(
                    "The condition operator '{other}' is not valid or not supported by the emulator."
                )));
            }
        })
    }
}

/// Parses and compiles the FetchXML of a request against entity set `e`.
pub fn compile(store: &Store, e: usize, xml: &str, caller: Caller) -> Result<Query, DvError> {
    let root = parse_xml(xml)?;
    if root.name != "fetch" {
        return Err(invalid(format!(
            "The root element of a FetchXML query must be 'fetch', not '{}'.",
            root.name
        )));
    }
    let entities: Vec<&Element> = root.children.iter().filter(|c| c.name == "entity").collect();
    if let Some(other) = root.children.iter().find(|c| c.name != "entity") {
        return Err(invalid(format!(
            "The element '{}' is not valid inside 'fetch'.",
            other.name
        )));
    }
    let entity_el = match entities.as_slice() {
        [one] => *one,
        [] => return Err(invalid("The 'fetch' element must contain one 'entity' element.")),
        _ => {
            return Err(invalid(
                "The 'fetch' element must contain exactly one 'entity' element, not several.",
            ));
        }
    };
    let name = entity_el
        .attr("name")
        .ok_or_else(|| invalid("The 'entity' element needs a 'name'."))?;
    let set_entity = store.entity(e);
    if name != set_entity.logical_name {
        return Err(invalid(format!(
            "The entity '{name}' of the FetchXML does not match the entity set '{}' (entity '{}').",
            set_entity.entity_set_name, set_entity.logical_name
        )));
    }
    let aggregate = root.flag("aggregate");
    let mut c = Compiler {
        store,
        caller,
        slots: vec![Slot {
            entity: e,
            alias: name.to_string(),
            parent: 0,
            from: 0,
            to: 0,
            outer: false,
            filter: None,
        }],
        columns: Vec::new(),
        orders: Vec::new(),
        aggregate,
        links: 0,
        explicit_attributes: false,
        root_filters: Vec::new(),
    };
    c.entity_children(entity_el, 0)?;
    if aggregate && c.columns.is_empty() {
        return Err(invalid("An aggregate query needs at least one attribute."));
    }
    let top = parse_usize(&root, "top")?;
    let count = parse_usize(&root, "count")?;
    let page = parse_usize(&root, "page")?;
    if top.is_some() && (count.is_some() || page.is_some()) {
        return Err(invalid(
            "The 'top' attribute can't be specified with the paging attributes 'count' and 'page'.",
        ));
    }
    if top.is_some_and(|t| t > MAX_PAGE) {
        return Err(invalid(format!(
            "The 'top' attribute can't be larger than {MAX_PAGE}."
        )));
    }
    let cookie_last = match root.attr("paging-cookie") {
        Some(text) if !text.trim().is_empty() => {
            let pk = store.entity(e).primary_id_name().to_string();
            cookie_last_key(text, &pk)?
        }
        _ => None,
    };
    let filter = match c.root_filters.len() {
        0 => None,
        1 => c.root_filters.pop(),
        _ => Some(Cond::And(std::mem::take(&mut c.root_filters))),
    };
    Ok(Query {
        slots: c.slots,
        columns: c.columns,
        filter,
        orders: c.orders,
        top,
        count: count.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE),
        page: page.unwrap_or(1).max(1),
        cookie_last,
        aggregate,
        distinct: root.flag("distinct"),
        total_count: root.flag("returntotalrecordcount"),
        explicit_attributes: c.explicit_attributes,
    })
}

/// The primary key named `last` in an inner paging cookie (`<cookie page="1"><pk last="{..}" .../>`).
fn cookie_last_key(text: &str, pk: &str) -> Result<Option<Guid>, DvError> {
    let mut t = text.trim().to_string();
    // Tolerate a cookie that is still URL-encoded.
    for _ in 0..2 {
        if t.starts_with('<') {
            break;
        }
        t = percent_encoding::percent_decode_str(&t)
            .decode_utf8_lossy()
            .into_owned();
    }
    let el = parse_xml(&t)
        .map_err(|_| invalid("The paging-cookie attribute does not hold a valid paging cookie."))?;
    if el.name != "cookie" {
        return Err(invalid(
            "The paging-cookie attribute does not hold a valid paging cookie.",
        ));
    }
    Ok(el
        .children
        .iter()
        .find(|c| c.name == pk)
        .and_then(|c| c.attr("last"))
        .and_then(Guid::parse))
}
