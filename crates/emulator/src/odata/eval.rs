//! `$filter` and `$orderby` against stored rows: compile once against the schema (so unknown
//! properties and type mismatches are 400s even on an empty table), then evaluate per row.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::error::DvError;
use crate::guid::Guid;
use crate::odata::filter::{CmpOp, Expr, Lit, Operand, StrFn};
use crate::odata::query::OrderBy;
use crate::schema::{AttrKind, TableId};
use crate::store::{Row, Store, Val};
use crate::wire::Caller;

/// A single-valued navigation hop: follow lookup column `col` to table `target`.
#[derive(Debug, Clone)]
struct Hop {
    col: usize,
    target: TableId,
}

#[derive(Debug, Clone)]
enum COp {
    /// Column of the row in scope `scope` (0 = the queried row, k = k-th lambda variable),
    /// after following `hops`.
    Col {
        scope: usize,
        hops: Vec<Hop>,
        col: usize,
    },
    Lit(Lit),
}

#[derive(Debug)]
enum CExpr {
    Or(Box<CExpr>, Box<CExpr>),
    And(Box<CExpr>, Box<CExpr>),
    Not(Box<CExpr>),
    Cmp(CmpOp, COp, COp),
    Str(StrFn, COp, COp),
    In(COp, Vec<Lit>, bool),
    Between(COp, Lit, Lit, bool),
    Lambda {
        child: TableId,
        /// Primary-key column of the parent row.
        parent_pk: usize,
        /// parent id → child ids
        index: HashMap<Guid, Vec<Guid>>,
        body: Option<Box<CExpr>>,
        all: bool,
    },
    Bool(COp),
}

/// A compiled filter.
#[derive(Debug)]
pub struct Filter {
    expr: CExpr,
}

struct Scope {
    entity: TableId,
    var: String,
}

struct Compiler<'a> {
    store: &'a Store,
    scopes: Vec<Scope>,
    caller: Caller,
}

impl Filter {
    /// Compiles `expr` for rows of `entity`.
    pub fn compile(
        store: &Store,
        entity: TableId,
        expr: &Expr,
        caller: Caller,
    ) -> Result<Filter, DvError> {
        let mut c = Compiler {
            store,
            scopes: vec![Scope {
                entity,
                var: String::new(),
            }],
            caller,
        };
        Ok(Filter {
            expr: c.expr(expr)?,
        })
    }

    /// Whether a row matches.
    pub fn matches(&self, store: &Store, row: &Row) -> bool {
        let mut scopes = vec![row];
        eval(&self.expr, store, &mut scopes)
    }
}

impl Compiler<'_> {
    fn expr(&mut self, e: &Expr) -> Result<CExpr, DvError> {
        Ok(match e {
            Expr::Or(a, b) => CExpr::Or(Box::new(self.expr(a)?), Box::new(self.expr(b)?)),
            Expr::And(a, b) => CExpr::And(Box::new(self.expr(a)?), Box::new(self.expr(b)?)),
            Expr::Not(a) => CExpr::Not(Box::new(self.expr(a)?)),
            Expr::Cmp(op, a, b) => {
                let (a, b) = (self.operand(a)?, self.operand(b)?);
                self.check_types(&a, &b, *op)?;
                CExpr::Cmp(*op, a, b)
            }
            Expr::Str(f, a, b) => CExpr::Str(*f, self.operand(a)?, self.operand(b)?),
            Expr::In(p, lits, neg) => CExpr::In(self.path(p)?, lits.clone(), *neg),
            Expr::Between(p, lo, hi, neg) => {
                CExpr::Between(self.path(p)?, lo.clone(), hi.clone(), *neg)
            }
            Expr::Lambda {
                nav,
                var,
                body,
                all,
            } => {
                let current = self.scopes.len() - 1;
                let mut segs: Vec<&str> = nav.split('/').collect();
                let scope = if segs.len() > 1 && self.scopes.iter().any(|s| s.var == segs[0]) {
                    let v = segs.remove(0);
                    self.scopes
                        .iter()
                        .rposition(|s| s.var == v)
                        .unwrap_or(current)
                } else {
                    0
                };
                if segs.len() != 1 {
                    return Err(DvError::bad_request(format!(
                        "The lambda navigation path '{nav}' is not supported."
                    )));
                }
                let parent = self.scopes[scope].entity;
                let schema = &self.store.schema;
                let rel = schema.collection_nav(parent, segs[0]).ok_or_else(|| {
                    DvError::unknown_property(segs[0], &schema.table(parent).logical_name)
                })?;
                let child = rel.referencing_entity;
                let col = rel.referencing_attribute;
                let mut index: HashMap<Guid, Vec<Guid>> = HashMap::new();
                for (id, row) in self.store.rows(child) {
                    if let Val::Ref(g, e) = &row.vals[col]
                        && *e == parent
                    {
                        index.entry(*g).or_default().push(*id);
                    }
                }
                let body = match body {
                    Some(b) => {
                        self.scopes.push(Scope {
                            entity: child,
                            var: var.clone(),
                        });
                        let r = self.expr(b);
                        self.scopes.pop();
                        Some(Box::new(r?))
                    }
                    None => None,
                };
                if scope != 0 {
                    return Err(DvError::bad_request(
                        "Nested lambda expressions over a lambda variable are not supported by the emulator.",
                    ));
                }
                CExpr::Lambda {
                    child,
                    parent_pk: self.store.schema.table(parent).primary_id,
                    index,
                    body,
                    all: *all,
                }
            }
            Expr::Operand(o) => CExpr::Bool(self.operand(o)?),
        })
    }

    fn operand(&mut self, o: &Operand) -> Result<COp, DvError> {
        match o {
            Operand::Lit(Lit::Enum(v)) if v == "@caller" => {
                Ok(COp::Lit(Lit::Guid(self.caller.user)))
            }
            Operand::Lit(Lit::Enum(v)) if v == "@businessunit" => {
                Ok(COp::Lit(Lit::Guid(self.caller.business_unit)))
            }
            Operand::Lit(l) => Ok(COp::Lit(l.clone())),
            Operand::Path(p) => self.path(p),
        }
    }

    fn path(&mut self, path: &[String]) -> Result<COp, DvError> {
        let schema = &self.store.schema;
        let mut segs: Vec<&str> = path.iter().map(String::as_str).collect();
        let mut scope = 0;
        if segs.len() > 1
            && let Some(s) = self
                .scopes
                .iter()
                .rposition(|s| !s.var.is_empty() && s.var == segs[0])
        {
            scope = s;
            segs.remove(0);
        }
        let mut entity = self.scopes[scope].entity;
        let mut hops = Vec::new();
        let last = segs.pop().unwrap_or_default();
        for nav in segs {
            let rel = schema.single_nav(entity, nav).ok_or_else(|| {
                DvError::unknown_property(nav, &schema.table(entity).logical_name)
            })?;
            hops.push(Hop {
                col: rel.referencing_attribute,
                target: rel.referenced_entity,
            });
            entity = rel.referenced_entity;
        }
        let e = schema.table(entity);
        let col = e
            .attr_by_wire(last)
            .or_else(|| e.attr(last).filter(|&c| !e.attributes[c].kind.is_lookup()))
            .ok_or_else(|| DvError::unknown_property(last, &e.logical_name))?;
        Ok(COp::Col { scope, hops, col })
    }

    fn kind_of(&self, op: &COp) -> Option<&AttrKind> {
        let COp::Col { scope, hops, col } = op else {
            return None;
        };
        let entity = hops
            .last()
            .map(|h| h.target)
            .unwrap_or(self.scopes[*scope].entity);
        Some(&self.store.schema.table(entity).attributes[*col].kind)
    }

    fn check_types(&self, a: &COp, b: &COp, op: CmpOp) -> Result<(), DvError> {
        let (kind, lit) = match (a, b) {
            (COp::Col { .. }, COp::Lit(l)) => (self.kind_of(a), l),
            (COp::Lit(l), COp::Col { .. }) => (self.kind_of(b), l),
            _ => return Ok(()),
        };
        let Some(kind) = kind else { return Ok(()) };
        let ok = match lit {
            Lit::Null | Lit::Enum(_) => true,
            Lit::Str(s) => match kind {
                AttrKind::Uniqueidentifier | AttrKind::Lookup { .. } => Guid::parse(s).is_some(),
                AttrKind::String { .. } | AttrKind::Memo { .. } => true,
                AttrKind::DateTime { .. } => crate::datetime::parse_iso(s).is_some(),
                // Choice columns accept quoted numbers in query functions.
                _ => s.trim().parse::<f64>().is_ok(),
            },
            Lit::Int(_) | Lit::Num(_) => !matches!(
                kind,
                AttrKind::String { .. }
                    | AttrKind::Memo { .. }
                    | AttrKind::Boolean { .. }
                    | AttrKind::Uniqueidentifier
                    | AttrKind::Lookup { .. }
                    | AttrKind::DateTime { .. }
            ),
            Lit::Bool(_) => matches!(kind, AttrKind::Boolean { .. }),
            Lit::Guid(_) => matches!(kind, AttrKind::Uniqueidentifier | AttrKind::Lookup { .. }),
            Lit::Date(..) => matches!(kind, AttrKind::DateTime { .. }),
        };
        if ok {
            return Ok(());
        }
        let op_name = match op {
            CmpOp::Eq => "Equal",
            CmpOp::Ne => "NotEqual",
            CmpOp::Gt => "GreaterThan",
            CmpOp::Ge => "GreaterThanOrEqual",
            CmpOp::Lt => "LessThan",
            CmpOp::Le => "LessThanOrEqual",
        };
        Err(DvError::bad_request(format!(
            "A binary operator with incompatible types was detected. Found operand types '{}' and '{}' for operator kind '{op_name}'.",
            kind.edm_type(),
            lit_edm(lit)
        )))
    }
}

fn lit_edm(l: &Lit) -> &'static str {
    match l {
        Lit::Null => "<null>",
        Lit::Str(_) | Lit::Enum(_) => "Edm.String",
        Lit::Int(_) => "Edm.Int32",
        Lit::Num(_) => "Edm.Decimal",
        Lit::Bool(_) => "Edm.Boolean",
        Lit::Guid(_) => "Edm.Guid",
        Lit::Date(_, true) => "Edm.Date",
        Lit::Date(_, false) => "Edm.DateTimeOffset",
    }
}

/// A value during evaluation.
#[derive(Debug, Clone)]
enum V<'a> {
    Null,
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Date(i64),
    Guid(Guid),
}

fn from_val(v: &Val) -> V<'_> {
    match v {
        Val::Null => V::Null,
        Val::Str(s) => V::Str(s),
        Val::Int(i) => V::Num(*i as f64),
        Val::Num(n) => V::Num(*n),
        Val::Bool(b) => V::Bool(*b),
        Val::Date(d) => V::Date(*d),
        Val::Guid(g) | Val::Ref(g, _) => V::Guid(*g),
    }
}

fn from_lit(l: &Lit) -> V<'_> {
    match l {
        Lit::Null => V::Null,
        Lit::Str(s) | Lit::Enum(s) => V::Str(s),
        Lit::Int(i) => V::Num(*i as f64),
        Lit::Num(n) => V::Num(*n),
        Lit::Bool(b) => V::Bool(*b),
        Lit::Guid(g) => V::Guid(*g),
        Lit::Date(d, _) => V::Date(*d),
    }
}

fn resolve<'a>(op: &'a COp, store: &'a Store, scopes: &[&'a Row]) -> V<'a> {
    match op {
        COp::Lit(l) => from_lit(l),
        COp::Col { scope, hops, col } => {
            let mut row = scopes[*scope];
            for hop in hops {
                let Val::Ref(g, e) = &row.vals[hop.col] else {
                    return V::Null;
                };
                if *e != hop.target {
                    return V::Null;
                }
                match store.get(hop.target, g) {
                    Some(r) => row = r,
                    None => return V::Null,
                }
            }
            from_val(&row.vals[*col])
        }
    }
}

fn text(v: &V) -> Option<String> {
    match v {
        V::Str(s) => Some(s.to_lowercase()),
        V::Num(n) => Some(n.to_string()),
        V::Bool(b) => Some(b.to_string()),
        V::Guid(g) => Some(g.to_string()),
        V::Date(d) => Some(crate::datetime::format_iso(*d)),
        V::Null => None,
    }
}

/// Orders two values the way the comparison operators see them; None when incomparable.
fn compare(a: &V, b: &V) -> Option<Ordering> {
    match (a, b) {
        (V::Null, _) | (_, V::Null) => None,
        (V::Num(x), V::Num(y)) => x.partial_cmp(y),
        (V::Num(x), V::Str(s)) => s.trim().parse::<f64>().ok().and_then(|y| x.partial_cmp(&y)),
        (V::Str(s), V::Num(y)) => s.trim().parse::<f64>().ok().and_then(|x| x.partial_cmp(y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Date(x), V::Date(y)) => Some(x.cmp(y)),
        (V::Date(x), V::Str(s)) => crate::datetime::parse_iso(s).map(|y| x.cmp(&y)),
        (V::Str(s), V::Date(y)) => crate::datetime::parse_iso(s).map(|x| x.cmp(y)),
        (V::Guid(x), V::Guid(y)) => Some(x.cmp(y)),
        (V::Guid(x), V::Str(s)) => Guid::parse(s).map(|y| x.cmp(&y)),
        (V::Str(s), V::Guid(y)) => Guid::parse(s).map(|x| x.cmp(y)),
        _ => Some(text(a)?.cmp(&text(b)?)),
    }
}

fn cmp_op(op: CmpOp, a: &V, b: &V) -> bool {
    match (op, a, b) {
        (CmpOp::Eq, V::Null, V::Null) => true,
        (CmpOp::Ne, V::Null, V::Null) => false,
        (CmpOp::Eq, V::Null, _) | (CmpOp::Eq, _, V::Null) => false,
        (CmpOp::Ne, V::Null, _) | (CmpOp::Ne, _, V::Null) => true,
        _ => match compare(a, b) {
            Some(o) => match op {
                CmpOp::Eq => o == Ordering::Equal,
                CmpOp::Ne => o != Ordering::Equal,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
            },
            None => false,
        },
    }
}

fn eval<'a>(e: &'a CExpr, store: &'a Store, scopes: &mut Vec<&'a Row>) -> bool {
    match e {
        CExpr::Or(a, b) => eval(a, store, scopes) || eval(b, store, scopes),
        CExpr::And(a, b) => eval(a, store, scopes) && eval(b, store, scopes),
        CExpr::Not(a) => !eval(a, store, scopes),
        CExpr::Cmp(op, a, b) => {
            let (x, y) = (resolve(a, store, scopes), resolve(b, store, scopes));
            cmp_op(*op, &x, &y)
        }
        CExpr::Str(f, a, b) => {
            let (Some(x), Some(y)) = (
                text(&resolve(a, store, scopes)),
                text(&resolve(b, store, scopes)),
            ) else {
                return false;
            };
            match f {
                StrFn::Contains => x.contains(&y),
                StrFn::StartsWith => x.starts_with(&y),
                StrFn::EndsWith => x.ends_with(&y),
            }
        }
        CExpr::In(p, lits, neg) => {
            let v = resolve(p, store, scopes);
            let hit = lits.iter().any(|l| cmp_op(CmpOp::Eq, &v, &from_lit(l)));
            !v_is_null(&v) && hit != *neg
        }
        CExpr::Between(p, lo, hi, neg) => {
            let v = resolve(p, store, scopes);
            let inside =
                cmp_op(CmpOp::Ge, &v, &from_lit(lo)) && cmp_op(CmpOp::Le, &v, &from_lit(hi));
            !v_is_null(&v) && inside != *neg
        }
        CExpr::Lambda {
            child,
            parent_pk,
            index,
            body,
            all,
        } => {
            let Val::Guid(pid) = scopes[0].vals[*parent_pk] else {
                return false;
            };
            let children = index.get(&pid).map(Vec::as_slice).unwrap_or(&[]);
            let Some(body) = body else {
                return !children.is_empty();
            };
            let mut test = |id: &Guid| -> bool {
                match store.get(*child, id) {
                    Some(r) => {
                        scopes.push(r);
                        let ok = eval(body, store, scopes);
                        scopes.pop();
                        ok
                    }
                    None => false,
                }
            };
            if *all {
                children.iter().all(&mut test)
            } else {
                children.iter().any(&mut test)
            }
        }
        CExpr::Bool(op) => matches!(resolve(op, store, scopes), V::Bool(true)),
    }
}

fn v_is_null(v: &V) -> bool {
    matches!(v, V::Null)
}

/// A compiled `$orderby`.
#[derive(Debug, Clone)]
pub struct Order {
    keys: Vec<(COp, bool)>,
}

impl Order {
    pub fn compile(store: &Store, entity: TableId, items: &[OrderBy]) -> Result<Order, DvError> {
        let mut c = Compiler {
            store,
            scopes: vec![Scope {
                entity,
                var: String::new(),
            }],
            caller: Caller::default(),
        };
        let mut keys = Vec::new();
        for item in items {
            let path: Vec<String> = item.property.split('/').map(String::from).collect();
            keys.push((c.path(&path)?, item.descending));
        }
        Ok(Order { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Compares two rows; nulls sort first ascending, strings case-insensitively.
    pub fn cmp(&self, store: &Store, a: &Row, b: &Row) -> Ordering {
        for (op, desc) in &self.keys {
            let (x, y) = (resolve(op, store, &[a]), resolve(op, store, &[b]));
            let o = match (&x, &y) {
                (V::Null, V::Null) => Ordering::Equal,
                (V::Null, _) => Ordering::Less,
                (_, V::Null) => Ordering::Greater,
                _ => compare(&x, &y).unwrap_or(Ordering::Equal),
            };
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}
