//! Which row a key in the URL names: `accounts(<guid>)`, `accounts(accountnumber='A-1')`,
//! compound alternate keys, and lookups in keys (`_parentaccountid_value=<guid>`). A key is
//! first resolved against the schema ([`key_ref`]: unknown columns and bad values are 400s),
//! then against the rows ([`find`], or [`resolve_existing`] with the 404 the service gives,
//! which differs for a primary key and an alternate key).

use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::filter::Lit;
use crate::odata::path::{self, Key};
use crate::schema::{AttrKind, TableId};
use crate::store::{Store, Val};

/// Converts a key/filter literal to a cell value of a column.
pub fn lit_to_val(kind: &AttrKind, lit: &Lit) -> Option<Val> {
    Some(match (kind, lit) {
        (_, Lit::Null) => Val::Null,
        (AttrKind::String { .. } | AttrKind::Memo { .. }, Lit::Str(s)) => Val::str(s),
        (AttrKind::Lookup { .. } | AttrKind::Uniqueidentifier, Lit::Guid(g)) => Val::Guid(*g),
        (AttrKind::Lookup { .. } | AttrKind::Uniqueidentifier, Lit::Str(s)) => {
            Val::Guid(Guid::parse(s)?)
        }
        (_, Lit::Int(i)) if matches!(kind, AttrKind::Decimal { .. } | AttrKind::Money) => {
            Val::Num(*i as f64)
        }
        (_, Lit::Int(i)) => Val::Int(*i),
        (_, Lit::Num(n)) => Val::Num(*n),
        (_, Lit::Bool(b)) => Val::Bool(*b),
        (_, Lit::Date(d, _)) => Val::Date(*d),
        (_, Lit::Str(s)) => Val::str(s),
        _ => return None,
    })
}

/// A key from the URL, resolved against the schema but not yet against the rows.
pub enum KeyRef {
    Id(Guid),
    Alt(Vec<(usize, Val)>),
}

/// Parses a key of table `e`.
pub fn key_ref(store: &Store, e: TableId, raw: &str) -> Result<KeyRef, DvError> {
    let ent = store.entity(e);
    match path::parse_key(raw)? {
        Key::Id(g) => Ok(KeyRef::Id(g)),
        Key::Single(_) => Err(DvError::bad_request(format!(
            "Bad Request - Error in query syntax: the key '({raw})' is not a valid key of '{}'.",
            ent.entity_set_name
        ))),
        Key::Named(pairs) => {
            let mut vals = Vec::new();
            for (name, lit) in pairs {
                let col = ent
                    .attr_by_wire(&name)
                    .or_else(|| ent.attr(&name))
                    .ok_or_else(|| DvError::unknown_property(&name, &ent.logical_name))?;
                if col == ent.primary_id
                    && let Lit::Guid(g) = lit
                {
                    return Ok(KeyRef::Id(g));
                }
                let mut v = lit_to_val(&ent.attributes[col].kind, &lit).ok_or_else(|| {
                    DvError::bad_request(format!("The key value for '{name}' is not valid."))
                })?;
                if let (AttrKind::Lookup { targets, .. }, Val::Guid(g)) =
                    (&ent.attributes[col].kind, &v)
                {
                    let t = targets
                        .first()
                        .and_then(|t| store.schema.entity(t))
                        .ok_or_else(|| {
                            DvError::internal(&format!(
                                "the lookup column '{name}' targets no table of the schema"
                            ))
                        })?;
                    v = Val::Ref(*g, t);
                }
                vals.push((col, v));
            }
            Ok(KeyRef::Alt(vals))
        }
    }
}

/// Finds the row a key names, if it exists.
pub fn find(store: &Store, e: TableId, key: &KeyRef) -> Option<Guid> {
    match key {
        KeyRef::Id(g) => store.get(e, g).map(|_| *g),
        KeyRef::Alt(vals) => store.find_by_alt_key(e, vals),
    }
}

/// Resolves a key to an existing row, or the 404 the service gives.
pub fn resolve_existing(store: &Store, e: TableId, raw: &str) -> Result<Guid, DvError> {
    let key = key_ref(store, e, raw)?;
    find(store, e, &key).ok_or_else(|| match key {
        KeyRef::Id(g) => DvError::not_found(&store.entity(e).logical_name, &g),
        KeyRef::Alt(_) => DvError::not_found_by_key(&store.entity(e).logical_name),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::{OBJECT_DOES_NOT_EXIST, ODATA_ERROR, RECORD_NOT_FOUND_BY_KEY};

    fn seeded() -> (Store, TableId) {
        let mut store = Store::new(Arc::new(crate::catalog::schema()));
        crate::seed::seed(&mut store, 3, &[], "client");
        let accounts = store.schema.entity("account").unwrap();
        (store, accounts)
    }

    /// The id and account number of a seeded account.
    fn an_account(store: &Store, accounts: TableId) -> (Guid, String) {
        let col = store.entity(accounts).attr("accountnumber").unwrap();
        store
            .rows(accounts)
            .iter()
            .find_map(|(id, r)| match &r.vals[col] {
                Val::Str(n) => Some((*id, n.to_string())),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_guid_key_and_the_named_primary_key_are_ids() {
        let (store, accounts) = seeded();
        let g = Guid::from_seed(7, 7);
        for raw in [g.to_string(), format!("accountid={g}")] {
            assert!(
                matches!(key_ref(&store, accounts, &raw), Ok(KeyRef::Id(id)) if id == g),
                "{raw}"
            );
        }
    }

    #[test]
    fn an_alternate_key_finds_its_row_in_any_case() {
        let (store, accounts) = seeded();
        let (id, number) = an_account(&store, accounts);
        let key = key_ref(&store, accounts, &format!("accountnumber='{number}'")).unwrap();
        let KeyRef::Alt(values) = &key else {
            panic!("an alternate key")
        };
        let col = store.entity(accounts).attr("accountnumber").unwrap();
        assert_eq!(values, &[(col, Val::str(&number))]);
        assert_eq!(find(&store, accounts, &key), Some(id));
        let lower = format!("accountnumber='{}'", number.to_lowercase());
        assert_eq!(resolve_existing(&store, accounts, &lower), Ok(id));
    }

    #[test]
    fn a_lookup_in_a_key_points_at_its_target_table() {
        let (store, accounts) = seeded();
        let g = Guid::from_seed(7, 7);
        let key = key_ref(&store, accounts, &format!("_parentaccountid_value={g}")).unwrap();
        let col = store.entity(accounts).attr("parentaccountid").unwrap();
        assert!(
            matches!(&key, KeyRef::Alt(v) if v == &[(col, Val::Ref(g, accounts))]),
            "the parent account lookup targets the account table"
        );
    }

    #[test]
    fn keys_the_schema_cannot_take_are_400s() {
        let (store, accounts) = seeded();
        let unknown = key_ref(&store, accounts, "nosuchcolumn='x'").err().unwrap();
        assert_eq!((unknown.status, unknown.code.as_str()), (400, ODATA_ERROR));
        assert!(
            unknown.message.contains("'nosuchcolumn'"),
            "{}",
            unknown.message
        );
        let single = key_ref(&store, accounts, "'A-1'").err().unwrap();
        assert_eq!(single.status, 400);
        assert!(single.message.contains("'accounts'"), "{}", single.message);
        let bad_value = key_ref(&store, accounts, "accountid='not a guid'")
            .err()
            .unwrap();
        assert_eq!(bad_value.status, 400);
    }

    #[test]
    fn a_missing_row_is_the_404_of_its_kind_of_key() {
        let (store, accounts) = seeded();
        let g = Guid::from_seed(7, 7);
        let by_id = resolve_existing(&store, accounts, &g.to_string()).unwrap_err();
        assert_eq!(
            (by_id.status, by_id.code.as_str()),
            (404, OBJECT_DOES_NOT_EXIST)
        );
        let by_key = resolve_existing(&store, accounts, "accountnumber='NO-SUCH'").unwrap_err();
        assert_eq!(
            (by_key.status, by_key.code.as_str()),
            (404, RECORD_NOT_FOUND_BY_KEY)
        );
    }

    #[test]
    fn literals_become_cells_of_the_column_type() {
        let money = AttrKind::Money;
        assert_eq!(lit_to_val(&money, &Lit::Int(3)), Some(Val::Num(3.0)));
        let g = Guid::from_seed(7, 7);
        assert_eq!(
            lit_to_val(&AttrKind::Uniqueidentifier, &Lit::Str(g.to_string())),
            Some(Val::Guid(g))
        );
        assert_eq!(
            lit_to_val(&AttrKind::Uniqueidentifier, &Lit::Str("x".into())),
            None
        );
        assert_eq!(lit_to_val(&money, &Lit::Null), Some(Val::Null));
    }
}
