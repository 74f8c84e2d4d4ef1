//! Change tracking (delta queries), as
//! learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems
//! describes it for the Web API (section 11 of the protocol notes has the exact requests and
//! answers):
//!
//! - `Prefer: odata.track-changes` on a collection answers its rows with
//!   `Preference-Applied: odata.track-changes` and an `@odata.deltaLink` (before `value`).
//!   Following the link (no `Prefer` needed) lists what changed since: new or updated rows
//!   first, by version, then deleted rows as
//!   `{"@odata.context":"…/$metadata#<set>/$deletedEntity","id":"…","reason":"deleted"}`; the
//!   context ends in `/$delta` and a new delta link comes with it.
//! - A row created and then deleted between two syncs is reported deleted ("they'll get the
//!   deleted item even if they didn't have the item to begin with", same page).
//! - Both the first read and the delta reads are paged like any collection: the default page
//!   size (5000, `Config::max_page_size`) and `Prefer: odata.maxpagesize=N` apply ("If the new
//!   or updated item collection is greater than 5000, the user can page through the
//!   collection"); every page but the last has an `@odata.nextLink`, only the last one the
//!   `@odata.deltaLink`. The nextLink's `$skiptoken` says `istracking="True"` and carries the
//!   delta token the read will end with, so the read keeps tracking even if the client does not
//!   send the `Prefer` header again (see `paging::tracking_skiptoken`). Changes made while a
//!   read is paged come with the next delta.
//! - A delta token is valid for 7 days by default ("Changes are returned if the last token is
//!   within a default value of 7 days", Organization.ExpireChangeTrackingInDays;
//!   `Config::delta_token_lifetime` here). An older one answers 400 with `ExpiredVersionStamp`
//!   (0x80044352), "Version stamp associated with the client has expired. Please perform a full
//!   sync.": the code Dataverse documents for an expired version stamp
//!   (learn.microsoft.com/power-apps/developer/data-platform/cache-schema-data, "Manage expired
//!   cache": "Dataverse will return an ExpiredVersionStamp error (0x80044352)"), with the message
//!   that RetrieveEntityChanges clients catch; the status follows the notes' rule that codes
//!   outside the status map answer 400 (section 6.2).
//! - `$count` with a delta token counts the changes, not the table ("Retrieve count of the
//!   changes made in tables using Web API": `GET accounts/$count?$deltatoken=…`); `$count=true`
//!   on a delta read gives the same number as `@odata.count`.
//! - Tables have change tracking or not (`ChangeTrackingEnabled`, see `catalog.rs`); asking a
//!   table without it answers 400 "Change tracking is not enabled for the entity '`<name>`'…"
//!   (the notes' third-party capture; the code there is the OData error 0x80060888).
//! - `$filter`, `$orderby`, `$expand` and `$top` are refused with the documented message.
//!
//! The token is `<version>!<MM/dd/yyyy HH:mm:ss>` (UTC, when it was issued), URL-encoded as the
//! documented example shows. It is built on the store's change log.

use std::collections::HashMap;
use std::ops::Bound;

use crate::datetime;
use crate::error::{self, DvError, EXPIRED_VERSION_STAMP};
use crate::guid::Guid;
use crate::odata::query::QueryOptions;
use crate::paging;
use crate::render::{self, Annotations, Ctx, Selection};
use crate::schema::TableId;
use crate::store::{ChangeKind, Row, Store};
use crate::wire::{Req, Resp};

/// A delta token: the last row version a client has seen, and when the token was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    version: u64,
    issued: i64,
}

impl Token {
    fn now(store: &Store) -> Token {
        Token {
            version: store.version(),
            issued: (store.clock)(),
        }
    }

    /// `919042!08/22/2017 08:10:44`, as in the documented example (before URL encoding).
    fn text(&self) -> String {
        let (y, m, d) = datetime::civil_from_days(self.issued.div_euclid(86_400));
        let rem = self.issued.rem_euclid(86_400);
        format!(
            "{}!{m:02}/{d:02}/{y:04} {:02}:{:02}:{:02}",
            self.version,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    /// Reads [`Token::text`] back (already URL-decoded).
    fn parse(text: &str) -> Option<Token> {
        let (version, when) = text.trim().split_once('!')?;
        let version = version.trim().parse().ok()?;
        let (date, time) = when.trim().split_once(' ')?;
        let mut parts = date.split('/');
        let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let issued = datetime::parse_iso(&format!("{y}-{m}-{d}T{}Z", time.trim()))?;
        Some(Token { version, issued })
    }

    /// The token as it goes into a URL: everything but letters and digits percent-encoded.
    fn encoded(&self) -> String {
        let mut out = String::new();
        for b in self.text().bytes() {
            if b.is_ascii_alphanumeric() {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02x}"));
            }
        }
        out
    }
}

/// Whether a collection read is a change-tracking read: it asks for tracking, follows a delta
/// link, or follows the nextLink of a tracked page.
pub fn is_tracked(req: &Req, opts: &QueryOptions) -> bool {
    opts.deltatoken.is_some()
        || req.prefer().track_changes
        || opts
            .skiptoken
            .as_deref()
            .and_then(paging::parse)
            .is_some_and(|c| c.tracking)
}

fn enabled(store: &Store, e: TableId) -> Result<(), DvError> {
    let ent = store.entity(e);
    if ent.change_tracking {
        return Ok(());
    }
    Err(DvError::new(
        400,
        error::ODATA_ERROR,
        format!(
            "Change tracking is not enabled for the entity '{}'. Enable change tracking for the entity to use the odata.track-changes preference.",
            ent.logical_name
        ),
    ))
}

fn unsupported(opts: &QueryOptions) -> Option<DvError> {
    let name = if opts.filter.is_some() {
        "$filter"
    } else if !opts.orderby.is_empty() {
        "$orderby"
    } else if !opts.expand.is_empty() {
        "$expand"
    } else if opts.top.is_some() {
        "$top"
    } else {
        return None;
    };
    Some(DvError::bad_request(format!(
        "The \"{name}\" query parameter isn't supported when Change Tracking is enabled."
    )))
}

fn expired() -> DvError {
    DvError::new(
        400,
        EXPIRED_VERSION_STAMP,
        "Version stamp associated with the client has expired. Please perform a full sync.",
    )
}

/// Reads a `$deltatoken` and checks that it is still valid.
fn check(store: &Store, raw: &str) -> Result<Token, DvError> {
    let token = Token::parse(raw)
        .ok_or_else(|| DvError::bad_request(format!("The delta token '{raw}' is not valid.")))?;
    let age = (store.clock)().saturating_sub(token.issued);
    if token.version < store.delta_floor
        || token.version > store.version()
        || age > store.delta_token_lifetime
    {
        return Err(expired());
    }
    Ok(token)
}

/// One entry of a delta answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Changed(Guid),
    Deleted(Guid),
}

impl Entry {
    fn id(&self) -> Guid {
        match self {
            Entry::Changed(id) | Entry::Deleted(id) => *id,
        }
    }
}

/// What changed in table `e` after version `from`, up to and including `to`, in the documented
/// order: new or updated rows by version, then deleted rows by version. Each row once, as its
/// last change in the window left it: a row created and deleted in the window is deleted.
/// Only the log decides, so the list of a window never changes and pages of it stay stable.
fn changes(store: &Store, e: TableId, from: u64, to: u64) -> Vec<Entry> {
    let start = store.changes.partition_point(|c| c.version <= from);
    let mut last: HashMap<Guid, (ChangeKind, u64)> = HashMap::new();
    for c in store.changes[start..]
        .iter()
        .take_while(|c| c.version <= to)
        .filter(|c| c.entity == e)
    {
        last.insert(c.id, (c.kind, c.version));
    }
    let mut changed: Vec<(u64, Guid)> = Vec::new();
    let mut deleted: Vec<(u64, Guid)> = Vec::new();
    for (id, (kind, version)) in last {
        match kind {
            ChangeKind::Delete => deleted.push((version, id)),
            ChangeKind::Create | ChangeKind::Update => changed.push((version, id)),
        }
    }
    changed.sort_unstable();
    deleted.sort_unstable();
    changed
        .into_iter()
        .map(|(_, id)| Entry::Changed(id))
        .chain(deleted.into_iter().map(|(_, id)| Entry::Deleted(id)))
        .collect()
}

/// `{api}/{path}?{the request's query without paging and delta tokens}` plus the given ones.
fn link(req: &Req, deltatoken: Option<&Token>, skiptoken: Option<&str>) -> String {
    let mut link = format!("{}/{}?", req.api, req.path.trim_start_matches('/'));
    for p in req.query.split('&').filter(|p| !p.is_empty()) {
        let k = p.split('=').next().unwrap_or("").to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "$deltatoken" | "%24deltatoken" | "$skiptoken" | "%24skiptoken"
        ) {
            continue;
        }
        link.push_str(p);
        link.push('&');
    }
    if let Some(t) = deltatoken {
        link.push_str("$deltatoken=");
        link.push_str(&t.encoded());
        link.push('&');
    }
    if let Some(s) = skiptoken {
        link.push_str("$skiptoken=");
        link.push_str(s);
    }
    link.trim_end_matches(['&', '?']).to_string()
}

/// Serves a tracked read: the first read of a table (and its later pages) or a delta link
/// (and its later pages).
pub fn handle(store: &Store, req: &Req, e: TableId, opts: &QueryOptions) -> Result<Resp, DvError> {
    enabled(store, e)?;
    if let Some(err) = unsupported(opts) {
        return Err(err);
    }
    let prefer = req.prefer();
    let max = req.limits.max_page_size.max(1);
    let pref_size = prefer.max_page_size.map(|n| n.clamp(1, max));
    let size = pref_size.unwrap_or(max);
    let cookie = match &opts.skiptoken {
        Some(t) => Some(paging::parse(t).ok_or_else(|| {
            DvError::bad_request(format!("The skiptoken value '{t}' is not valid."))
        })?),
        None => None,
    };
    let from = match &opts.deltatoken {
        Some(raw) => Some(check(store, raw)?),
        None => None,
    };
    // The token this read ends with is fixed by its first page.
    let end = match cookie.as_ref().and_then(|c| c.snapshot.as_deref()) {
        Some(s) => Token::parse(s)
            .filter(|t| t.version <= store.version() && from.is_none_or(|f| f.version <= t.version))
            .ok_or_else(|| DvError::bad_request("The skiptoken value is not valid."))?,
        None => Token::now(store),
    };
    let ent = store.entity(e);
    let sel = Selection::compile(store, e, opts, req.caller)?;
    let ctx = Ctx {
        store,
        api: &req.api,
        ann: Annotations::from_prefer(&prefer),
        child_index: render::child_indexes(store, &sel, e),
    };
    let after = cookie.as_ref().and_then(|c| c.last);
    let mut value = Vec::new();
    let (count, more, bounds) = match from {
        None => {
            let table = store.rows(e);
            let start = after.map_or(Bound::Unbounded, Bound::Excluded);
            let mut rows: Vec<(&Guid, &Row)> = table
                .range((start, Bound::Unbounded))
                .take(size + 1)
                .collect();
            let more = rows.len() > size;
            rows.truncate(size);
            for (i, (_, row)) in rows.iter().enumerate() {
                if i > 0 {
                    value.push(b',');
                }
                render::write_row(&mut value, &ctx, &sel, row, true);
            }
            let bounds = rows.first().zip(rows.last()).map(|(f, l)| (*f.0, *l.0));
            (opts.count.then_some(table.len()), more, bounds)
        }
        Some(from) => {
            let entries = changes(store, e, from.version, end.version);
            let start = match (after, &cookie) {
                (Some(id), _) => match entries.iter().position(|x| x.id() == id) {
                    Some(p) => p + 1,
                    None => return Err(DvError::bad_request("The skiptoken value is not valid.")),
                },
                (None, Some(c)) => c.page_number.saturating_sub(1).saturating_mul(size),
                (None, None) => 0,
            };
            let start = start.min(entries.len());
            let stop = start.saturating_add(size).min(entries.len());
            let page = &entries[start..stop];
            let deleted_context = format!(
                "{}/$metadata#{}/$deletedEntity",
                req.api, ent.entity_set_name
            );
            let mut first = true;
            for entry in page {
                let mark = value.len();
                if !first {
                    value.push(b',');
                }
                match entry {
                    Entry::Changed(id) => match store.get(e, id) {
                        Some(row) => render::write_row(&mut value, &ctx, &sel, row, true),
                        // Deleted after this read began: the next delta reports it.
                        None => {
                            value.truncate(mark);
                            continue;
                        }
                    },
                    Entry::Deleted(id) => {
                        value.extend_from_slice(b"{\"@odata.context\":");
                        render::write_str(&mut value, &deleted_context);
                        value.extend_from_slice(b",\"id\":");
                        render::write_str(&mut value, &id.to_string());
                        value.extend_from_slice(b",\"reason\":\"deleted\"}");
                    }
                }
                first = false;
            }
            let bounds = page.first().zip(page.last()).map(|(f, l)| (f.id(), l.id()));
            (
                opts.count.then_some(entries.len()),
                stop < entries.len(),
                bounds,
            )
        }
    };

    let mut out = Vec::with_capacity(value.len() + 512);
    out.extend_from_slice(b"{\"@odata.context\":");
    render::write_str(
        &mut out,
        &format!(
            "{}/$metadata#{}{}{}",
            req.api,
            ent.entity_set_name,
            sel.context_list(opts),
            if from.is_some() { "/$delta" } else { "" }
        ),
    );
    if let Some(n) = count {
        let n = n.min(req.limits.count_limit);
        out.extend_from_slice(format!(",\"@odata.count\":{n}").as_bytes());
    }
    let next = match bounds {
        Some((first, last)) if more => {
            let next_page = cookie.as_ref().map_or(2, |c| c.page_number + 1);
            let token = paging::tracking_skiptoken(
                next_page,
                ent.primary_id_name(),
                &first,
                &last,
                &end.text(),
            );
            Some(link(req, from.as_ref(), Some(&token)))
        }
        _ => None,
    };
    if next.is_none() {
        out.extend_from_slice(b",\"@odata.deltaLink\":");
        render::write_str(&mut out, &link(req, Some(&end), None));
    }
    out.extend_from_slice(b",\"value\":[");
    out.extend_from_slice(&value);
    out.push(b']');
    if let Some(next) = next {
        out.extend_from_slice(b",\"@odata.nextLink\":");
        render::write_str(&mut out, &next);
    }
    out.push(b'}');

    let mut applied = Vec::new();
    if prefer.track_changes {
        applied.push("odata.track-changes".to_string());
    }
    if let Some(n) = pref_size {
        applied.push(format!("odata.maxpagesize={n}"));
    }
    if let Some(a) = &prefer.include_annotations {
        applied.push(format!("odata.include-annotations=\"{a}\""));
    }
    let resp = Resp::json(200, out);
    Ok(if applied.is_empty() {
        resp
    } else {
        resp.header("Preference-Applied", applied.join(","))
    })
}

/// `GET <set>/$count?$deltatoken=…`: the number of changes since the token, as plain text.
pub fn count(store: &Store, req: &Req, e: TableId, opts: &QueryOptions) -> Result<Resp, DvError> {
    enabled(store, e)?;
    if let Some(err) = unsupported(opts) {
        return Err(err);
    }
    let raw = opts.deltatoken.as_deref().unwrap_or_default();
    let from = check(store, raw)?;
    let n = changes(store, e, from.version, store.version()).len();
    Ok(Resp::text(n.min(req.limits.count_limit).to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::store::Val;

    fn accounts() -> (Store, TableId) {
        let store = Store::new(Arc::new(crate::catalog::schema()));
        let e = store.schema.entity("account").unwrap();
        (store, e)
    }

    fn add(store: &mut Store, e: TableId) -> Guid {
        let id = store.new_id(e);
        let mut vals = store.blank_row(e);
        vals[store.entity(e).primary_id] = Val::Guid(id);
        store.insert(e, vals, true).unwrap()
    }

    fn rename(store: &mut Store, e: TableId, id: Guid, name: &str) {
        let col = store.entity(e).attr("name").unwrap();
        store.update(e, id, vec![(col, Val::str(name))]).unwrap();
    }

    #[test]
    fn changes_are_new_or_updated_rows_by_version_then_deleted_rows_created_ones_included() {
        let (mut store, e) = accounts();
        let old = add(&mut store, e);
        let from = store.version();
        let a = add(&mut store, e);
        let b = add(&mut store, e);
        rename(&mut store, e, a, "updated after b was created");
        store.remove(e, old).unwrap();
        let brief = add(&mut store, e);
        store.remove(e, brief).unwrap();
        // Another table's writes are not this table's changes.
        let contacts = store.schema.entity("contact").unwrap();
        add(&mut store, contacts);
        assert_eq!(
            changes(&store, e, from, store.version()),
            [
                Entry::Changed(b),
                Entry::Changed(a),
                Entry::Deleted(old),
                Entry::Deleted(brief),
            ]
        );
    }

    #[test]
    fn a_window_ends_at_its_version_and_later_writes_do_not_move_it() {
        let (mut store, e) = accounts();
        let from = store.version();
        let a = add(&mut store, e);
        let to = store.version();
        let window = changes(&store, e, from, to);
        let b = add(&mut store, e);
        store.remove(e, a).unwrap();
        assert_eq!(changes(&store, e, from, to), window);
        assert_eq!(window, [Entry::Changed(a)]);
        assert_eq!(
            changes(&store, e, to, store.version()),
            [Entry::Changed(b), Entry::Deleted(a)]
        );
        assert_eq!(changes(&store, e, store.version(), store.version()), []);
    }

    static NOW: AtomicI64 = AtomicI64::new(1_700_000_000);

    fn pinned() -> i64 {
        NOW.load(Ordering::SeqCst)
    }

    #[test]
    fn a_token_is_valid_for_the_lifetime_then_expires_with_expired_version_stamp() {
        let (mut store, e) = accounts();
        store.clock = pinned;
        add(&mut store, e);
        let token = Token::now(&store).text();
        assert_eq!(
            store.delta_token_lifetime,
            7 * 86_400,
            "Dataverse's default"
        );
        NOW.fetch_add(7 * 86_400, Ordering::SeqCst);
        assert!(
            check(&store, &token).is_ok(),
            "seven days old is still valid"
        );
        NOW.fetch_add(1, Ordering::SeqCst);
        let err = check(&store, &token).unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (400, EXPIRED_VERSION_STAMP)
        );
        store.delta_token_lifetime = 30 * 86_400;
        assert!(check(&store, &token).is_ok(), "the window is configurable");
        store.expire_delta_tokens();
        assert_eq!(
            check(&store, &token).unwrap_err().code,
            EXPIRED_VERSION_STAMP
        );
        assert_eq!(check(&store, "garbage").unwrap_err().status, 400);
    }

    #[test]
    fn a_token_is_the_documented_version_and_utc_time_and_reads_back() {
        // 2017-08-22T08:10:44Z, the documented example.
        let t = Token {
            version: 919_042,
            issued: 1_503_389_444,
        };
        assert_eq!(t.text(), "919042!08/22/2017 08:10:44");
        assert_eq!(t.encoded(), "919042%2108%2f22%2f2017%2008%3a10%3a44");
        assert_eq!(Token::parse("919042!08/22/2017 08:10:44"), Some(t));
        for bad in [
            "",
            "919042",
            "x!08/22/2017 08:10:44",
            "1!2017-08-22",
            "1!13/40/2017 08:10:44",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
    }
}
