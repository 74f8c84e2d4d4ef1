//! FetchXML, stage 3: a compiled [`Query`] run over the rows: link-entities joined (inner or
//! outer, through an index when a link does not meet a primary key), conditions evaluated,
//! rows ordered, the asked-for page selected ([`page`]), and aggregates grouped and
//! accumulated ([`aggregate`]). Nothing here writes JSON.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::plan::{AggFn, Column, Cond, Op, OutCol, Query};
use crate::error::{AGGREGATE_LIMIT, DvError};
use crate::guid::Guid;
use crate::render;
use crate::schema::AttrKind;
use crate::store::{Row, Store, Val};

/// The most joined rows an aggregate query may cover.
pub const MAX_AGGREGATE_ROWS: usize = 50_000;

/// One cell of an aggregate result row: its alias, the query column whose type renders it
/// (None for counts and averages, written as plain numbers), and its value.
pub type Cell = (String, Option<usize>, Val);

/// One result row: the row of each slot (root first), None where an outer link found none.
pub type Joined<'a> = Vec<Option<&'a Row>>;

pub fn key_of(v: &Val) -> Option<Guid> {
    match v {
        Val::Guid(g) | Val::Ref(g, _) => Some(*g),
        _ => None,
    }
}

/// Compares two cells of comparable types; strings case-insensitively.
pub fn cmp_vals(a: &Val, b: &Val) -> Option<Ordering> {
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
pub fn order_vals(a: &Val, b: &Val) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => cmp_vals(a, b).unwrap_or(Ordering::Equal),
    }
}

/// SQL `LIKE` with `%` and `_` over lower-cased text.
pub fn like_match(text: &str, pattern: &str) -> bool {
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

/// Whether a joined row passes a condition (null cells fail every test but `null`).
pub fn eval(c: &Cond, j: &Joined) -> bool {
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
pub struct Exec<'a> {
    store: &'a Store,
    q: &'a Query,
    /// Per link slot whose `from` is not the primary key: key → rows.
    indexes: Vec<Option<HashMap<Guid, Vec<&'a Row>>>>,
}

impl<'a> Exec<'a> {
    pub fn new(store: &'a Store, q: &'a Query) -> Exec<'a> {
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
    pub fn expand(&self, root: &'a Row, out: &mut Vec<Joined<'a>>) {
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

    /// The query's order, then the root row's primary key.
    pub fn cmp(&self, a: &Joined, b: &Joined) -> Ordering {
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

/// One page of a query's result: the joined rows, whether more follow, and the number of
/// matching rows (known anyway once every row was sorted; counted for a page in key order
/// only when the query asks for it with `returntotalrecordcount`).
pub struct Page<'a> {
    pub rows: Vec<Joined<'a>>,
    pub more: bool,
    pub total: Option<usize>,
}

/// Selects the page a query asks for. Without orders (and without `distinct`) rows come in
/// primary-key order and a paging cookie resumes by key range, so a page costs O(page);
/// otherwise every matching row is joined and sorted, and `distinct` compares the output
/// columns `cols`.
pub fn page<'a>(store: &'a Store, q: &'a Query, exec: &Exec<'a>, cols: &[OutCol]) -> Page<'a> {
    let ent = store.entity(q.slots[0].entity);
    let size = q.top.unwrap_or(q.count);
    let table: &BTreeMap<Guid, Row> = store.rows(q.slots[0].entity);
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
    if q.total_count && total.is_none() {
        let mut all = Vec::new();
        for r in table.values() {
            exec.expand(r, &mut all);
        }
        total = Some(all.len());
    }
    Page {
        rows: page,
        more,
        total,
    }
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

/// Runs an aggregate query: joins every row (at most [`MAX_AGGREGATE_ROWS`]), groups by the
/// `groupby` columns (strings case-insensitively), accumulates each aggregate column, puts
/// the groups in order (by group values, then by the orders' aliases) and keeps `top`.
pub fn aggregate(store: &Store, q: &Query, exec: &Exec) -> Result<Vec<Vec<Cell>>, DvError> {
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
    let kind_of = |c: &Column| q.kind(store, c);
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
    let mut rows: Vec<Vec<Cell>> = Vec::new();
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
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::super::plan::{compile, output_columns};
    use super::*;
    use crate::wire::Caller;

    fn query(rows: &fixture::Rows, inner: &str, fetch_attrs: &str) -> Query {
        let xml = format!("<fetch {fetch_attrs}><entity name='account'>{inner}</entity></fetch>");
        compile(&rows.store, rows.accounts, &xml, Caller::default()).unwrap()
    }

    /// The root ids of the page a query selects, whether more follow, and the total.
    fn ids_of(rows: &fixture::Rows, q: &Query) -> (Vec<Guid>, bool, Option<usize>) {
        let exec = Exec::new(&rows.store, q);
        let cols = output_columns(&rows.store, q);
        let page = page(&rows.store, q, &exec, &cols);
        let pk = rows.store.entity(rows.accounts).primary_id;
        let ids = page
            .rows
            .iter()
            .map(|j| match &j[0].unwrap().vals[pk] {
                Val::Guid(g) => *g,
                other => panic!("a primary key, not {other:?}"),
            })
            .collect();
        (ids, page.more, page.total)
    }

    #[test]
    fn like_patterns_match_percent_and_underscore() {
        assert!(like_match("contoso", "con%"));
        assert!(like_match("contoso", "%tos%"));
        assert!(like_match("contoso", "c_ntoso"));
        assert!(like_match("", "%"));
        assert!(!like_match("contoso", "con"));
        assert!(!like_match("contoso", "%x%"));
        assert!(like_match("a%b", "a%b"));
    }

    #[test]
    fn values_order_nulls_first_and_strings_without_case() {
        assert_eq!(order_vals(&Val::Null, &Val::Int(1)), Ordering::Less);
        assert_eq!(
            order_vals(&Val::str("adatum"), &Val::str("Contoso")),
            Ordering::Less
        );
        assert_eq!(cmp_vals(&Val::Int(2), &Val::Num(2.5)), Some(Ordering::Less));
        assert_eq!(cmp_vals(&Val::Int(2), &Val::str("2")), None);
    }

    #[test]
    fn without_orders_pages_follow_the_primary_key_and_resume_after_the_cookie() {
        let rows = fixture::rows();
        let (first, more, total) = ids_of(&rows, &query(&rows, "", "count='2'"));
        assert_eq!(first, [rows.contoso, rows.fabrikam]);
        assert!(more);
        assert_eq!(total, None);
        let cookie = format!(
            "<cookie page=\"1\"><accountid last=\"{}\" /></cookie>",
            rows.fabrikam.braced_upper()
        );
        let attrs = format!(
            "count='2' page='2' paging-cookie='{}'",
            quick_xml::escape::escape(cookie.as_str())
        );
        let (second, more, _) = ids_of(&rows, &query(&rows, "", &attrs));
        assert_eq!((second, more), (vec![rows.adatum], false));
        let (by_number, _, _) = ids_of(&rows, &query(&rows, "", "count='2' page='2'"));
        assert_eq!(by_number, [rows.adatum]);
    }

    #[test]
    fn orders_sort_every_matching_row_and_give_the_total() {
        let rows = fixture::rows();
        let q = query(
            &rows,
            "<order attribute='name'/>",
            "count='2' returntotalrecordcount='true'",
        );
        let (ids, more, total) = ids_of(&rows, &q);
        assert_eq!(ids, [rows.adatum, rows.contoso]);
        assert_eq!((more, total), (true, Some(3)));
        let top = query(
            &rows,
            "<order attribute='numberofemployees' descending='true'/>",
            "top='1'",
        );
        assert_eq!(ids_of(&rows, &top), (vec![rows.contoso], false, Some(3)));
    }

    #[test]
    fn conditions_filter_rows_and_nulls_fail_comparisons() {
        let rows = fixture::rows();
        let filtered = |c: &str| {
            let q = query(&rows, &format!("<filter>{c}</filter>"), "");
            ids_of(&rows, &q).0
        };
        assert_eq!(
            filtered("<condition attribute='numberofemployees' operator='lt' value='50'/>"),
            [rows.fabrikam]
        );
        assert_eq!(
            filtered("<condition attribute='numberofemployees' operator='null'/>"),
            [rows.adatum]
        );
        assert_eq!(
            filtered("<condition attribute='name' operator='like' value='%TOS%'/>"),
            [rows.contoso]
        );
        assert_eq!(
            filtered(
                "<condition attribute='industrycode' operator='eq' value='1'/>\
                 <condition attribute='name' operator='ne' value='Contoso'/>"
            ),
            [rows.adatum]
        );
    }

    #[test]
    fn inner_links_drop_rows_without_a_match_and_outer_links_keep_them() {
        let rows = fixture::rows();
        let link = |kind: &str| {
            format!(
                "<link-entity name='contact' from='contactid' to='primarycontactid' link-type='{kind}'/>"
            )
        };
        assert_eq!(
            ids_of(&rows, &query(&rows, &link("inner"), "")).0,
            [rows.contoso]
        );
        assert_eq!(ids_of(&rows, &query(&rows, &link("outer"), "")).0.len(), 3);
        let q = query(&rows, &link("inner"), "");
        let exec = Exec::new(&rows.store, &q);
        let mut joined = Vec::new();
        exec.expand(
            rows.store.get(rows.accounts, &rows.contoso).unwrap(),
            &mut joined,
        );
        let contact_pk = rows.store.entity(rows.contacts).primary_id;
        assert_eq!(
            joined[0][1].map(|r| r.vals[contact_pk].clone()),
            Some(Val::Guid(rows.ada))
        );
    }

    #[test]
    fn aggregates_group_accumulate_and_order_by_alias() {
        let rows = fixture::rows();
        let q = query(
            &rows,
            "<attribute name='industrycode' alias='industry' groupby='true'/>\
             <attribute name='accountid' alias='accounts' aggregate='count'/>\
             <attribute name='numberofemployees' alias='staff' aggregate='sum'/>\
             <attribute name='numberofemployees' alias='average' aggregate='avg'/>\
             <order alias='staff' descending='true'/>",
            "aggregate='true'",
        );
        let exec = Exec::new(&rows.store, &q);
        let result = aggregate(&rows.store, &q, &exec).unwrap();
        let values: Vec<Vec<(&str, Val)>> = result
            .iter()
            .map(|cells| {
                cells
                    .iter()
                    .map(|(a, _, v)| (a.as_str(), v.clone()))
                    .collect()
            })
            .collect();
        assert_eq!(
            values,
            [
                vec![
                    ("industry", Val::Int(1)),
                    ("accounts", Val::Int(2)),
                    ("staff", Val::Int(100)),
                    ("average", Val::Num(100.0)),
                ],
                vec![
                    ("industry", Val::Int(2)),
                    ("accounts", Val::Int(1)),
                    ("staff", Val::Int(20)),
                    ("average", Val::Num(20.0)),
                ],
            ]
        );
        // Counts and averages are written as plain numbers, group values with their column.
        assert!(result[0][0].1.is_some() && result[0][1].1.is_none());
    }
}
