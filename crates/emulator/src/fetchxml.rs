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
