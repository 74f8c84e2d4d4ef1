//! FetchXML, stage 2: the element tree compiled against the schema into a [`Query`]: the
//! root table and its link-entities (slots), output and aggregate columns, conditions with
//! values typed for their columns, orders, paging (`count`, `page`, the paging cookie's last
//! key) and flags. Unknown tables, columns and operators are 400s here, before any row is read.
//! Also the output columns of a page ([`output_columns`]), planned once per request.

use super::invalid;
use super::parse::{Element, parse_xml};
use crate::datetime;
use crate::error::{DvError, NO_ATTRIBUTE, TOO_MANY_LINKS};
use crate::guid::Guid;
use crate::schema::{AttrKind, TableId};
use crate::store::{Store, Val};
use crate::wire::Caller;

/// The largest page and `top` a query may ask for.
pub const MAX_PAGE: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggFn {
    Count,
    CountColumn,
    Sum,
    Avg,
    Min,
    Max,
}

/// One output column.
#[derive(Debug, Clone)]
pub struct Column {
    pub slot: usize,
    pub col: usize,
    pub alias: Option<String>,
    pub agg: Option<AggFn>,
    pub distinct: bool,
    pub groupby: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
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
pub enum Cond {
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
pub struct Slot {
    pub entity: TableId,
    pub alias: String,
    pub parent: usize,
    /// Column of this table matched against `to`.
    pub from: usize,
    /// Column of the parent table.
    pub to: usize,
    pub outer: bool,
    pub filter: Option<Cond>,
}

#[derive(Debug, Clone)]
pub struct OrderKey {
    pub slot: usize,
    pub col: Option<usize>,
    /// Aggregate queries order by alias.
    pub alias: Option<String>,
    pub desc: bool,
}

/// A compiled FetchXML query.
#[derive(Debug)]
pub struct Query {
    pub slots: Vec<Slot>,
    pub columns: Vec<Column>,
    pub filter: Option<Cond>,
    pub orders: Vec<OrderKey>,
    pub top: Option<usize>,
    pub count: usize,
    pub page: usize,
    pub cookie_last: Option<Guid>,
    pub aggregate: bool,
    pub distinct: bool,
    pub total_count: bool,
    pub explicit_attributes: bool,
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
        AttrKind::Uniqueidentifier | AttrKind::Lookup { .. } | AttrKind::File { .. } => {
            Val::Guid(Guid::parse(t).ok_or_else(fail)?)
        }
        // An image is stored as base64 text; FetchXML compares it as such.
        AttrKind::Image { .. } => Val::str(text),
    })
}

impl Query {
    /// The type of a query column.
    pub fn kind<'s>(&self, store: &'s Store, c: &Column) -> &'s AttrKind {
        &store.entity(self.slots[c.slot].entity).attributes[c.col].kind
    }
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
            // The other documented link types (fetchxml/reference/link-entity): valid FetchXML
            // the emulator does not run.
            other @ ("any"
            | "not any"
            | "all"
            | "not all"
            | "exists"
            | "in"
            | "matchfirstrowusingcrossapply") => {
                return Err(DvError::not_implemented(format_args!(
                    "the FetchXML link-type '{other}'"
                )));
            }
            other => {
                return Err(invalid(format!("The link-type '{other}' is not valid.")));
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
pub fn cookie_last_key(text: &str, pk: &str) -> Result<Option<Guid>, DvError> {
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

/// One column of the output, planned once per request.
pub struct OutCol {
    pub slot: usize,
    pub col: usize,
    pub name: String,
    /// Written with `@OData.Community.Display.V1.AttributeName`.
    pub renamed: bool,
}

/// The columns a page writes, in order: every column of the root table unless attributes
/// were named, the named ones (linked ones as `alias.column` or their alias), the currency of
/// money columns, and the primary key.
pub fn output_columns(store: &Store, q: &Query) -> Vec<OutCol> {
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

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;
    use crate::error::INVALID_ARGUMENT;

    fn accounts_query(inner: &str, fetch_attrs: &str) -> Result<Query, DvError> {
        let rows = fixture::rows();
        compile_on(&rows, inner, fetch_attrs)
    }

    fn compile_on(rows: &fixture::Rows, inner: &str, fetch_attrs: &str) -> Result<Query, DvError> {
        let xml = format!("<fetch {fetch_attrs}><entity name='account'>{inner}</entity></fetch>");
        let caller = Caller {
            user: fixture::id(0x20),
            business_unit: fixture::id(0x21),
        };
        compile(&rows.store, rows.accounts, &xml, caller)
    }

    fn invalid_message(result: Result<Query, DvError>) -> String {
        let err = result.unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, INVALID_ARGUMENT));
        err.message
    }

    /// The single test of a query's root filter.
    fn only_test(q: &Query) -> (Op, Vec<Val>, String) {
        match &q.filter {
            Some(Cond::And(items)) => match items.as_slice() {
                [
                    Cond::Test {
                        op, vals, pattern, ..
                    },
                ] => (*op, vals.clone(), pattern.clone()),
                other => panic!("one test, not {other:?}"),
            },
            other => panic!("an and-filter, not {other:?}"),
        }
    }

    #[test]
    fn a_query_compiles_to_slots_columns_orders_and_paging() {
        let rows = fixture::rows();
        let q = compile_on(
            &rows,
            "<attribute name='name'/><order attribute='name' descending='true'/>",
            "count='2' page='3'",
        )
        .unwrap();
        let ent = rows.store.entity(rows.accounts);
        assert_eq!(q.slots.len(), 1);
        assert_eq!(q.slots[0].entity, rows.accounts);
        assert!(q.explicit_attributes);
        assert_eq!(q.columns[0].col, ent.attr("name").unwrap());
        assert_eq!(q.orders[0].col, ent.attr("name"));
        assert!(q.orders[0].desc);
        assert_eq!((q.top, q.count, q.page), (None, 2, 3));
        let defaults = compile_on(&rows, "", "").unwrap();
        assert_eq!((defaults.count, defaults.page), (MAX_PAGE, 1));
        assert!(!defaults.explicit_attributes && defaults.filter.is_none());
    }

    #[test]
    fn unknown_columns_tables_and_operators_are_400s() {
        let err = accounts_query("<attribute name='nosuch'/>", "").unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, NO_ATTRIBUTE));
        assert!(
            err.message.contains("'account'") && err.message.contains("'nosuch'"),
            "{}",
            err.message
        );
        let table = invalid_message(accounts_query(
            "<link-entity name='nosuch' from='a' to='name'/>",
            "",
        ));
        assert!(table.contains("'nosuch'"), "{table}");
        let op = invalid_message(accounts_query(
            "<filter><condition attribute='name' operator='sounds-like' value='x'/></filter>",
            "",
        ));
        assert!(op.contains("'sounds-like'"), "{op}");
    }

    #[test]
    fn the_entity_must_be_the_entity_sets() {
        let rows = fixture::rows();
        let xml = "<fetch><entity name='contact'/></fetch>";
        let message = invalid_message(compile(&rows.store, rows.accounts, xml, Caller::default()));
        assert!(message.contains("'accounts'"), "{message}");
        let root = invalid_message(compile(
            &rows.store,
            rows.accounts,
            "<query/>",
            Caller::default(),
        ));
        assert!(root.contains("'fetch'"), "{root}");
    }

    #[test]
    fn paging_attributes_are_checked() {
        let both = invalid_message(accounts_query("", "top='5' count='2'"));
        assert!(both.contains("'top'"), "{both}");
        let large = invalid_message(accounts_query("", "top='5001'"));
        assert!(large.contains("5000"), "{large}");
        let text = invalid_message(accounts_query("", "count='many'"));
        assert!(text.contains("'many'"), "{text}");
    }

    #[test]
    fn conditions_get_values_of_their_column_type() {
        let cond =
            |c: &str| only_test(&accounts_query(&format!("<filter>{c}</filter>"), "").unwrap());
        assert_eq!(
            cond("<condition attribute='numberofemployees' operator='ge' value='10'/>"),
            (Op::Ge, vec![Val::Int(10)], String::new())
        );
        assert_eq!(
            cond("<condition attribute='name' operator='begins-with' value='Con'/>"),
            (Op::Like, vec![], "con%".to_string())
        );
        assert_eq!(
            cond(
                "<condition attribute='name' operator='in'><value>a</value><value>b</value></condition>"
            ),
            (Op::In, vec![Val::str("a"), Val::str("b")], String::new())
        );
        let (op, vals, _) =
            cond("<condition attribute='createdon' operator='on' value='2024-03-01'/>");
        let day = crate::datetime::parse_iso("2024-03-01").unwrap();
        assert_eq!(
            (op, vals),
            (Op::Between, vec![Val::Date(day), Val::Date(day + 86_399)])
        );
        assert_eq!(
            cond("<condition attribute='ownerid' operator='eq-userid'/>"),
            (Op::Eq, vec![Val::Guid(fixture::id(0x20))], String::new())
        );
        let bad = invalid_message(accounts_query(
            "<filter><condition attribute='numberofemployees' operator='eq' value='ten'/></filter>",
            "",
        ));
        assert!(bad.contains("'ten'"), "{bad}");
        let like_number = invalid_message(accounts_query(
            "<filter><condition attribute='numberofemployees' operator='like' value='1%'/></filter>",
            "",
        ));
        assert!(like_number.contains("string attribute"), "{like_number}");
    }

    #[test]
    fn link_entities_join_by_their_columns_and_count_against_a_limit() {
        let rows = fixture::rows();
        let q = compile_on(
            &rows,
            "<link-entity name='contact' from='contactid' to='primarycontactid' link-type='outer'>\
             <attribute name='fullname'/></link-entity>",
            "",
        )
        .unwrap();
        let link = &q.slots[1];
        assert_eq!(link.entity, rows.contacts);
        assert_eq!(link.alias, "contact1");
        assert!(link.outer);
        assert_eq!(
            link.to,
            rows.store
                .entity(rows.accounts)
                .attr("primarycontactid")
                .unwrap()
        );
        let kind = invalid_message(compile_on(
            &rows,
            "<link-entity name='contact' from='contactid' to='primarycontactid' link-type='full'/>",
            "",
        ));
        assert!(kind.contains("'full'"), "{kind}");
        let sixteen =
            "<link-entity name='account' from='accountid' to='parentaccountid'/>".repeat(16);
        let err = compile_on(&rows, &sixteen, "").unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, TOO_MANY_LINKS));
    }

    #[test]
    fn aggregate_queries_need_aliases_and_numbers_to_sum() {
        let alias = invalid_message(accounts_query(
            "<attribute name='name' aggregate='count'/>",
            "aggregate='true'",
        ));
        assert!(alias.contains("alias"), "{alias}");
        let sum = invalid_message(accounts_query(
            "<attribute name='name' alias='n' aggregate='sum'/>",
            "aggregate='true'",
        ));
        assert!(sum.contains("numeric"), "{sum}");
        let outside = invalid_message(accounts_query(
            "<attribute name='name' groupby='true'/>",
            "",
        ));
        assert!(outside.contains("aggregate='true'"), "{outside}");
        let q = accounts_query(
            "<attribute name='industrycode' alias='industry' groupby='true'/>\
             <attribute name='numberofemployees' alias='staff' aggregate='sum'/>",
            "aggregate='true'",
        )
        .unwrap();
        assert!(q.aggregate && q.columns[0].groupby);
        assert_eq!(q.columns[1].agg, Some(AggFn::Sum));
    }

    #[test]
    fn a_paging_cookie_gives_the_last_primary_key_even_url_encoded() {
        let last = fixture::id(2);
        let cookie = format!(
            "<cookie page=\"1\"><accountid last=\"{}\" first=\"{}\" /></cookie>",
            last.braced_upper(),
            fixture::id(1).braced_upper()
        );
        assert_eq!(cookie_last_key(&cookie, "accountid").unwrap(), Some(last));
        let encoded: String =
            percent_encoding::utf8_percent_encode(&cookie, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(cookie_last_key(&encoded, "accountid").unwrap(), Some(last));
        assert_eq!(cookie_last_key(&cookie, "contactid").unwrap(), None);
        assert!(cookie_last_key("<page/>", "accountid").is_err());
    }

    #[test]
    fn output_columns_are_the_named_ones_then_currency_and_key() {
        let rows = fixture::rows();
        let ent = rows.store.entity(rows.accounts);
        let names = |q: &Query| -> Vec<(String, bool)> {
            output_columns(&rows.store, q)
                .into_iter()
                .map(|c| (c.name, c.renamed))
                .collect()
        };
        let all = compile_on(&rows, "", "").unwrap();
        assert_eq!(names(&all).len(), ent.attributes.len());
        let named = compile_on(
            &rows,
            "<attribute name='revenue'/><attribute name='name' alias='title'/>\
             <link-entity name='contact' from='contactid' to='primarycontactid' alias='pc'>\
             <attribute name='fullname'/></link-entity>",
            "",
        )
        .unwrap();
        let owned = |list: &[(&str, bool)]| -> Vec<(String, bool)> {
            list.iter().map(|(n, r)| (n.to_string(), *r)).collect()
        };
        assert_eq!(
            names(&named),
            owned(&[
                ("revenue", false),
                ("title", true),
                ("pc.fullname", true),
                ("_transactioncurrencyid_value", false),
                ("accountid", false),
            ])
        );
    }
}
