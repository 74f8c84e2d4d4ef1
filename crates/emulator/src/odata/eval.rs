//! `$filter` and `$orderby`: compile once, then evaluate per row or record.
//!
//! The one `$filter` evaluator of the emulator. Filters on rows compile against the schema (so
//! unknown properties and type mismatches are 400s even on an empty table) into column paths
//! read through the store; filters on metadata compile without a schema into property paths a
//! [`Record`] answers (`metadata` renders its objects as records). Both run through the same
//! evaluation, with the same comparison rules.

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
    /// A property path a [`Record`] answers.
    Prop(Vec<String>),
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

    /// Compiles `expr` for [`Record`]s: every property path is the record's to answer (one it
    /// does not have is null), and lambda operators, which need navigation properties, match
    /// nothing.
    pub fn for_records(expr: &Expr, caller: Caller) -> Filter {
        Filter {
            expr: record_expr(expr, caller),
        }
    }

    /// Whether a row matches.
    pub fn matches(&self, store: &Store, row: &Row) -> bool {
        let mut rows = Rows {
            store,
            scopes: vec![row],
        };
        eval(&self.expr, &mut rows)
    }

    /// Whether a record matches (a filter compiled with [`Filter::for_records`]).
    pub fn matches_record(&self, record: &dyn Record) -> bool {
        eval(&self.expr, &mut RecordSource(record))
    }
}

/// Something a `$filter` reads properties from without a schema: a metadata object.
pub trait Record {
    /// The value at a property path (`LogicalName`, `DisplayName/UserLocalizedLabel/Label`),
    /// [`Term::Null`] where there is none.
    fn property(&self, path: &[String]) -> Term<'_>;
}

fn record_operand(o: &Operand, caller: Caller) -> COp {
    match o {
        Operand::Lit(Lit::Enum(v)) if v == "@caller" => COp::Lit(Lit::Guid(caller.user)),
        Operand::Lit(Lit::Enum(v)) if v == "@businessunit" => {
            COp::Lit(Lit::Guid(caller.business_unit))
        }
        Operand::Lit(l) => COp::Lit(l.clone()),
        Operand::Path(p) => COp::Prop(p.clone()),
    }
}

fn record_expr(e: &Expr, caller: Caller) -> CExpr {
    let expr = |e: &Expr| Box::new(record_expr(e, caller));
    match e {
        Expr::Or(a, b) => CExpr::Or(expr(a), expr(b)),
        Expr::And(a, b) => CExpr::And(expr(a), expr(b)),
        Expr::Not(a) => CExpr::Not(expr(a)),
        Expr::Cmp(op, a, b) => {
            CExpr::Cmp(*op, record_operand(a, caller), record_operand(b, caller))
        }
        Expr::Str(f, a, b) => CExpr::Str(*f, record_operand(a, caller), record_operand(b, caller)),
        Expr::In(p, lits, neg) => CExpr::In(COp::Prop(p.clone()), lits.clone(), *neg),
        Expr::Between(p, lo, hi, neg) => {
            CExpr::Between(COp::Prop(p.clone()), lo.clone(), hi.clone(), *neg)
        }
        Expr::Lambda { .. } => CExpr::Bool(COp::Lit(Lit::Bool(false))),
        Expr::Operand(o) => CExpr::Bool(record_operand(o, caller)),
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
                    return Err(DvError::not_implemented(
                        "nested lambda expressions over a lambda variable",
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
#[derive(Debug, Clone, PartialEq)]
pub enum Term<'a> {
    Null,
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Date(i64),
    Guid(Guid),
    /// A value no operator compares or searches (a metadata object or array); not null.
    Other,
}

fn from_val(v: &Val) -> Term<'_> {
    match v {
        Val::Null => Term::Null,
        Val::Str(s) => Term::Str(s),
        Val::Int(i) => Term::Num(*i as f64),
        Val::Num(n) => Term::Num(*n),
        Val::Bool(b) => Term::Bool(*b),
        Val::Date(d) => Term::Date(*d),
        Val::Guid(g) | Val::Ref(g, _) => Term::Guid(*g),
    }
}

fn from_lit(l: &Lit) -> Term<'_> {
    match l {
        Lit::Null => Term::Null,
        Lit::Str(s) | Lit::Enum(s) => Term::Str(s),
        Lit::Int(i) => Term::Num(*i as f64),
        Lit::Num(n) => Term::Num(*n),
        Lit::Bool(b) => Term::Bool(*b),
        Lit::Guid(g) => Term::Guid(*g),
        Lit::Date(d, _) => Term::Date(*d),
    }
}

/// The value of an operand for rows (the queried row first, then lambda variables).
fn resolve<'a>(op: &'a COp, store: &'a Store, scopes: &[&'a Row]) -> Term<'a> {
    match op {
        COp::Lit(l) => from_lit(l),
        COp::Prop(_) => Term::Null,
        COp::Col { scope, hops, col } => {
            let mut row = scopes[*scope];
            for hop in hops {
                let Val::Ref(g, e) = &row.vals[hop.col] else {
                    return Term::Null;
                };
                if *e != hop.target {
                    return Term::Null;
                }
                match store.get(hop.target, g) {
                    Some(r) => row = r,
                    None => return Term::Null,
                }
            }
            from_val(&row.vals[*col])
        }
    }
}

fn text(v: &Term) -> Option<String> {
    match v {
        Term::Str(s) => Some(s.to_lowercase()),
        Term::Num(n) => Some(n.to_string()),
        Term::Bool(b) => Some(b.to_string()),
        Term::Guid(g) => Some(g.to_string()),
        Term::Date(d) => Some(crate::datetime::format_iso(*d)),
        Term::Null | Term::Other => None,
    }
}

/// Orders two values the way the comparison operators see them; None when incomparable.
fn compare(a: &Term, b: &Term) -> Option<Ordering> {
    match (a, b) {
        (Term::Null, _) | (_, Term::Null) => None,
        (Term::Num(x), Term::Num(y)) => x.partial_cmp(y),
        (Term::Num(x), Term::Str(s)) => {
            s.trim().parse::<f64>().ok().and_then(|y| x.partial_cmp(&y))
        }
        (Term::Str(s), Term::Num(y)) => s.trim().parse::<f64>().ok().and_then(|x| x.partial_cmp(y)),
        (Term::Bool(x), Term::Bool(y)) => Some(x.cmp(y)),
        (Term::Date(x), Term::Date(y)) => Some(x.cmp(y)),
        (Term::Date(x), Term::Str(s)) => crate::datetime::parse_iso(s).map(|y| x.cmp(&y)),
        (Term::Str(s), Term::Date(y)) => crate::datetime::parse_iso(s).map(|x| x.cmp(y)),
        (Term::Guid(x), Term::Guid(y)) => Some(x.cmp(y)),
        (Term::Guid(x), Term::Str(s)) => Guid::parse(s).map(|y| x.cmp(&y)),
        (Term::Str(s), Term::Guid(y)) => Guid::parse(s).map(|x| x.cmp(y)),
        _ => Some(text(a)?.cmp(&text(b)?)),
    }
}

fn cmp_op(op: CmpOp, a: &Term, b: &Term) -> bool {
    match (op, a, b) {
        (CmpOp::Eq, Term::Null, Term::Null) => true,
        (CmpOp::Ne, Term::Null, Term::Null) => false,
        (CmpOp::Eq, Term::Null, _) | (CmpOp::Eq, _, Term::Null) => false,
        (CmpOp::Ne, Term::Null, _) | (CmpOp::Ne, _, Term::Null) => true,
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

/// What a compiled filter reads its operands from.
trait Source<'a> {
    fn value(&self, op: &'a COp) -> Term<'a>;
    /// Evaluates a lambda operator over the children of the queried row.
    fn lambda(&mut self, lambda: &'a CExpr) -> bool;
}

/// Rows: the queried row, then the rows lambda variables stand for.
struct Rows<'a> {
    store: &'a Store,
    scopes: Vec<&'a Row>,
}

impl<'a> Source<'a> for Rows<'a> {
    fn value(&self, op: &'a COp) -> Term<'a> {
        resolve(op, self.store, &self.scopes)
    }

    fn lambda(&mut self, lambda: &'a CExpr) -> bool {
        let CExpr::Lambda {
            child,
            parent_pk,
            index,
            body,
            all,
        } = lambda
        else {
            return false;
        };
        let Val::Guid(pid) = self.scopes[0].vals[*parent_pk] else {
            return false;
        };
        let children = index.get(&pid).map(Vec::as_slice).unwrap_or(&[]);
        let Some(body) = body else {
            return !children.is_empty();
        };
        let store = self.store;
        let mut test = |id: &Guid| -> bool {
            match store.get(*child, id) {
                Some(r) => {
                    self.scopes.push(r);
                    let ok = eval(body, self);
                    self.scopes.pop();
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
}

/// A record: property paths are its to answer; it has no children to range over.
struct RecordSource<'a>(&'a dyn Record);

impl<'a> Source<'a> for RecordSource<'a> {
    fn value(&self, op: &'a COp) -> Term<'a> {
        match op {
            COp::Lit(l) => from_lit(l),
            COp::Prop(path) => self.0.property(path),
            COp::Col { .. } => Term::Null,
        }
    }

    fn lambda(&mut self, _: &'a CExpr) -> bool {
        false
    }
}

fn eval<'a>(e: &'a CExpr, src: &mut impl Source<'a>) -> bool {
    match e {
        CExpr::Or(a, b) => eval(a, src) || eval(b, src),
        CExpr::And(a, b) => eval(a, src) && eval(b, src),
        CExpr::Not(a) => !eval(a, src),
        CExpr::Cmp(op, a, b) => {
            let (x, y) = (src.value(a), src.value(b));
            cmp_op(*op, &x, &y)
        }
        CExpr::Str(f, a, b) => {
            let (Some(x), Some(y)) = (text(&src.value(a)), text(&src.value(b))) else {
                return false;
            };
            match f {
                StrFn::Contains => x.contains(&y),
                StrFn::StartsWith => x.starts_with(&y),
                StrFn::EndsWith => x.ends_with(&y),
            }
        }
        CExpr::In(p, lits, neg) => {
            let v = src.value(p);
            let hit = lits.iter().any(|l| cmp_op(CmpOp::Eq, &v, &from_lit(l)));
            !v_is_null(&v) && hit != *neg
        }
        CExpr::Between(p, lo, hi, neg) => {
            let v = src.value(p);
            let inside =
                cmp_op(CmpOp::Ge, &v, &from_lit(lo)) && cmp_op(CmpOp::Le, &v, &from_lit(hi));
            !v_is_null(&v) && inside != *neg
        }
        CExpr::Lambda { .. } => src.lambda(e),
        CExpr::Bool(op) => matches!(src.value(op), Term::Bool(true)),
    }
}

fn v_is_null(v: &Term) -> bool {
    matches!(v, Term::Null)
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
                (Term::Null, Term::Null) => Ordering::Equal,
                (Term::Null, _) => Ordering::Less,
                (_, Term::Null) => Ordering::Greater,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::odata::filter;

    /// A record of named values; a path is its segments joined with `/`.
    struct Props(Vec<(&'static str, Term<'static>)>);

    impl Record for Props {
        fn property(&self, path: &[String]) -> Term<'_> {
            let name = path.join("/");
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(Term::Null, |(_, v)| v.clone())
        }
    }

    fn entity_record() -> Props {
        Props(vec![
            ("LogicalName", Term::Str("account")),
            ("ObjectTypeCode", Term::Num(1.0)),
            ("IsCustomEntity", Term::Bool(false)),
            (
                "MetadataId",
                Term::Str("70816501-edb9-4740-a16c-6a5efbc05d84"),
            ),
            ("DisplayName", Term::Other),
            ("DisplayName/UserLocalizedLabel/Label", Term::Str("Account")),
        ])
    }

    fn record_matches(text: &str) -> bool {
        let expr = filter::parse(text, &|_| None).unwrap();
        Filter::for_records(&expr, Caller::default()).matches_record(&entity_record())
    }

    #[test]
    fn records_answer_comparisons_by_property_path() {
        assert!(record_matches("LogicalName eq 'ACCOUNT'"));
        assert!(record_matches(
            "DisplayName/UserLocalizedLabel/Label eq 'Account'"
        ));
        assert!(record_matches(
            "ObjectTypeCode lt 2 and IsCustomEntity eq false"
        ));
        assert!(record_matches(
            "MetadataId eq 70816501-EDB9-4740-A16C-6A5EFBC05D84"
        ));
        assert!(record_matches("not (LogicalName ne 'account')"));
        assert!(!record_matches("not (LogicalName eq 'account')"));
        assert!(record_matches(
            "startswith(LogicalName,'acc') or contains(LogicalName,'x')"
        ));
        assert!(record_matches(
            "Microsoft.Dynamics.CRM.In(PropertyName='LogicalName',PropertyValues=['contact','account'])"
        ));
        assert!(record_matches(
            "Microsoft.Dynamics.CRM.Between(PropertyName='ObjectTypeCode',PropertyValues=['0','5'])"
        ));
    }

    #[test]
    fn missing_properties_are_null_and_objects_are_not() {
        assert!(record_matches("NoSuchProperty eq null"));
        assert!(!record_matches("NoSuchProperty eq 'x'"));
        assert!(!record_matches("DisplayName eq null"));
        assert!(!record_matches("DisplayName eq 'Account'"));
        assert!(!record_matches("contains(DisplayName,'Account')"));
    }

    #[test]
    fn lambdas_over_records_match_nothing() {
        assert!(!record_matches("Attributes/any(a:a/LogicalName eq 'name')"));
        assert!(!record_matches("Attributes/any()"));
    }

    #[test]
    fn rows_and_records_compare_by_the_same_rules() {
        let store = Store::new(Arc::new(crate::catalog::schema()));
        let accounts = store.schema.entity("account").unwrap();
        let ent = store.entity(accounts);
        let mut vals = store.blank_row(accounts);
        vals[ent.attr("name").unwrap()] = Val::str("Contoso");
        vals[ent.attr("numberofemployees").unwrap()] = Val::Int(12);
        let row = Row { vals, version: 1 };
        let record = Props(vec![
            ("name", Term::Str("Contoso")),
            ("numberofemployees", Term::Num(12.0)),
        ]);
        for (text, expected) in [
            ("name eq 'CONTOSO'", true),
            ("name gt 'contoso'", false),
            ("numberofemployees ge 12", true),
            ("numberofemployees eq '12'", true),
            ("contains(name,'TOS')", true),
            ("endswith(name,'x')", false),
            ("description eq null", true),
            ("description ne null", false),
        ] {
            let expr = filter::parse(text, &|_| None).unwrap();
            let on_row = Filter::compile(&store, accounts, &expr, Caller::default())
                .unwrap()
                .matches(&store, &row);
            let on_record = Filter::for_records(&expr, Caller::default()).matches_record(&record);
            assert_eq!((on_row, on_record), (expected, expected), "{text}");
        }
    }
}
