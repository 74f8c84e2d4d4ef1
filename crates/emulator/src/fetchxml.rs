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
use crate::error::{AGGREGATE_LIMIT, DvError, INVALID_ARGUMENT, NO_ATTRIBUTE, TOO_MANY_LINKS};
use crate::guid::Guid;
use crate::render::{self, FORMATTED, LOOKUP_LOGICAL};
use crate::schema::{AttrKind, TableId};
use crate::store::{Row, Store, Val};
use crate::wire::Caller;
use crate::wire::{Req, Resp};

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
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
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
                let el = stack.pop().ok_or_else(|| {
                    invalid("The FetchXML is not well-formed: unexpected end tag.")
                })?;
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
    entity: TableId,
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
        format!(
            "'{entity}' entity doesn't contain attribute with Name = '{name}' and NameMapping = 'Logical'."
        ),
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
                        return Err(invalid("An aggregate query cannot use 'all-attributes'."));
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
                    let target = if slot == 0 { None } else { Some(slot) };
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
        let from = el.attr("from").ok_or_else(|| {
            invalid(format!(
                "The link-entity '{name}' needs a 'from' attribute."
            ))
        })?;
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
                let vals = texts
                    .iter()
                    .map(|t| lit(t))
                    .collect::<Result<Vec<_>, _>>()?;
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
                let vals = texts
                    .iter()
                    .map(|t| lit(t))
                    .collect::<Result<Vec<_>, _>>()?;
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
pub fn compile(store: &Store, e: TableId, xml: &str, caller: Caller) -> Result<Query, DvError> {
    let root = parse_xml(xml)?;
    if root.name != "fetch" {
        return Err(invalid(format!(
            "The root element of a FetchXML query must be 'fetch', not '{}'.",
            root.name
        )));
    }
    let entities: Vec<&Element> = root
        .children
        .iter()
        .filter(|c| c.name == "entity")
        .collect();
    if let Some(other) = root.children.iter().find(|c| c.name != "entity") {
        return Err(invalid(format!(
            "The element '{}' is not valid inside 'fetch'.",
            other.name
        )));
    }
    let entity_el = match entities.as_slice() {
        [one] => *one,
        [] => {
            return Err(invalid(
                "The 'fetch' element must contain one 'entity' element.",
            ));
        }
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

type Joined<'a> = Vec<Option<&'a Row>>;

fn key_of(v: &Val) -> Option<Guid> {
    match v {
        Val::Guid(g) | Val::Ref(g, _) => Some(*g),
        _ => None,
    }
}

/// Compares two cells of comparable types; strings case-insensitively.
fn cmp_vals(a: &Val, b: &Val) -> Option<Ordering> {
    Some(match (a, b) {
        (Val::Str(x), Val::Str(y)) => {
            let (x, y) = (x.to_lowercase(), y.to_lowercase());
            x.cmp(&y)
        }
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y)?,
        (Val::Int(x), Val::Num(y)) => (*x as f64).partial_cmp(y)?,
        (Val::Num(x), Val::Int(y)) => x.partial_cmp(&(*y as f64))?,
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Date(x), Val::Date(y)) => x.cmp(y),
        (Val::Guid(x) | Val::Ref(x, _), Val::Guid(y) | Val::Ref(y, _)) => x.cmp(y),
        _ => return None,
    })
}

/// Nulls first, then [`cmp_vals`].
fn order_vals(a: &Val, b: &Val) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => cmp_vals(a, b).unwrap_or(Ordering::Equal),
    }
}

/// SQL `LIKE` with `%` and `_` over lower-cased text.
fn like_match(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

fn eval(c: &Cond, j: &Joined) -> bool {
    match c {
        Cond::And(items) => items.iter().all(|i| eval(i, j)),
        Cond::Or(items) => items.iter().any(|i| eval(i, j)),
        Cond::Test {
            slot,
            col,
            op,
            vals,
            pattern,
        } => {
            let v = j
                .get(*slot)
                .copied()
                .flatten()
                .map_or(&Val::Null, |r| &r.vals[*col]);
            match op {
                Op::Null => return v.is_null(),
                Op::NotNull => return !v.is_null(),
                _ if v.is_null() => return false,
                _ => {}
            }
            let cmp = |i: usize| vals.get(i).and_then(|x| cmp_vals(v, x));
            match op {
                Op::Eq => cmp(0) == Some(Ordering::Equal),
                Op::Ne => cmp(0).is_some_and(|o| o != Ordering::Equal),
                Op::Gt => cmp(0) == Some(Ordering::Greater),
                Op::Ge => cmp(0).is_some_and(|o| o != Ordering::Less),
                Op::Lt => cmp(0) == Some(Ordering::Less),
                Op::Le => cmp(0).is_some_and(|o| o != Ordering::Greater),
                Op::Like | Op::NotLike => {
                    let hit = match v {
                        Val::Str(s) => like_match(&s.to_lowercase(), pattern),
                        _ => false,
                    };
                    hit == (*op == Op::Like)
                }
                Op::In => (0..vals.len()).any(|i| cmp(i) == Some(Ordering::Equal)),
                Op::NotIn => (0..vals.len()).all(|i| cmp(i).is_some_and(|o| o != Ordering::Equal)),
                Op::Between | Op::NotBetween => {
                    let inside = cmp(0).is_some_and(|o| o != Ordering::Less)
                        && cmp(1).is_some_and(|o| o != Ordering::Greater);
                    inside == (*op == Op::Between)
                }
                Op::Null | Op::NotNull => false,
            }
        }
    }
}

/// Runs the joins of a query.
struct Exec<'a> {
    store: &'a Store,
    q: &'a Query,
    /// Per link slot whose `from` is not the primary key: key → rows.
    indexes: Vec<Option<HashMap<Guid, Vec<&'a Row>>>>,
}

impl<'a> Exec<'a> {
    fn new(store: &'a Store, q: &'a Query) -> Exec<'a> {
        let indexes = q
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 || s.from == store.entity(s.entity).primary_id {
                    return None;
                }
                let mut idx: HashMap<Guid, Vec<&Row>> = HashMap::new();
                for r in store.rows(s.entity).values() {
                    if let Some(k) = key_of(&r.vals[s.from]) {
                        idx.entry(k).or_default().push(r);
                    }
                }
                Some(idx)
            })
            .collect();
        Exec { store, q, indexes }
    }

    /// Appends the joined rows of one root row that pass the filters.
    fn expand(&self, root: &'a Row, out: &mut Vec<Joined<'a>>) {
        let n = self.q.slots.len();
        let mut first: Joined<'a> = vec![None; n];
        first[0] = Some(root);
        if n == 1 {
            if self.q.filter.as_ref().is_none_or(|f| eval(f, &first)) {
                out.push(first);
            }
            return;
        }
        let mut rows = vec![first];
        for i in 1..n {
            let slot = &self.q.slots[i];
            let mut next = Vec::with_capacity(rows.len());
            for partial in rows {
                let matches: Vec<&'a Row> =
                    match partial[slot.parent].and_then(|p| key_of(&p.vals[slot.to])) {
                        None => Vec::new(),
                        Some(k) => match &self.indexes[i] {
                            Some(idx) => idx.get(&k).cloned().unwrap_or_default(),
                            None => self.store.get(slot.entity, &k).into_iter().collect(),
                        },
                    };
                let mut any = false;
                for m in matches {
                    let mut p = partial.clone();
                    p[i] = Some(m);
                    if slot.filter.as_ref().is_none_or(|f| eval(f, &p)) {
                        any = true;
                        next.push(p);
                    }
                }
                if !any && slot.outer {
                    next.push(partial);
                }
            }
            rows = next;
        }
        for j in rows {
            if self.q.filter.as_ref().is_none_or(|f| eval(f, &j)) {
                out.push(j);
            }
        }
    }

    fn cmp(&self, a: &Joined, b: &Joined) -> Ordering {
        for k in &self.q.orders {
            let Some(col) = k.col else { continue };
            let va = a[k.slot].map_or(&Val::Null, |r| &r.vals[col]);
            let vb = b[k.slot].map_or(&Val::Null, |r| &r.vals[col]);
            let o = order_vals(va, vb);
            let o = if k.desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        let pk = self.store.entity(self.q.slots[0].entity).primary_id;
        match (a[0], b[0]) {
            (Some(x), Some(y)) => order_vals(&x.vals[pk], &y.vals[pk]),
            _ => Ordering::Equal,
        }
    }
}

/// One column of the output, planned once per request.
struct OutCol {
    slot: usize,
    col: usize,
    name: String,
    /// Written with `@OData.Community.Display.V1.AttributeName`.
    renamed: bool,
}

fn plan(store: &Store, q: &Query) -> Vec<OutCol> {
    let mut out: Vec<OutCol> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let root = store.entity(q.slots[0].entity);
    let mut push = |out: &mut Vec<OutCol>, slot: usize, col: usize, alias: Option<&str>| {
        let ent = store.entity(q.slots[slot].entity);
        let a = &ent.attributes[col];
        let (name, renamed) = match alias {
            Some(al) => (al.to_string(), true),
            None if slot == 0 => (a.wire_name(), false),
            None => (format!("{}.{}", q.slots[slot].alias, a.logical_name), true),
        };
        if seen.insert(name.clone()) {
            out.push(OutCol {
                slot,
                col,
                name,
                renamed,
            });
        }
    };
    if !q.explicit_attributes {
        for col in 0..root.attributes.len() {
            push(&mut out, 0, col, None);
        }
    }
    let mut money = false;
    for c in &q.columns {
        push(&mut out, c.slot, c.col, c.alias.as_deref());
        if c.slot == 0 && matches!(root.attributes[c.col].kind, AttrKind::Money) {
            money = true;
        }
    }
    if money && let Some(cur) = root.attr("transactioncurrencyid") {
        push(&mut out, 0, cur, None);
    }
    push(&mut out, 0, root.primary_id, None);
    out
}

fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    render::write_str(out, k);
    out.push(b':');
}

struct Wants {
    formatted: bool,
    lookup_logical: bool,
    attribute_name: bool,
}

fn write_joined(
    out: &mut Vec<u8>,
    store: &Store,
    q: &Query,
    cols: &[OutCol],
    w: &Wants,
    j: &Joined,
) {
    out.push(b'{');
    let mut first = true;
    if let Some(root) = j[0] {
        key(out, &mut first, "@odata.etag");
        render::write_str(out, &format!("W/\"{}\"", root.version));
    }
    for c in cols {
        let Some(row) = j[c.slot] else { continue };
        let v = &row.vals[c.col];
        if v.is_null() {
            continue;
        }
        let ent = store.entity(q.slots[c.slot].entity);
        let a = &ent.attributes[c.col];
        if c.renamed && w.attribute_name {
            key(out, &mut first, &format!("{}@{ATTRIBUTE_NAME}", c.name));
            render::write_str(out, &a.logical_name);
        }
        if let (true, Val::Ref(g, t)) = (a.kind.is_lookup(), v) {
            if w.lookup_logical {
                key(out, &mut first, &format!("{}@{LOOKUP_LOGICAL}", c.name));
                render::write_str(out, &store.entity(*t).logical_name);
            }
            if w.formatted
                && let Some(name) = store.primary_name_of(*t, g)
            {
                key(out, &mut first, &format!("{}@{FORMATTED}", c.name));
                render::write_str(out, &name);
            }
        } else if w.formatted
            && let Some(f) = render::formatted(store, ent, row, c.col)
        {
            key(out, &mut first, &format!("{}@{FORMATTED}", c.name));
            render::write_str(out, &f);
        }
        key(out, &mut first, &c.name);
        render::write_val(out, &a.kind, v);
    }
    out.push(b'}');
}

fn cookie_text(v: &Val, kind: &AttrKind) -> String {
    let raw = match v {
        Val::Guid(g) | Val::Ref(g, _) => g.braced_upper(),
        Val::Str(s) => s.to_string(),
        Val::Null => String::new(),
        other => {
            let mut b = Vec::new();
            render::write_val(&mut b, kind, other);
            String::from_utf8_lossy(&b).trim_matches('"').to_string()
        }
    };
    quick_xml::escape::escape(raw.as_str()).into_owned()
}

/// Serves `GET <set>?fetchXml=...`.
pub fn handle(
    store: &Store,
    req: &Req,
    e: TableId,
    xml: &str,
    odata_count: bool,
) -> Result<Resp, DvError> {
    let q = compile(store, e, xml, req.caller)?;
    let prefer = req.prefer();
    let w = Wants {
        formatted: prefer.wants(FORMATTED),
        lookup_logical: prefer.wants(LOOKUP_LOGICAL),
        attribute_name: prefer.wants(ATTRIBUTE_NAME),
    };
    let exec = Exec::new(store, &q);
    let ent = store.entity(e);
    if q.aggregate {
        return aggregate(store, req, &q, &exec, &w, &prefer);
    }
    let size = q.top.unwrap_or(q.count);
    let table: &BTreeMap<Guid, Row> = store.rows(e);
    let cols = plan(store, &q);
    let mut total: Option<usize> = None;
    let (page, more): (Vec<Joined>, bool) = if q.orders.is_empty() && !q.distinct {
        let start = match (q.cookie_last, q.top) {
            (Some(l), None) => Bound::Excluded(l),
            _ => Bound::Unbounded,
        };
        let skip = if q.cookie_last.is_none() && q.top.is_none() {
            (q.page - 1).saturating_mul(size)
        } else {
            0
        };
        let mut rows = Vec::with_capacity(size.min(5001) + 1);
        let mut skipped = 0;
        let mut buf = Vec::new();
        for r in table.range((start, Bound::Unbounded)).map(|(_, r)| r) {
            buf.clear();
            exec.expand(r, &mut buf);
            for j in buf.drain(..) {
                if skipped < skip {
                    skipped += 1;
                } else {
                    rows.push(j);
                }
            }
            if rows.len() > size {
                break;
            }
        }
        let more = rows.len() > size && q.top.is_none();
        rows.truncate(size);
        (rows, more)
    } else {
        let mut all = Vec::new();
        for r in table.values() {
            exec.expand(r, &mut all);
        }
        all.sort_by(|a, b| exec.cmp(a, b));
        if q.distinct {
            let mut seen = std::collections::HashSet::new();
            all.retain(|j| {
                let mut k = Vec::new();
                for c in cols
                    .iter()
                    .filter(|c| !(c.slot == 0 && c.col == ent.primary_id))
                {
                    let v = j[c.slot].map_or(&Val::Null, |r| &r.vals[c.col]);
                    render::write_val(
                        &mut k,
                        &store.entity(q.slots[c.slot].entity).attributes[c.col].kind,
                        v,
                    );
                    k.push(0);
                }
                seen.insert(k)
            });
        }
        total = Some(all.len());
        let start = match (q.cookie_last, q.top) {
            (Some(l), None) => all
                .iter()
                .rposition(|j| j[0].is_some_and(|r| key_of(&r.vals[ent.primary_id]) == Some(l)))
                .map(|p| p + 1)
                .unwrap_or_else(|| (q.page - 1).saturating_mul(size)),
            (None, None) => (q.page - 1).saturating_mul(size),
            (_, Some(_)) => 0,
        };
        let start = start.min(all.len());
        let end = (start + size).min(all.len());
        let more = end < all.len() && q.top.is_none();
        all.truncate(end);
        let page: Vec<Joined> = all.drain(start..).collect();
        (page, more)
    };
    let mut out = Vec::with_capacity(page.len() * 400 + 512);
    out.extend_from_slice(b"{\"@odata.context\":");
    let list: Vec<&str> = if q.explicit_attributes {
        cols.iter()
            .filter(|c| c.slot == 0 && !c.renamed)
            .map(|c| c.name.as_str())
            .collect()
    } else {
        Vec::new()
    };
    let context = if list.is_empty() {
        format!("{}/$metadata#{}", req.api, ent.entity_set_name)
    } else {
        format!(
            "{}/$metadata#{}({})",
            req.api,
            ent.entity_set_name,
            list.join(",")
        )
    };
    render::write_str(&mut out, &context);
    if odata_count {
        out.extend_from_slice(format!(",\"@odata.count\":{}", page.len()).as_bytes());
    }
    if q.total_count {
        let n = match total {
            Some(n) => n,
            None => {
                let mut all = Vec::new();
                for r in table.values() {
                    exec.expand(r, &mut all);
                }
                all.len()
            }
        };
        if prefer.wants("Microsoft.Dynamics.CRM.totalrecordcount") {
            out.extend_from_slice(
                format!(
                    ",\"@Microsoft.Dynamics.CRM.totalrecordcount\":{}",
                    n.min(req.limits.count_limit)
                )
                .as_bytes(),
            );
        }
        if prefer.wants("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded") {
            out.extend_from_slice(
                format!(
                    ",\"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded\":{}",
                    n > req.limits.count_limit
                )
                .as_bytes(),
            );
        }
    }
    let link_order = q.orders.iter().any(|o| o.slot != 0);
    if more
        && !link_order
        && prefer.wants(PAGING_COOKIE)
        && let (Some(f), Some(l)) = (page.first(), page.last())
        && let (Some(fr), Some(lr)) = (f[0], l[0])
    {
        let mut items = Vec::new();
        for o in q.orders.iter().filter(|o| o.slot == 0) {
            if let Some(col) = o.col {
                let kind = &ent.attributes[col].kind;
                items.push((
                    ent.attributes[col].logical_name.clone(),
                    cookie_text(&lr.vals[col], kind),
                    cookie_text(&fr.vals[col], kind),
                ));
            }
        }
        let pk = ent.primary_id;
        items.push((
            ent.primary_id_name().to_string(),
            cookie_text(&lr.vals[pk], &ent.attributes[pk].kind),
            cookie_text(&fr.vals[pk], &ent.attributes[pk].kind),
        ));
        let cookie = crate::paging::fetch_cookie(q.page, &items);
        out.extend_from_slice(format!(",\"@{PAGING_COOKIE}\":").as_bytes());
        render::write_str(&mut out, &cookie);
    }
    if more && prefer.wants(MORE_RECORDS) {
        out.extend_from_slice(format!(",\"@{MORE_RECORDS}\":true").as_bytes());
    }
    out.extend_from_slice(b",\"value\":[");
    for (i, j) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_joined(&mut out, store, &q, &cols, &w, j);
    }
    out.extend_from_slice(b"]}");
    let mut resp = Resp::json(200, out);
    if let Some(a) = &prefer.include_annotations {
        resp = resp.header(
            "Preference-Applied",
            format!("odata.include-annotations=\"{a}\""),
        );
    }
    Ok(resp)
}

#[derive(Debug, Clone)]
enum Acc {
    Count(usize),
    Distinct(std::collections::HashSet<Vec<u8>>),
    Sum { total: f64, int: bool, any: bool },
    Avg { total: f64, n: usize },
    Min(Val),
    Max(Val),
}

fn aggregate(
    store: &Store,
    req: &Req,
    q: &Query,
    exec: &Exec,
    w: &Wants,
    prefer: &crate::wire::Prefer,
) -> Result<Resp, DvError> {
    let e = q.slots[0].entity;
    let mut all = Vec::new();
    for r in store.rows(e).values() {
        exec.expand(r, &mut all);
        if all.len() > MAX_AGGREGATE_ROWS {
            return Err(DvError::new(
                400,
                AGGREGATE_LIMIT,
                "AggregateQueryRecordLimit exceeded. Cannot perform this operation.",
            ));
        }
    }
    let kind_of = |c: &Column| &store.entity(q.slots[c.slot].entity).attributes[c.col].kind;
    let group_cols: Vec<&Column> = q.columns.iter().filter(|c| c.groupby).collect();
    let agg_cols: Vec<&Column> = q.columns.iter().filter(|c| c.agg.is_some()).collect();
    let fresh = || -> Vec<Acc> {
        agg_cols
            .iter()
            .map(|c| match c.agg {
                Some(AggFn::CountColumn) if c.distinct => {
                    Acc::Distinct(std::collections::HashSet::new())
                }
                Some(AggFn::Sum) => Acc::Sum {
                    total: 0.0,
                    int: !matches!(kind_of(c), AttrKind::Decimal { .. } | AttrKind::Money),
                    any: false,
                },
                Some(AggFn::Avg) => Acc::Avg { total: 0.0, n: 0 },
                Some(AggFn::Min) => Acc::Min(Val::Null),
                Some(AggFn::Max) => Acc::Max(Val::Null),
                _ => Acc::Count(0),
            })
            .collect()
    };
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut groups: Vec<(Vec<Val>, Vec<Acc>)> = Vec::new();
    if group_cols.is_empty() {
        groups.push((Vec::new(), fresh()));
        index.insert(Vec::new(), 0);
    }
    for j in &all {
        let vals: Vec<Val> = group_cols
            .iter()
            .map(|c| j[c.slot].map_or(Val::Null, |r| r.vals[c.col].clone()))
            .collect();
        let mut k = Vec::new();
        for (c, v) in group_cols.iter().zip(&vals) {
            let v = match v {
                Val::Str(s) => Val::str(&s.to_lowercase()),
                other => other.clone(),
            };
            render::write_val(&mut k, kind_of(c), &v);
            k.push(0);
        }
        let gi = match index.get(&k) {
            Some(&i) => i,
            None => {
                groups.push((vals, fresh()));
                index.insert(k, groups.len() - 1);
                groups.len() - 1
            }
        };
        for (acc, c) in groups[gi].1.iter_mut().zip(&agg_cols) {
            let v = j[c.slot].map_or(&Val::Null, |r| &r.vals[c.col]);
            let num = match v {
                Val::Int(i) => Some(*i as f64),
                Val::Num(n) => Some(*n),
                _ => None,
            };
            match acc {
                Acc::Count(n) => {
                    if c.agg == Some(AggFn::Count) || !v.is_null() {
                        *n += 1;
                    }
                }
                Acc::Distinct(set) => {
                    if !v.is_null() {
                        let mut b = Vec::new();
                        render::write_val(&mut b, kind_of(c), v);
                        set.insert(b);
                    }
                }
                Acc::Sum { total, any, .. } => {
                    if let Some(x) = num {
                        *total += x;
                        *any = true;
                    }
                }
                Acc::Avg { total, n } => {
                    if let Some(x) = num {
                        *total += x;
                        *n += 1;
                    }
                }
                Acc::Min(m) => {
                    if !v.is_null() && (m.is_null() || order_vals(v, m) == Ordering::Less) {
                        *m = v.clone();
                    }
                }
                Acc::Max(m) => {
                    if !v.is_null() && (m.is_null() || order_vals(v, m) == Ordering::Greater) {
                        *m = v.clone();
                    }
                }
            }
        }
    }
    groups.sort_by(|a, b| {
        for (x, y) in a.0.iter().zip(&b.0) {
            let o = order_vals(x, y);
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    // Render each group to (alias, kind, value) cells, then order by alias if asked.
    let mut rows: Vec<Vec<(String, Option<usize>, Val)>> = Vec::new();
    for (vals, accs) in &groups {
        let mut cells = Vec::new();
        let mut gv = vals.iter();
        let mut av = accs.iter();
        for (ci, c) in q.columns.iter().enumerate() {
            let alias = c.alias.clone().unwrap_or_default();
            if c.groupby {
                if let Some(v) = gv.next() {
                    cells.push((alias, Some(ci), v.clone()));
                }
            } else if let Some(acc) = av.next() {
                let v = match acc {
                    Acc::Count(n) => Val::Int(*n as i64),
                    Acc::Distinct(s) => Val::Int(s.len() as i64),
                    Acc::Sum { total, int, any } => match (*any, *int) {
                        (false, _) => Val::Null,
                        (true, true) => Val::Int(*total as i64),
                        (true, false) => Val::Num(*total),
                    },
                    Acc::Avg { total, n } => {
                        if *n == 0 {
                            Val::Null
                        } else {
                            Val::Num(total / *n as f64)
                        }
                    }
                    Acc::Min(v) | Acc::Max(v) => v.clone(),
                };
                let is_count = matches!(acc, Acc::Count(_) | Acc::Distinct(_) | Acc::Avg { .. });
                cells.push((alias, if is_count { None } else { Some(ci) }, v));
            }
        }
        rows.push(cells);
    }
    for o in q.orders.iter().rev() {
        if let Some(alias) = &o.alias {
            rows.sort_by(|a, b| {
                let va = a
                    .iter()
                    .find(|c| &c.0 == alias)
                    .map_or(&Val::Null, |c| &c.2);
                let vb = b
                    .iter()
                    .find(|c| &c.0 == alias)
                    .map_or(&Val::Null, |c| &c.2);
                let ord = order_vals(va, vb);
                if o.desc { ord.reverse() } else { ord }
            });
        }
    }
    if let Some(t) = q.top {
        rows.truncate(t);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"@odata.context\":");
    render::write_str(
        &mut out,
        &format!("{}/$metadata#{}", req.api, store.entity(e).entity_set_name),
    );
    out.extend_from_slice(b",\"value\":[");
    for (i, cells) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        let mut first = true;
        for (alias, ci, v) in cells {
            if v.is_null() {
                continue;
            }
            let kind = ci.map(|ci| kind_of(&q.columns[ci]));
            if w.formatted {
                let text = match (kind, v) {
                    (
                        Some(
                            AttrKind::Picklist { options }
                            | AttrKind::State { options }
                            | AttrKind::Status { options },
                        ),
                        Val::Int(n),
                    ) => options.iter().find(|(o, _)| o == n).map(|(_, l)| l.clone()),
                    (_, Val::Int(n)) => Some(n.to_string()),
                    _ => None,
                };
                if let Some(t) = text {
                    key(&mut out, &mut first, &format!("{alias}@{FORMATTED}"));
                    render::write_str(&mut out, &t);
                }
            }
            key(&mut out, &mut first, alias);
            match kind {
                Some(k) => render::write_val(&mut out, k, v),
                None => render::write_val(&mut out, &AttrKind::BigInt, v),
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    let mut resp = Resp::json(200, out);
    if let Some(a) = &prefer.include_annotations {
        resp = resp.header(
            "Preference-Applied",
            format!("odata.include-annotations=\"{a}\""),
        );
    }
    Ok(resp)
}
