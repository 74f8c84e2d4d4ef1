//! FetchXML, stage 4: results written as the Web API answers them: rows with their ETag and
//! the annotations the `Prefer` header asked for (formatted values, lookup logical names, the
//! attribute names of aliased and linked columns), the paging cookie, more-records and total
//! count annotations, and aggregate rows under their aliases.

use super::execute::{Cell, Joined, Page};
use super::plan::{OutCol, Query};
use crate::render::{self, FORMATTED, LOOKUP_LOGICAL};
use crate::schema::AttrKind;
use crate::store::{Store, Val};
use crate::wire::{Prefer, Req, Resp};

pub const PAGING_COOKIE: &str = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie";
pub const MORE_RECORDS: &str = "Microsoft.Dynamics.CRM.morerecords";
pub const ATTRIBUTE_NAME: &str = "OData.Community.Display.V1.AttributeName";

fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    render::write_str(out, k);
    out.push(b':');
}

/// The annotations the `Prefer` header asked for.
pub struct Wants {
    pub formatted: bool,
    pub lookup_logical: bool,
    pub attribute_name: bool,
}

impl Wants {
    pub fn from_prefer(prefer: &Prefer) -> Wants {
        Wants {
            formatted: prefer.wants(FORMATTED),
            lookup_logical: prefer.wants(LOOKUP_LOGICAL),
            attribute_name: prefer.wants(ATTRIBUTE_NAME),
        }
    }
}

/// One result row as a JSON object: its ETag, then each output column with the annotations
/// asked for (null cells left out).
pub fn write_joined(
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

/// A cell as a paging cookie writes it: GUIDs braced in upper case, XML-escaped.
pub fn cookie_text(v: &Val, kind: &AttrKind) -> String {
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

/// The answer to a page: `@odata.context` (with the root's named columns), `@odata.count`,
/// the total count annotations, the paging cookie and more-records annotations, the rows.
#[allow(clippy::too_many_arguments)]
pub fn page(
    store: &Store,
    req: &Req,
    q: &Query,
    cols: &[OutCol],
    page: &Page,
    w: &Wants,
    prefer: &Prefer,
    odata_count: bool,
) -> Resp {
    let ent = store.entity(q.slots[0].entity);
    let mut out = Vec::with_capacity(page.rows.len() * 400 + 512);
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
        out.extend_from_slice(format!(",\"@odata.count\":{}", page.rows.len()).as_bytes());
    }
    if q.total_count
        && let Some(n) = page.total
    {
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
    if page.more
        && !link_order
        && prefer.wants(PAGING_COOKIE)
        && let (Some(f), Some(l)) = (page.rows.first(), page.rows.last())
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
    if page.more && prefer.wants(MORE_RECORDS) {
        out.extend_from_slice(format!(",\"@{MORE_RECORDS}\":true").as_bytes());
    }
    out.extend_from_slice(b",\"value\":[");
    for (i, j) in page.rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_joined(&mut out, store, q, cols, w, j);
    }
    out.extend_from_slice(b"]}");
    let mut resp = Resp::json(200, out);
    if let Some(a) = &prefer.include_annotations {
        resp = resp.header(
            "Preference-Applied",
            format!("odata.include-annotations=\"{a}\""),
        );
    }
    resp
}
/// The answer to an aggregate query: one object per result row, each cell under its alias
/// (with its formatted value when asked for).
pub fn aggregate(
    store: &Store,
    req: &Req,
    q: &Query,
    rows: &[Vec<Cell>],
    w: &Wants,
    prefer: &Prefer,
) -> Resp {
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"@odata.context\":");
    render::write_str(
        &mut out,
        &format!(
            "{}/$metadata#{}",
            req.api,
            store.entity(q.slots[0].entity).entity_set_name
        ),
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
            let kind = ci.map(|ci| q.kind(store, &q.columns[ci]));
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
    resp
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::execute::{self, Exec};
    use super::super::fixture;
    use super::super::plan::{compile, output_columns};
    use super::*;
    use crate::guid::Guid;
    use crate::wire::Caller;

    fn query(rows: &fixture::Rows, inner: &str, fetch_attrs: &str) -> Query {
        let xml = format!("<fetch {fetch_attrs}><entity name='account'>{inner}</entity></fetch>");
        compile(&rows.store, rows.accounts, &xml, Caller::default()).unwrap()
    }

    fn prefer_all() -> Vec<(String, String)> {
        vec![(
            "Prefer".to_string(),
            "odata.include-annotations=\"*\"".to_string(),
        )]
    }

    /// The JSON answer to a query's first page.
    fn answer(rows: &fixture::Rows, q: &Query, headers: &[(String, String)]) -> (Value, Resp) {
        let req = Req::test("GET", "accounts", "", headers, b"");
        let prefer = req.prefer();
        let exec = Exec::new(&rows.store, q);
        let cols = output_columns(&rows.store, q);
        let selected = execute::page(&rows.store, q, &exec, &cols);
        let w = Wants::from_prefer(&prefer);
        let resp = page(&rows.store, &req, q, &cols, &selected, &w, &prefer, false);
        (serde_json::from_slice(&resp.body).unwrap(), resp)
    }

    #[test]
    fn cookie_values_are_braced_upper_case_guids_or_escaped_text() {
        let g = Guid::parse("0a1b2c3d-0000-0000-0000-00000000000f").unwrap();
        assert_eq!(
            cookie_text(&Val::Guid(g), &AttrKind::Uniqueidentifier),
            "{0A1B2C3D-0000-0000-0000-00000000000F}"
        );
        assert_eq!(
            cookie_text(&Val::str("A&B <C>"), &AttrKind::Memo { max_len: 10 }),
            "A&amp;B &lt;C&gt;"
        );
        assert_eq!(cookie_text(&Val::Null, &AttrKind::BigInt), "");
    }

    #[test]
    fn rows_carry_their_etag_columns_and_the_annotations_asked_for() {
        let rows = fixture::rows();
        let q = query(
            &rows,
            "<attribute name='name'/><attribute name='industrycode'/>\
             <attribute name='primarycontactid'/>\
             <link-entity name='contact' from='contactid' to='primarycontactid' alias='pc'>\
             <attribute name='fullname'/></link-entity>",
            "",
        );
        let (plain, _) = answer(&rows, &q, &[]);
        let contoso = &plain["value"][0];
        assert_eq!(contoso["name"], "Contoso");
        assert_eq!(contoso["pc.fullname"], "Ada Lovelace");
        assert_eq!(contoso["_primarycontactid_value"], rows.ada.to_string());
        assert!(contoso["@odata.etag"].as_str().unwrap().starts_with("W/\""));
        assert!(
            contoso
                .get("industrycode@OData.Community.Display.V1.FormattedValue")
                .is_none()
        );
        let (annotated, resp) = answer(&rows, &q, &prefer_all());
        let contoso = &annotated["value"][0];
        assert_eq!(
            contoso["industrycode@OData.Community.Display.V1.FormattedValue"],
            "Accounting"
        );
        assert_eq!(
            contoso["_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"],
            "contact"
        );
        assert_eq!(
            contoso["_primarycontactid_value@OData.Community.Display.V1.FormattedValue"],
            "Ada Lovelace"
        );
        assert_eq!(
            contoso["pc.fullname@OData.Community.Display.V1.AttributeName"],
            "fullname"
        );
        assert!(resp.headers.contains(&(
            "Preference-Applied".to_string(),
            "odata.include-annotations=\"*\"".to_string()
        )));
    }

    #[test]
    fn the_context_names_the_root_columns_asked_for() {
        let rows = fixture::rows();
        let api = "http://127.0.0.1/api/data/v9.2";
        let (named, _) = answer(&rows, &query(&rows, "<attribute name='name'/>", ""), &[]);
        assert_eq!(
            named["@odata.context"],
            format!("{api}/$metadata#accounts(name,accountid)")
        );
        let (all, _) = answer(&rows, &query(&rows, "", ""), &[]);
        assert_eq!(all["@odata.context"], format!("{api}/$metadata#accounts"));
    }

    #[test]
    fn a_page_with_more_rows_carries_a_cookie_and_more_records_when_asked() {
        let rows = fixture::rows();
        let q = query(
            &rows,
            "<attribute name='name'/>",
            "count='2' returntotalrecordcount='true'",
        );
        let (plain, _) = answer(&rows, &q, &[]);
        assert!(plain.get(format!("@{PAGING_COOKIE}").as_str()).is_none());
        let (body, _) = answer(&rows, &q, &prefer_all());
        assert_eq!(body[format!("@{MORE_RECORDS}").as_str()], true);
        assert_eq!(body["@Microsoft.Dynamics.CRM.totalrecordcount"], 3);
        assert_eq!(
            body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"],
            false
        );
        // The cookie a client sends back names the page's last row.
        let cookie = body[format!("@{PAGING_COOKIE}").as_str()].as_str().unwrap();
        let outer = super::super::parse::parse_xml(cookie).unwrap();
        assert_eq!(outer.attr("pagenumber"), Some("2"));
        let inner = outer.attr("pagingcookie").unwrap();
        assert_eq!(
            super::super::plan::cookie_last_key(inner, "accountid").unwrap(),
            Some(rows.fabrikam)
        );
    }

    #[test]
    fn aggregate_rows_are_written_under_their_aliases() {
        let rows = fixture::rows();
        let q = query(
            &rows,
            "<attribute name='industrycode' alias='industry' groupby='true'/>\
             <attribute name='numberofemployees' alias='staff' aggregate='max'/>",
            "aggregate='true'",
        );
        let exec = Exec::new(&rows.store, &q);
        let cells = execute::aggregate(&rows.store, &q, &exec).unwrap();
        let headers = prefer_all();
        let req = Req::test("GET", "accounts", "", &headers, b"");
        let prefer = req.prefer();
        let resp = aggregate(
            &rows.store,
            &req,
            &q,
            &cells,
            &Wants::from_prefer(&prefer),
            &prefer,
        );
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["value"][0]["industry"], 1);
        assert_eq!(
            body["value"][0]["industry@OData.Community.Display.V1.FormattedValue"],
            "Accounting"
        );
        assert_eq!(body["value"][0]["staff"], 100);
        assert_eq!(body["value"][1]["staff"], 20);
    }
}
