//! JSON rendering of rows: selected columns in order, `@odata.etag`, requested annotations and
//! expanded navigation properties. Written straight into a byte buffer, in column order, because
//! pages of 5000 rows are the hot path of every benchmark.

use std::collections::HashMap;

use crate::datetime;
use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::eval::{Filter, Order};
use crate::odata::query::QueryOptions;
use crate::schema::{AttrKind, Entity, TableId};
use crate::store::{Row, Store, Val};
use crate::wire::{Caller, Prefer};

pub const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";
pub const LOOKUP_LOGICAL: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";
pub const ASSOCIATED_NAV: &str = "Microsoft.Dynamics.CRM.associatednavigationproperty";

/// Which annotations to write.
#[derive(Debug, Clone, Copy, Default)]
pub struct Annotations {
    pub formatted: bool,
    pub lookup_logical: bool,
    pub associated_nav: bool,
}

impl Annotations {
    pub fn from_prefer(p: &Prefer) -> Annotations {
        Annotations {
            formatted: p.wants(FORMATTED),
            lookup_logical: p.wants(LOOKUP_LOGICAL),
            associated_nav: p.wants(ASSOCIATED_NAV),
        }
    }
}

/// An expansion, compiled.
pub struct ExpandPlan {
    pub nav: String,
    pub is_ref: bool,
    pub kind: ExpandKind,
    pub sel: Selection,
    pub filter: Option<Filter>,
    pub order: Option<Order>,
    pub top: Option<usize>,
    pub options: QueryOptions,
}

/// Single- or collection-valued.
pub enum ExpandKind {
    Single { col: usize, target: TableId },
    Collection { child: TableId, col: usize },
}

/// Columns to write and expansions, compiled against the schema.
pub struct Selection {
    pub entity: TableId,
    pub cols: Vec<usize>,
    pub expands: Vec<ExpandPlan>,
    /// `$select` was given (affects the context URL).
    pub explicit: bool,
}

impl Selection {
    /// Compiles `$select`/`$expand`; unknown names are 400s.
    pub fn compile(
        store: &Store,
        entity: TableId,
        q: &QueryOptions,
        caller: Caller,
    ) -> Result<Selection, DvError> {
        let e = store.entity(entity);
        let mut cols = Vec::new();
        match &q.select {
            Some(names) => {
                for n in names {
                    if n == "*" {
                        cols.extend(0..e.attributes.len());
                        continue;
                    }
                    let c = e
                        .attr_by_wire(n)
                        .or_else(|| e.attr(n).filter(|&c| !e.attributes[c].kind.is_lookup()))
                        .ok_or_else(|| DvError::unknown_property(n, &e.logical_name))?;
                    if !cols.contains(&c) {
                        cols.push(c);
                    }
                    // Money columns bring their currency, as the service does.
                    if matches!(e.attributes[c].kind, AttrKind::Money)
                        && let Some(cur) = e.attr("transactioncurrencyid")
                        && !cols.contains(&cur)
                        && !names.iter().any(|x| x == "_transactioncurrencyid_value")
                    {
                        cols.push(cur);
                    }
                }
                if !cols.contains(&e.primary_id) {
                    cols.push(e.primary_id);
                }
            }
            None => cols.extend(0..e.attributes.len()),
        }
        let mut expands = Vec::new();
        for x in &q.expand {
            expands.push(compile_expand(store, entity, x, caller)?);
        }
        Ok(Selection {
            entity,
            cols,
            expands,
            explicit: q.select.is_some(),
        })
    }

    /// The `(a,b,nav(c))` part of a context URL; empty when nothing was selected or expanded.
    pub fn context_list(&self, q: &QueryOptions) -> String {
        let mut parts: Vec<String> = q.select.clone().unwrap_or_default();
        for (x, plan) in q.expand.iter().zip(&self.expands) {
            let inner = plan.sel.context_list(&plan.options);
            if x.is_ref {
                parts.push(format!("{}/$ref()", x.nav));
            } else if inner.is_empty() {
                parts.push(format!("{}()", x.nav));
            } else {
                parts.push(format!("{}{}", x.nav, inner));
            }
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("({})", parts.join(","))
        }
    }
}

fn compile_expand(
    store: &Store,
    entity: TableId,
    x: &crate::odata::query::Expand,
    caller: Caller,
) -> Result<ExpandPlan, DvError> {
    let schema = &store.schema;
    let e = schema.table(entity);
    let (kind, target) = if let Some(rel) = schema.single_nav(entity, &x.nav) {
        (
            ExpandKind::Single {
                col: rel.referencing_attribute,
                target: rel.referenced_entity,
            },
            rel.referenced_entity,
        )
    } else if let Some(rel) = schema.collection_nav(entity, &x.nav) {
        if x.is_ref {
            return Err(DvError::bad_request(
                "Expand with $ref is only supported on lookup type navigation property.",
            ));
        }
        (
            ExpandKind::Collection {
                child: rel.referencing_entity,
                col: rel.referencing_attribute,
            },
            rel.referencing_entity,
        )
    } else {
        return Err(DvError::unknown_property(&x.nav, &e.logical_name));
    };
    if matches!(kind, ExpandKind::Single { .. })
        && (x.options.top.is_some() || !x.options.orderby.is_empty())
    {
        return Err(DvError::bad_request(
            "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship or nested one-to-many relationship.",
        ));
    }
    let mut sel = Selection::compile(store, target, &x.options, caller)?;
    // Collection rows carry the lookup that points back at the parent.
    if let ExpandKind::Collection { col, .. } = kind
        && sel.explicit
        && !sel.cols.contains(&col)
    {
        sel.cols.push(col);
    }
    let filter = match &x.options.filter {
        Some(f) => Some(Filter::compile(store, target, f, caller)?),
        None => None,
    };
    let order = if x.options.orderby.is_empty() {
        None
    } else {
        Some(Order::compile(store, target, &x.options.orderby)?)
    };
    Ok(ExpandPlan {
        nav: x.nav.clone(),
        is_ref: x.is_ref,
        kind,
        sel,
        filter,
        order,
        top: x.options.top,
        options: x.options.clone(),
    })
}

/// Shared inputs of rendering.
pub struct Ctx<'a> {
    pub store: &'a Store,
    /// `http://host/api/data/v9.2`
    pub api: &'a str,
    pub ann: Annotations,
    /// Per collection expansion: parent id → child ids, built once per page.
    pub child_index: Vec<HashMap<Guid, Vec<Guid>>>,
}

/// Builds the reverse indexes the collection expansions of `sel` need.
pub fn child_indexes(
    store: &Store,
    sel: &Selection,
    parent: TableId,
) -> Vec<HashMap<Guid, Vec<Guid>>> {
    sel.expands
        .iter()
        .map(|x| match x.kind {
            ExpandKind::Collection { child, col } => {
                let mut idx: HashMap<Guid, Vec<Guid>> = HashMap::new();
                for (id, row) in store.rows(child) {
                    if let Val::Ref(g, e) = &row.vals[col]
                        && *e == parent
                    {
                        idx.entry(*g).or_default().push(*id);
                    }
                }
                idx
            }
            ExpandKind::Single { .. } => HashMap::new(),
        })
        .collect()
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    write_str(out, k);
    out.push(b':');
}

fn write_num(out: &mut Vec<u8>, n: f64) {
    if n.is_finite() {
        if n.fract() == 0.0 && n.abs() < 1e15 {
            out.extend_from_slice(format!("{}", n as i64).as_bytes());
        } else {
            let _ = serde_json::to_writer(&mut *out, &n);
        }
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Writes a cell's JSON value.
pub fn write_val(out: &mut Vec<u8>, kind: &AttrKind, v: &Val) {
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Str(s) => write_str(out, s),
        Val::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Val::Num(n) => write_num(out, *n),
        Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Val::Date(d) => {
            let text = if matches!(kind, AttrKind::DateTime { date_only: true }) {
                datetime::format_date(*d)
            } else {
                datetime::format_iso(*d)
            };
            write_str(out, &text)
        }
        Val::Guid(g) | Val::Ref(g, _) => write_str(out, &g.to_string()),
    }
}

fn thousands(int_part: i64) -> String {
    let digits = int_part.unsigned_abs().to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    if int_part < 0 { format!("-{s}") } else { s }
}

fn fixed(n: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, n.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let int: i64 = int.parse().unwrap_or(0);
    let sign = if n < 0.0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{}", thousands(int))
    } else {
        format!("{sign}{}.{frac}", thousands(int))
    }
}

/// The en-US formatted value of a cell, as `odata.include-annotations` returns it.
pub fn formatted(store: &Store, e: &Entity, row: &Row, col: usize) -> Option<String> {
    let v = &row.vals[col];
    let kind = &e.attributes[col].kind;
    Some(match (kind, v) {
        (_, Val::Null) => return None,
        (
            AttrKind::Picklist { options }
            | AttrKind::State { options }
            | AttrKind::Status { options },
            Val::Int(i),
        ) => options.iter().find(|(o, _)| o == i)?.1.clone(),
        (
            AttrKind::Boolean {
                true_label,
                false_label,
            },
            Val::Bool(b),
        ) => {
            if *b {
                true_label.clone()
            } else {
                false_label.clone()
            }
        }
        (AttrKind::Money, Val::Num(n)) => {
            let symbol = e
                .attr("transactioncurrencyid")
                .and_then(|c| match &row.vals[c] {
                    Val::Ref(g, t) => {
                        let te = store.entity(*t);
                        let sc = te.attr("currencysymbol")?;
                        match &store.get(*t, g)?.vals[sc] {
                            Val::Str(s) => Some(s.to_string()),
                            _ => None,
                        }
                    }
                    _ => None,
                })
                .unwrap_or_else(|| "$".into());
            format!("{symbol}{}", fixed(*n, 2))
        }
        (AttrKind::Decimal { precision }, Val::Num(n)) => fixed(*n, *precision as usize),
        (AttrKind::Integer { .. } | AttrKind::BigInt, Val::Int(i)) => thousands(*i),
        (AttrKind::DateTime { date_only }, Val::Date(d)) => {
            datetime::format_display(*d, *date_only)
        }
        (AttrKind::Lookup { .. }, Val::Ref(g, t)) => store.primary_name_of(*t, g)?,
        _ => return None,
    })
}

/// Writes one row as a JSON object.
pub fn write_row(out: &mut Vec<u8>, ctx: &Ctx, sel: &Selection, row: &Row, etag: bool) {
    let store = ctx.store;
    let e = store.entity(sel.entity);
    out.push(b'{');
    let mut first = true;
    if etag {
        key(out, &mut first, "@odata.etag");
        write_str(out, &format!("W/\"{}\"", row.version));
    }
    for &c in &sel.cols {
        let a = &e.attributes[c];
        let v = &row.vals[c];
        if let AttrKind::Lookup { .. } = a.kind {
            let wire = a.wire_name();
            if let Val::Ref(g, t) = v {
                let t = *t;
                if ctx.ann.associated_nav
                    && let Some(rel) = store.schema.relationship_for(sel.entity, c, t)
                {
                    key(out, &mut first, &format!("{wire}@{ASSOCIATED_NAV}"));
                    write_str(out, &rel.referencing_nav);
                }
                if ctx.ann.lookup_logical {
                    key(out, &mut first, &format!("{wire}@{LOOKUP_LOGICAL}"));
                    write_str(out, &store.entity(t).logical_name);
                }
                if ctx.ann.formatted
                    && let Some(name) = store.primary_name_of(t, g)
                {
                    key(out, &mut first, &format!("{wire}@{FORMATTED}"));
                    write_str(out, &name);
                }
            }
            key(out, &mut first, &wire);
            write_val(out, &a.kind, v);
            continue;
        }
        if ctx.ann.formatted
            && let Some(f) = formatted(store, e, row, c)
        {
            key(out, &mut first, &format!("{}@{FORMATTED}", a.logical_name));
            write_str(out, &f);
        }
        key(out, &mut first, &a.logical_name);
        write_val(out, &a.kind, v);
    }
    let pid = match &row.vals[e.primary_id] {
        Val::Guid(g) => *g,
        _ => Guid::default(),
    };
    for (xi, x) in sel.expands.iter().enumerate() {
        match x.kind {
            ExpandKind::Single { col, target } => {
                key(out, &mut first, &x.nav);
                let child = match &row.vals[col] {
                    Val::Ref(g, t) if *t == target => store.get(target, g).map(|r| (g, r)),
                    _ => None,
                };
                match child {
                    Some((g, r)) if x.filter.as_ref().is_none_or(|f| f.matches(store, r)) => {
                        if x.is_ref {
                            out.extend_from_slice(b"{\"@odata.id\":");
                            write_str(
                                out,
                                &format!(
                                    "{}/{}({g})",
                                    ctx.api,
                                    store.entity(target).entity_set_name
                                ),
                            );
                            out.push(b'}');
                        } else {
                            let sub = Ctx {
                                store,
                                api: ctx.api,
                                ann: ctx.ann,
                                child_index: child_indexes(store, &x.sel, target),
                            };
                            write_row(out, &sub, &x.sel, r, false);
                        }
                    }
                    _ => out.extend_from_slice(b"null"),
                }
            }
            ExpandKind::Collection { child, .. } => {
                key(out, &mut first, &x.nav);
                let ids = ctx
                    .child_index
                    .get(xi)
                    .and_then(|m| m.get(&pid))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let mut rows: Vec<&Row> = ids
                    .iter()
                    .filter_map(|id| store.get(child, id))
                    .filter(|r| x.filter.as_ref().is_none_or(|f| f.matches(store, r)))
                    .collect();
                if let Some(o) = &x.order {
                    rows.sort_by(|a, b| o.cmp(store, a, b));
                }
                rows.truncate(x.top.unwrap_or(5000).min(5000));
                let sub = Ctx {
                    store,
                    api: ctx.api,
                    ann: ctx.ann,
                    child_index: child_indexes(store, &x.sel, child),
                };
                out.push(b'[');
                for (i, r) in rows.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_row(out, &sub, &x.sel, r, true);
                }
                out.push(b']');
                let mut link = format!("{}/{}({pid})/{}", ctx.api, e.entity_set_name, x.nav);
                if let Some(s) = &x.options.select {
                    link.push_str(&format!("?$select={}", s.join(",")));
                }
                key(out, &mut first, &format!("{}@odata.nextLink", x.nav));
                write_str(out, &link);
            }
        }
    }
    out.push(b'}');
}

/// A row as a `serde_json::Value` (all columns, no annotations), for test snapshots.
pub fn row_to_json(store: &Store, entity: TableId, row: &Row) -> serde_json::Value {
    let sel = Selection {
        entity,
        cols: (0..store.entity(entity).attributes.len()).collect(),
        expands: Vec::new(),
        explicit: false,
    };
    let ctx = Ctx {
        store,
        api: "",
        ann: Annotations::default(),
        child_index: Vec::new(),
    };
    let mut out = Vec::new();
    write_row(&mut out, &ctx, &sel, row, true);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}
