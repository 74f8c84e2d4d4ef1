//! The read side of the Web API's rows: the service document, `WhoAmI`, collections (filter,
//! order, select, expand, server paging with `$skiptoken`, counts and their annotations), one
//! row by key and the paths below it. The dispatcher (`routes.rs`) picks the handler; change
//! tracking (`delta.rs`) and FetchXML (`fetchxml.rs`) read collections of their own.

use std::ops::Bound;

use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::eval::{Filter, Order};
use crate::odata::path::Segment;
use crate::odata::query::QueryOptions;
use crate::paging;
use crate::render::{self, Annotations, Ctx, Selection};
use crate::row_key::resolve_existing;
use crate::schema::TableId;
use crate::store::{Row, Store, Val};
use crate::wire::{JSON, Req, Resp};

/// Where rows of a collection come from: a whole table, or the children of one row.
#[derive(Debug, Clone, Copy)]
pub struct Parent {
    pub col: usize,
    pub id: Guid,
    pub entity: TableId,
}

/// The service document: every entity set and the metadata collections.
pub fn service_document(store: &Store, req: &Req) -> Resp {
    let mut value: Vec<serde_json::Value> = store
        .schema
        .entities
        .iter()
        .map(|e| serde_json::json!({"name": e.entity_set_name, "kind": "EntitySet", "url": e.entity_set_name}))
        .collect();
    for name in ["EntityDefinitions", "RelationshipDefinitions"] {
        value.push(serde_json::json!({"name": name, "kind": "EntitySet", "url": name}));
    }
    value.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let body =
        serde_json::json!({"@odata.context": format!("{}/$metadata", req.api), "value": value});
    Resp::json(200, body.to_string().into_bytes())
}

/// `WhoAmI()`: the user the request runs as, their business unit and the organization.
pub fn whoami(store: &Store, req: &Req) -> Result<Resp, DvError> {
    let user = req.caller.user;
    let su = store
        .schema
        .entity("systemuser")
        .ok_or_else(|| DvError::internal("no systemuser table"))?;
    let e = store.entity(su);
    let bu = store
        .get(su, &user)
        .and_then(|r| e.attr("businessunitid").map(|c| &r.vals[c]))
        .and_then(|v| match v {
            Val::Ref(g, _) => Some(*g),
            _ => None,
        })
        .unwrap_or(req.caller.business_unit);
    let body = serde_json::json!({
        "@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", req.api),
        "BusinessUnitId": bu.to_string(),
        "UserId": user.to_string(),
        "OrganizationId": req.organization_id.to_string(),
    });
    Ok(Resp::json(200, body.to_string().into_bytes()))
}

/// A row addressed by key, and what lies below it: a property, its `$value`, a single-valued
/// navigation property (or its `$ref`), a collection-valued one (its rows, `$count`, `$ref`,
/// or one of its rows by key).
pub fn entity(
    store: &Store,
    req: &Req,
    e: TableId,
    raw_key: &str,
    rest: &[Segment],
    opts: &QueryOptions,
) -> Result<Resp, DvError> {
    let id = resolve_existing(store, e, raw_key)?;
    crate::elastic::check(store, e, id, raw_key, req.query)?;
    entity_read(store, req, e, id, rest, opts)
}

fn entity_read(
    store: &Store,
    req: &Req,
    e: TableId,
    id: Guid,
    rest: &[Segment],
    opts: &QueryOptions,
) -> Result<Resp, DvError> {
    // Many-to-many navigation properties are not read (many_to_many.rs).
    if let Some(s) = rest.first()
        && let Some(refusal) = crate::many_to_many::read_refusal(store, e, &s.name)
    {
        return Err(refusal);
    }
    let ent = store.entity(e);
    let row = store
        .get(e, &id)
        .ok_or_else(|| DvError::not_found(&ent.logical_name, &id))?;
    match rest {
        [] => {
            let prefer = req.prefer();
            if opts.expand.is_empty()
                && prefer.include_annotations.is_none()
                && req.header("if-none-match") == Some(&format!("W/\"{}\"", row.version))
            {
                return Ok(Resp {
                    status: 304,
                    content_type: Some(JSON),
                    ..Default::default()
                });
            }
            Ok(single_row(store, req, e, row, opts, 200)?)
        }
        [s] if s.key.is_none() && ent.attr_by_wire(&s.name).is_some() => {
            let col = ent
                .attr_by_wire(&s.name)
                .ok_or_else(|| DvError::segment_not_found(&s.name))?;
            let mut out = Vec::new();
            out.extend_from_slice(b"{\"@odata.context\":");
            render::write_str(
                &mut out,
                &format!(
                    "{}/$metadata#{}({id})/{}",
                    req.api, ent.entity_set_name, s.name
                ),
            );
            out.extend_from_slice(b",\"value\":");
            render::write_val(&mut out, &ent.attributes[col].kind, &row.vals[col]);
            out.push(b'}');
            Ok(Resp::json(200, out))
        }
        [s, v] if v.name == "$value" && ent.attr_by_wire(&s.name).is_some() => {
            let col = ent
                .attr_by_wire(&s.name)
                .ok_or_else(|| DvError::segment_not_found(&s.name))?;
            let mut out = Vec::new();
            render::write_val(&mut out, &ent.attributes[col].kind, &row.vals[col]);
            let text = String::from_utf8_lossy(&out).trim_matches('"').to_string();
            if row.vals[col].is_null() {
                return Ok(Resp::empty(204));
            }
            Ok(Resp::text(text))
        }
        [s, tail @ ..] if s.key.is_none() && store.schema.single_nav(e, &s.name).is_some() => {
            let rel = store
                .schema
                .single_nav(e, &s.name)
                .ok_or_else(|| DvError::segment_not_found(&s.name))?;
            let target = rel.referenced_entity;
            let child = match &row.vals[rel.referencing_attribute] {
                Val::Ref(g, t) if *t == target => store.get(target, g).map(|r| (*g, r)),
                _ => None,
            };
            match (tail, child) {
                ([], Some((_, r))) => single_row(store, req, target, r, opts, 200),
                ([], None) => Ok(Resp::empty(204)),
                ([t], Some((g, _))) if t.name == "$ref" => {
                    let body = serde_json::json!({
                        "@odata.context": format!("{}/$metadata#$ref", req.api),
                        "@odata.id": format!("{}/{}({g})", req.api, store.entity(target).entity_set_name),
                    });
                    Ok(Resp::json(200, body.to_string().into_bytes()))
                }
                ([t], None) if t.name == "$ref" => Ok(Resp::empty(204)),
                ([t, ..], _) => Err(DvError::segment_not_found(&t.name)),
            }
        }
        [s, tail @ ..] if store.schema.collection_nav(e, &s.name).is_some() => {
            let rel = store
                .schema
                .collection_nav(e, &s.name)
                .ok_or_else(|| DvError::segment_not_found(&s.name))?;
            let parent = Parent {
                col: rel.referencing_attribute,
                id,
                entity: e,
            };
            let child = rel.referencing_entity;
            match (&s.key, tail) {
                (None, []) => collection(store, req, child, opts, Some(parent)),
                (None, [t]) if t.name == "$count" => count(store, req, child, opts, Some(parent)),
                (None, [t]) if t.name == "$ref" => {
                    let mut refs = Vec::new();
                    for (cid, r) in store.rows(child) {
                        if matches!(&r.vals[parent.col], Val::Ref(g, pe) if *g == id && *pe == e) {
                            refs.push(serde_json::json!({"@odata.id": format!("{}/{}({cid})", req.api, store.entity(child).entity_set_name)}));
                        }
                    }
                    let body = serde_json::json!({"@odata.context": format!("{}/$metadata#Collection($ref)", req.api), "value": refs});
                    Ok(Resp::json(200, body.to_string().into_bytes()))
                }
                (Some(k), []) => {
                    let cid = resolve_existing(store, child, k)?;
                    let r = store.get(child, &cid).ok_or_else(|| {
                        DvError::not_found(&store.entity(child).logical_name, &cid)
                    })?;
                    if !matches!(&r.vals[parent.col], Val::Ref(g, _) if *g == id) {
                        return Err(DvError::not_found(&store.entity(child).logical_name, &cid));
                    }
                    single_row(store, req, child, r, opts, 200)
                }
                (_, [t, ..]) => Err(DvError::segment_not_found(&t.name)),
            }
        }
        [s, ..] => Err(DvError::segment_not_found(&s.name)),
    }
}

/// Renders one row as a single-entity response (`.../$entity`).
pub fn single_row(
    store: &Store,
    req: &Req,
    e: TableId,
    row: &Row,
    opts: &QueryOptions,
    status: u16,
) -> Result<Resp, DvError> {
    let prefer = req.prefer();
    let sel = Selection::compile(store, e, opts, req.caller)?;
    let ctx = Ctx {
        store,
        api: &req.api,
        ann: Annotations::from_prefer(&prefer),
        child_index: render::child_indexes(store, &sel, e),
    };
    let mut row_json = Vec::new();
    render::write_row(&mut row_json, &ctx, &sel, row, true);
    let mut out = Vec::with_capacity(row_json.len() + 128);
    out.extend_from_slice(b"{\"@odata.context\":");
    render::write_str(
        &mut out,
        &format!(
            "{}/$metadata#{}{}/$entity",
            req.api,
            store.entity(e).entity_set_name,
            sel.context_list(opts)
        ),
    );
    out.push(b',');
    out.extend_from_slice(&row_json[1..]);
    let mut resp = Resp::json(status, out).header("ETag", format!("W/\"{}\"", row.version));
    if let Some(a) = &prefer.include_annotations {
        resp = resp.header(
            "Preference-Applied",
            format!("odata.include-annotations=\"{a}\""),
        );
    }
    Ok(resp)
}

fn belongs(row: &Row, parent: &Option<Parent>) -> bool {
    match parent {
        None => true,
        Some(p) => {
            matches!(&row.vals[p.col], Val::Ref(g, e) if *g == p.id && *e == p.entity)
        }
    }
}

/// `/$count`: the number of matching rows, as text, stopped at the count limit.
pub fn count(
    store: &Store,
    req: &Req,
    e: TableId,
    opts: &QueryOptions,
    parent: Option<Parent>,
) -> Result<Resp, DvError> {
    let n = count_rows(store, req, e, opts, parent)?;
    Ok(Resp::text(n.min(req.limits.count_limit).to_string()))
}

fn count_rows(
    store: &Store,
    req: &Req,
    e: TableId,
    opts: &QueryOptions,
    parent: Option<Parent>,
) -> Result<usize, DvError> {
    let filter = match &opts.filter {
        Some(f) => Some(Filter::compile(store, e, f, req.caller)?),
        None => None,
    };
    Ok(store
        .rows(e)
        .values()
        .filter(|r| belongs(r, &parent) && filter.as_ref().is_none_or(|f| f.matches(store, r)))
        .count())
}

/// Serves a collection page.
pub fn collection(
    store: &Store,
    req: &Req,
    e: TableId,
    opts: &QueryOptions,
    parent: Option<Parent>,
) -> Result<Resp, DvError> {
    let prefer = req.prefer();
    let ent = store.entity(e);
    let filter = match &opts.filter {
        Some(f) => Some(Filter::compile(store, e, f, req.caller)?),
        None => None,
    };
    let order = Order::compile(store, e, &opts.orderby)?;
    let sel = Selection::compile(store, e, opts, req.caller)?;
    let max = req.limits.max_page_size.max(1);
    let pref_size = prefer.max_page_size.map(|n| n.clamp(1, max));
    let page_size = pref_size.unwrap_or(max);
    // $top is ignored when odata.maxpagesize is also sent (the 2024 documented behaviour).
    let top = if pref_size.is_none() { opts.top } else { None };
    let want = top.map_or(page_size, |t| t.min(page_size));
    let cookie = match &opts.skiptoken {
        Some(t) => Some(paging::parse(t).ok_or_else(|| {
            DvError::bad_request(format!("The skiptoken value '{t}' is not valid."))
        })?),
        None => None,
    };
    // `?partitionId=` reads one partition of an elastic table (elastic.rs).
    let partition = crate::elastic::requested(ent, req.query);
    let matches = |r: &Row| {
        belongs(r, &parent)
            && filter.as_ref().is_none_or(|f| f.matches(store, r))
            && partition
                .as_deref()
                .is_none_or(|p| crate::elastic::holds(ent, r, p))
    };
    let table = store.rows(e);
    let mut total: Option<usize> = None;
    let page: Vec<(&Guid, &Row)>;
    let more: bool;
    if order.is_empty() {
        let start = match cookie.as_ref().and_then(|c| c.last) {
            Some(last) => Bound::Excluded(last),
            None => Bound::Unbounded,
        };
        let mut rows: Vec<(&Guid, &Row)> = table
            .range((start, Bound::Unbounded))
            .filter(|(_, r)| matches(r))
            .take(want + 1)
            .collect();
        more = rows.len() > want;
        rows.truncate(want);
        page = rows;
    } else {
        let mut all: Vec<(&Guid, &Row)> = table.iter().filter(|(_, r)| matches(r)).collect();
        total = Some(all.len());
        let cmp =
            |a: &(&Guid, &Row), b: &(&Guid, &Row)| order.cmp(store, a.1, b.1).then(a.0.cmp(b.0));
        // Only this page is put in order, not the whole table: the rows after the cookie's last
        // row (or from its page number on) are cut to the first `want` by selection, then
        // sorted. The order is total (the ID breaks ties), so the page is what a full sort
        // gives.
        let last = cookie
            .as_ref()
            .and_then(|c| c.last)
            .and_then(|l| all.iter().position(|(g, _)| **g == l));
        let start = match (last, &cookie) {
            (Some(position), _) => {
                let pivot = all[position];
                all.retain(|row| cmp(row, &pivot) == std::cmp::Ordering::Greater);
                0
            }
            (None, Some(c)) => c.page_number.saturating_sub(1).saturating_mul(page_size),
            (None, None) => 0,
        };
        let end = start.saturating_add(want).min(all.len());
        more = all.len() > end;
        if end < all.len() {
            all.select_nth_unstable_by(end, cmp);
            all.truncate(end);
        }
        all.sort_unstable_by(cmp);
        page = all
            .get(start.min(all.len())..end)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
    }
    let more = more && top.is_none_or(|t| t > page_size);
    if opts.count && total.is_none() {
        total = Some(table.values().filter(|r| matches(r)).count());
    }
    let ann = Annotations::from_prefer(&prefer);
    let ctx = Ctx {
        store,
        api: &req.api,
        ann,
        child_index: render::child_indexes(store, &sel, e),
    };
    let mut out = Vec::with_capacity(page.len() * 600 + 256);
    out.extend_from_slice(b"{\"@odata.context\":");
    render::write_str(
        &mut out,
        &format!(
            "{}/$metadata#{}{}",
            req.api,
            ent.entity_set_name,
            sel.context_list(opts)
        ),
    );
    let limit = req.limits.count_limit;
    if opts.count {
        let n = total.unwrap_or(0);
        out.extend_from_slice(format!(",\"@odata.count\":{}", n.min(limit)).as_bytes());
    }
    if prefer.wants("Microsoft.Dynamics.CRM.totalrecordcount") {
        let n = if opts.count {
            total.unwrap_or(0).min(limit) as i64
        } else {
            -1
        };
        out.extend_from_slice(
            format!(",\"@Microsoft.Dynamics.CRM.totalrecordcount\":{n}").as_bytes(),
        );
    }
    if prefer.wants("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded") {
        let exceeded = opts.count && total.unwrap_or(0) > limit;
        out.extend_from_slice(
            format!(",\"@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded\":{exceeded}")
                .as_bytes(),
        );
    }
    out.extend_from_slice(b",\"value\":[");
    for (i, (_, r)) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        render::write_row(&mut out, &ctx, &sel, r, true);
    }
    out.push(b']');
    if more && let (Some((first, _)), Some((last, _))) = (page.first(), page.last()) {
        let next_page = cookie.as_ref().map_or(2, |c| c.page_number + 1);
        let token = paging::skiptoken(next_page, ent.primary_id_name(), first, last);
        let kept: Vec<&str> = req
            .query
            .split('&')
            .filter(|p| {
                let k = p.split('=').next().unwrap_or("");
                !p.is_empty() && k != "$skiptoken" && k != "%24skiptoken"
            })
            .collect();
        let mut link = format!("{}/{}?", req.api, req.path.trim_start_matches('/'));
        for p in kept {
            link.push_str(p);
            link.push('&');
        }
        link.push_str("$skiptoken=");
        link.push_str(&token);
        out.extend_from_slice(b",\"@odata.nextLink\":");
        render::write_str(&mut out, &link);
    }
    out.push(b'}');
    let mut resp = Resp::json(200, out);
    let mut applied = Vec::new();
    if let Some(n) = pref_size {
        applied.push(format!("odata.maxpagesize={n}"));
    }
    if let Some(a) = &prefer.include_annotations {
        applied.push(format!("odata.include-annotations=\"{a}\""));
    }
    if !applied.is_empty() {
        resp = resp.header("Preference-Applied", applied.join(","));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::*;

    fn seeded(rows: usize) -> (Store, TableId) {
        let mut store = Store::new(Arc::new(crate::catalog::schema()));
        crate::seed::seed(&mut store, rows, &[], "client");
        let accounts = store.schema.entity("account").unwrap();
        (store, accounts)
    }

    fn json(resp: &Resp) -> Value {
        serde_json::from_slice(&resp.body).unwrap()
    }

    #[test]
    fn the_service_document_lists_every_entity_set_in_name_order() {
        let (store, _) = seeded(0);
        let req = Req::test("GET", "", "", &[], b"");
        let body = json(&service_document(&store, &req));
        let names: Vec<&str> = body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"accounts") && names.contains(&"EntityDefinitions"));
        assert!(names.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(body["@odata.context"], format!("{}/$metadata", req.api));
    }

    /// Pages of `accounts?{query}` at two rows a page: the row count of each page, and the
    /// query of its next link.
    fn page(store: &Store, accounts: TableId, query: &str) -> (usize, Option<String>) {
        let mut req = Req::test("GET", "accounts", query, &[], b"");
        req.limits.max_page_size = 2;
        let opts = QueryOptions::parse(query).unwrap();
        let body = json(&collection(store, &req, accounts, &opts, None).unwrap());
        let rows = body["value"].as_array().unwrap().len();
        let next = body["@odata.nextLink"].as_str().map(|link| {
            assert!(
                link.starts_with(&format!("{}/accounts?", req.api)),
                "{link}"
            );
            link.split_once('?').unwrap().1.to_string()
        });
        (rows, next)
    }

    #[test]
    fn server_paging_visits_every_row_once_following_next_links() {
        let (store, accounts) = seeded(5);
        let (rows, mut next) = page(&store, accounts, "$select=name");
        assert_eq!(rows, 2);
        let first_next = next.clone().unwrap();
        assert!(
            first_next.starts_with("$select=name&$skiptoken="),
            "{first_next}"
        );
        let mut seen = rows;
        while let Some(query) = next {
            let (rows, following) = page(&store, accounts, &query);
            seen += rows;
            next = following;
        }
        assert_eq!(seen, store.rows(accounts).len());
    }

    #[test]
    fn top_below_the_page_size_has_no_next_link() {
        let (store, accounts) = seeded(5);
        let req = Req::test("GET", "accounts", "$top=3", &[], b"");
        let opts = QueryOptions::parse(req.query).unwrap();
        let body = json(&collection(&store, &req, accounts, &opts, None).unwrap());
        assert_eq!(body["value"].as_array().unwrap().len(), 3);
        assert!(body.get("@odata.nextLink").is_none());
    }

    #[test]
    fn counts_stop_at_the_count_limit() {
        let (store, accounts) = seeded(5);
        let mut req = Req::test("GET", "accounts/$count", "", &[], b"");
        let opts = QueryOptions::default();
        let all = count(&store, &req, accounts, &opts, None).unwrap();
        assert_eq!(all.body, store.rows(accounts).len().to_string().as_bytes());
        req.limits.count_limit = 2;
        assert_eq!(
            count(&store, &req, accounts, &opts, None).unwrap().body,
            b"2"
        );
    }

    #[test]
    fn a_row_not_changed_since_its_etag_answers_304() {
        let (store, accounts) = seeded(1);
        let (id, row) = store.rows(accounts).iter().next().unwrap();
        let etag = format!("W/\"{}\"", row.version);
        let headers = vec![("If-None-Match".to_string(), etag.clone())];
        let req = Req::test("GET", "accounts", "", &headers, b"");
        let opts = QueryOptions::default();
        let key = id.to_string();
        let unchanged = entity(&store, &req, accounts, &key, &[], &opts).unwrap();
        assert_eq!(unchanged.status, 304);
        let req = Req::test("GET", "accounts", "", &[], b"");
        let fresh = entity(&store, &req, accounts, &key, &[], &opts).unwrap();
        assert_eq!(fresh.status, 200);
        assert!(fresh.headers.contains(&("ETag".to_string(), etag)));
    }

    #[test]
    fn a_null_property_value_answers_204_and_a_set_one_its_text() {
        let (store, accounts) = seeded(1);
        let (id, row) = store.rows(accounts).iter().next().unwrap();
        let ent = store.entity(accounts);
        let name = match &row.vals[ent.attr("name").unwrap()] {
            Val::Str(s) => s.to_string(),
            other => panic!("a seeded name, not {other:?}"),
        };
        let null = ent
            .attributes
            .iter()
            .zip(&row.vals)
            .find(|(a, v)| v.is_null() && !a.kind.is_lookup())
            .map(|(a, _)| a.logical_name.clone())
            .unwrap();
        let req = Req::test("GET", "accounts", "", &[], b"");
        let opts = QueryOptions::default();
        let path = |p: &str| crate::odata::path::segments(p).unwrap();
        let key = id.to_string();
        let text = entity(&store, &req, accounts, &key, &path("name/$value"), &opts).unwrap();
        assert_eq!((text.status, text.body), (200, name.into_bytes()));
        let empty = entity(
            &store,
            &req,
            accounts,
            &key,
            &path(&format!("{null}/$value")),
            &opts,
        );
        assert_eq!(empty.unwrap().status, 204, "{null}");
    }
}
