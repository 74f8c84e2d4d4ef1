//! FetchXML over the Web API: `GET <entityset>?fetchXml=<url-encoded xml>`, in four stages,
//! each unit-tested without HTTP:
//!
//! - `parse`: the XML text into a small element tree (quick-xml);
//! - `plan`: the tree compiled against the schema into a query (unknown tables, columns and
//!   operators are 400s), and the output columns of a page;
//! - `execute`: the query run over the in-memory rows: joins, conditions, order, the page
//!   (without `order` elements rows come in primary-key order and a paging cookie resumes by
//!   key range, so following cookies costs O(page) per page) and aggregates;
//! - `render`: rows, annotations, paging cookies and aggregates written as JSON.

mod execute;
mod parse;
mod plan;
mod render;

use crate::error::{DvError, INVALID_ARGUMENT};
use crate::schema::TableId;
use crate::store::Store;
use crate::wire::{Req, Resp};

fn invalid(message: impl Into<String>) -> DvError {
    DvError::new(400, INVALID_ARGUMENT, message)
}

/// Serves `GET <set>?fetchXml=...`.
pub fn handle(
    store: &Store,
    req: &Req,
    e: TableId,
    xml: &str,
    odata_count: bool,
) -> Result<Resp, DvError> {
    let q = plan::compile(store, e, xml, req.caller)?;
    let prefer = req.prefer();
    let wants = render::Wants::from_prefer(&prefer);
    let exec = execute::Exec::new(store, &q);
    if q.aggregate {
        let rows = execute::aggregate(store, &q, &exec)?;
        return Ok(render::aggregate(store, req, &q, &rows, &wants, &prefer));
    }
    let cols = plan::output_columns(store, &q);
    let page = execute::page(store, &q, &exec, &cols);
    Ok(render::page(
        store,
        req,
        &q,
        &cols,
        &page,
        &wants,
        &prefer,
        odata_count,
    ))
}

/// Rows the stage tests share: the catalogue's tables, filled through the store.
#[cfg(test)]
mod fixture {
    use std::sync::Arc;

    use crate::guid::Guid;
    use crate::schema::TableId;
    use crate::store::{Store, Val};

    pub struct Rows {
        pub store: Store,
        pub accounts: TableId,
        pub contacts: TableId,
        /// Account ids in primary-key order: Contoso, Fabrikam, Adatum.
        pub contoso: Guid,
        pub fabrikam: Guid,
        pub adatum: Guid,
        /// Contoso's primary contact.
        pub ada: Guid,
    }

    pub fn id(n: u8) -> Guid {
        Guid::parse(&format!("00000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
    }

    pub fn insert(store: &mut Store, e: TableId, id: Guid, cells: &[(&str, Val)]) {
        let ent = store.entity(e);
        let mut vals = store.blank_row(e);
        vals[ent.primary_id] = Val::Guid(id);
        for (name, v) in cells {
            vals[ent.attr(name).unwrap()] = v.clone();
        }
        store.insert(e, vals, false).unwrap();
    }

    /// Three accounts (Contoso: 100 employees, industry 1, a primary contact; Fabrikam: 20,
    /// industry 2; Adatum: no employee count, industry 1) and one contact, Ada.
    pub fn rows() -> Rows {
        let mut store = Store::new(Arc::new(crate::catalog::schema()));
        let accounts = store.schema.entity("account").unwrap();
        let contacts = store.schema.entity("contact").unwrap();
        let (contoso, fabrikam, adatum, ada) = (id(1), id(2), id(3), id(0x10));
        insert(
            &mut store,
            contacts,
            ada,
            &[("fullname", Val::str("Ada Lovelace"))],
        );
        insert(
            &mut store,
            accounts,
            contoso,
            &[
                ("name", Val::str("Contoso")),
                ("numberofemployees", Val::Int(100)),
                ("industrycode", Val::Int(1)),
                ("primarycontactid", Val::Ref(ada, contacts)),
            ],
        );
        insert(
            &mut store,
            accounts,
            fabrikam,
            &[
                ("name", Val::str("Fabrikam")),
                ("numberofemployees", Val::Int(20)),
                ("industrycode", Val::Int(2)),
            ],
        );
        insert(
            &mut store,
            accounts,
            adatum,
            &[("name", Val::str("adatum")), ("industrycode", Val::Int(1))],
        );
        Rows {
            store,
            accounts,
            contacts,
            contoso,
            fabrikam,
            adatum,
            ada,
        }
    }
}
