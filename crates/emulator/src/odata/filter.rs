//! `$filter` syntax: a tokenizer and a precedence-climbing parser into [`Expr`].
//!
//! Grammar (Dataverse subset of OData v4): `or` < `and` < `not` < comparison; comparisons are
//! `eq ne gt ge lt le`; functions `contains`, `startswith`, `endswith`, the `Microsoft.Dynamics.CRM.*`
//! query functions `In`, `NotIn`, `Between`, `NotBetween`, and lambda `any`/`all` over
//! collection-valued navigation properties. No arithmetic, no `has`.

use crate::guid::Guid;

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Str(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    Guid(Guid),
    /// Seconds since the epoch; `date_only` when written as `YYYY-MM-DD`.
    Date(i64, bool),
    /// `Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'`: compared as its string.
    Enum(String),
}

/// An operand: a property path (`name`, `primarycontactid/fullname`, `o/name` in a lambda) or
/// a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Vec<String>),
    Lit(Lit),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// String functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrFn {
    Contains,
    StartsWith,
    EndsWith,
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(CmpOp, Operand, Operand),
    Str(StrFn, Operand, Operand),
    /// `In` / `NotIn` (negated) over a property and literal values.
    In(Vec<String>, Vec<Lit>, bool),
    /// `Between` / `NotBetween` (negated).
    Between(Vec<String>, Lit, Lit, bool),
    /// `nav/any(x: expr)` (`all` when the flag is set); `any()` has no body.
    Lambda {
        nav: String,
        var: String,
        body: Option<Box<Expr>>,
        all: bool,
    },
    /// A bare boolean property or literal (`creditonhold`, `true`).
    Operand(Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit(Lit),
    Open,
    Close,
    Comma,
    Colon,
    /// `[ ... ]` JSON-ish array for query-function parameters.
    Array(Vec<Lit>),
    Eq,
}

/// A `$filter` syntax error, with the message Dataverse-style clients expect.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError(pub String);

const NOT_EMULATED: &str = "the query function ";

impl SyntaxError {
    /// A query function of Dataverse's (the Web API Query Function Reference,
    /// learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/queryfunctions)
    /// that the emulator does not evaluate: answered 501 naming it, never as a syntax error a
    /// client would take for Dataverse's own.
    fn not_emulated(name: &str) -> SyntaxError {
        SyntaxError(format!("{NOT_EMULATED}{name}"))
    }

    /// The answer for this error: 400 as Dataverse answers a bad `$filter` (with `context`
    /// around the message), or 501 for [`SyntaxError::not_emulated`].
    pub fn into_dv_error(self, context: impl FnOnce(String) -> String) -> crate::error::DvError {
        if self.0.starts_with(NOT_EMULATED) {
            crate::error::DvError::not_implemented(self.0)
        } else {
            crate::error::DvError::bad_request(context(self.0))
        }
    }
}

fn is_guid_at(b: &[u8], i: usize) -> bool {
    if i + 36 > b.len() {
        return false;
    }
    for (k, &c) in b[i..i + 36].iter().enumerate() {
        let ok = if matches!(k, 8 | 13 | 18 | 23) {
            c == b'-'
        } else {
            c.is_ascii_hexdigit()
        };
        if !ok {
            return false;
        }
    }
    // Must not continue as an identifier.
    b.get(i + 36)
        .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
}

fn is_date_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + 10
        && b[i..i + 4].iter().all(u8::is_ascii_digit)
        && b[i + 4] == b'-'
        && b[i + 5..i + 7].iter().all(u8::is_ascii_digit)
        && b[i + 7] == b'-'
        && b[i + 8..i + 10].iter().all(u8::is_ascii_digit)
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, SyntaxError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => {
                out.push((Tok::Open, i));
                i += 1;
            }
            b')' => {
                out.push((Tok::Close, i));
                i += 1;
            }
            b',' => {
                out.push((Tok::Comma, i));
                i += 1;
            }
            b':' => {
                out.push((Tok::Colon, i));
                i += 1;
            }
            b'=' => {
                out.push((Tok::Eq, i));
                i += 1;
            }
            b'\'' => {
                let (s, next) = read_quoted(src, i)?;
                out.push((Tok::Lit(Lit::Str(s)), start));
                i = next;
            }
            b'[' => {
                let (lits, next) = read_array(src, i)?;
                out.push((Tok::Array(lits), start));
                i = next;
            }
            _ if is_guid_at(b, i) => {
                let g = Guid::parse(&src[i..i + 36]).ok_or_else(|| {
                    SyntaxError(format!(
                        "Unrecognized 'Edm.Guid' literal at position {i} in '{src}'."
                    ))
                })?;
                out.push((Tok::Lit(Lit::Guid(g)), start));
                i += 36;
            }
            _ if is_date_at(b, i) => {
                let mut j = i + 10;
                let mut date_only = true;
                if j < b.len() && (b[j] == b'T' || b[j] == b't') {
                    date_only = false;
                    j += 1;
                    while j < b.len()
                        && (b[j].is_ascii_digit()
                            || matches!(b[j], b':' | b'.' | b'Z' | b'z' | b'+' | b'-'))
                    {
                        j += 1;
                    }
                }
                let text = &src[i..j];
                let secs = crate::datetime::parse_iso(text).ok_or_else(|| {
                    SyntaxError(format!(
                        "Unrecognized 'Edm.DateTimeOffset' literal '{text}' at '{i}' in '{src}'."
                    ))
                })?;
                out.push((Tok::Lit(Lit::Date(secs, date_only)), start));
                i = j;
            }
            b'-' | b'0'..=b'9' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_digit() || matches!(b[j], b'.' | b'e' | b'E')) {
                    if matches!(b[j], b'e' | b'E')
                        && j + 1 < b.len()
                        && matches!(b[j + 1], b'+' | b'-')
                    {
                        j += 1;
                    }
                    j += 1;
                }
                let text = &src[i..j];
                // OData type suffixes (1.5M, 2L, 3.0d) are accepted and ignored.
                if j < b.len()
                    && matches!(b[j], b'M' | b'm' | b'L' | b'l' | b'd' | b'D' | b'f' | b'F')
                {
                    j += 1;
                }
                let lit = if text.contains(['.', 'e', 'E']) {
                    Lit::Num(text.parse().map_err(|_| bad_char(src, i))?)
                } else {
                    Lit::Int(text.parse().map_err(|_| bad_char(src, i))?)
                };
                out.push((Tok::Lit(lit), start));
                i = j;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c == b'$' => {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'_' | b'.' | b'/' | b'$'))
                {
                    j += 1;
                }
                let word = &src[i..j];
                // Enum literal: Namespace.Type'Member'
                if j < b.len() && b[j] == b'\'' && word.contains('.') {
                    let (member, next) = read_quoted(src, j)?;
                    out.push((Tok::Lit(Lit::Enum(member)), start));
                    i = next;
                    continue;
                }
                let tok = match word {
                    "null" => Tok::Lit(Lit::Null),
                    "true" => Tok::Lit(Lit::Bool(true)),
                    "false" => Tok::Lit(Lit::Bool(false)),
                    _ => Tok::Ident(word.to_string()),
                };
                out.push((tok, start));
                i = j;
            }
            _ => return Err(bad_char(src, i)),
        }
    }
    Ok(out)
}

fn bad_char(src: &str, i: usize) -> SyntaxError {
    let ch = src[i..].chars().next().unwrap_or(' ');
    SyntaxError(format!(
        "Syntax error: character '{ch}' is not valid at position {i} in '{src}'."
    ))
}

fn read_quoted(src: &str, start: usize) -> Result<(String, usize), SyntaxError> {
    let b = src.as_bytes();
    let mut s = String::new();
    let mut i = start + 1;
    let mut seg = i;
    loop {
        if i >= b.len() {
            return Err(SyntaxError(format!(
                "There is an unterminated literal at position {start} in '{src}'."
            )));
        }
        if b[i] == b'\'' {
            s.push_str(&src[seg..i]);
            if i + 1 < b.len() && b[i + 1] == b'\'' {
                s.push('\'');
                i += 2;
                seg = i;
                continue;
            }
            return Ok((s, i + 1));
        }
        i += 1;
    }
}

fn read_array(src: &str, start: usize) -> Result<(Vec<Lit>, usize), SyntaxError> {
    let end = src[start..].find(']').map(|e| start + e).ok_or_else(|| {
        SyntaxError(format!(
            "Invalid JSON. An unexpected end of input was found in '{src}'."
        ))
    })?;
    let inner = &src[start + 1..end];
    let mut lits = Vec::new();
    if !inner.trim().is_empty() {
        let json: serde_json::Value = serde_json::from_str(&src[start..=end])
            .or_else(|_| serde_json::from_str(&src[start..=end].replace('\'', "\"")))
            .map_err(|_| {
                SyntaxError(
                    "Invalid JSON. A comma character ',' was expected in scope 'Array'. Every two elements in an array and properties of an object must be separated by commas."
                        .into(),
                )
            })?;
        if let serde_json::Value::Array(items) = json {
            for item in items {
                lits.push(match item {
                    serde_json::Value::String(s) => Lit::Str(s),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => Lit::Int(i),
                        None => Lit::Num(n.as_f64().unwrap_or(0.0)),
                    },
                    serde_json::Value::Bool(b) => Lit::Bool(b),
                    _ => Lit::Null,
                });
            }
        }
    }
    Ok((lits, end + 1))
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    src: &'a str,
    aliases: &'a dyn Fn(&str) -> Option<String>,
    lambda_vars: Vec<String>,
    conditions: usize,
}

/// Parses a `$filter` value. `aliases` resolves `@p1`-style parameter aliases to their raw text.
pub fn parse(src: &str, aliases: &dyn Fn(&str) -> Option<String>) -> Result<Expr, SyntaxError> {
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Err(SyntaxError(format!(
            "Expression expected at position 0 in '{src}'."
        )));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        src,
        aliases,
        lambda_vars: Vec::new(),
        conditions: 0,
    };
    let e = p.or()?;
    if let Some((_, at)) = p.toks.get(p.pos) {
        return Err(SyntaxError(format!(
            "Syntax error at position {at} in '{src}'."
        )));
    }
    if p.conditions > 500 {
        return Err(SyntaxError(
            "Number of conditions in query exceeded maximum limit.".into(),
        ));
    }
    Ok(e)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(_, p)| *p)
            .unwrap_or(self.src.len())
    }

    fn err<T>(&self, what: &str) -> Result<T, SyntaxError> {
        Err(SyntaxError(format!(
            "{what} expected at position {} in '{}'.",
            self.at(),
            self.src
        )))
    }

    fn eat_ident(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.and()?;
        while self.eat_ident("or") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.unary()?;
        while self.eat_ident("and") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        if self.eat_ident("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SyntaxError> {
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let e = self.or()?;
            self.expect(Tok::Close, "')' or operator")?;
            return Ok(e);
        }
        // Functions and lambdas.
        if let Some(Tok::Ident(name)) = self.peek().cloned()
            && self.toks.get(self.pos + 1).map(|t| &t.0) == Some(&Tok::Open)
        {
            return self.function(&name);
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Ident(w)) => match w.as_str() {
                "eq" => Some(CmpOp::Eq),
                "ne" => Some(CmpOp::Ne),
                "gt" => Some(CmpOp::Gt),
                "ge" => Some(CmpOp::Ge),
                "lt" => Some(CmpOp::Lt),
                "le" => Some(CmpOp::Le),
                "has" | "add" | "sub" | "mul" | "div" | "mod" => {
                    return Err(SyntaxError(format!(
                        "The operator '{w}' is not supported at position {} in '{}'.",
                        self.at(),
                        self.src
                    )));
                }
                _ => None,
            },
            _ => None,
        };
        let Some(op) = op else {
            // A bare boolean operand is allowed when followed by a logical operator or the end.
            return match self.peek() {
                None | Some(Tok::Close) => Ok(Expr::Operand(left)),
                Some(Tok::Ident(w)) if w == "and" || w == "or" => Ok(Expr::Operand(left)),
                _ => self.err("')' or operator"),
            };
        };
        self.pos += 1;
        let right = self.operand()?;
        self.conditions += 1;
        Ok(Expr::Cmp(op, left, right))
    }

    fn operand(&mut self) -> Result<Operand, SyntaxError> {
        match self.peek().cloned() {
            Some(Tok::Lit(l)) => {
                self.pos += 1;
                Ok(Operand::Lit(l))
            }
            Some(Tok::Ident(w)) if w.starts_with('@') => {
                self.pos += 1;
                let raw = (self.aliases)(&w).unwrap_or_else(|| "null".into());
                let sub = tokenize(&raw)?;
                match sub.as_slice() {
                    [(Tok::Lit(l), _)] => Ok(Operand::Lit(l.clone())),
                    [(Tok::Ident(p), _)] => {
                        Ok(Operand::Path(p.split('/').map(String::from).collect()))
                    }
                    _ => Err(SyntaxError(format!(
                        "Invalid value for parameter alias '{w}'."
                    ))),
                }
            }
            Some(Tok::Ident(w)) => {
                self.pos += 1;
                Ok(Operand::Path(w.split('/').map(String::from).collect()))
            }
            _ => self.err("Expression"),
        }
    }

    fn args(&mut self) -> Result<Vec<Operand>, SyntaxError> {
        self.expect(Tok::Open, "'('")?;
        let mut args = Vec::new();
        if self.peek() == Some(&Tok::Close) {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.operand()?);
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::Close) => {
                    self.pos += 1;
                    return Ok(args);
                }
                _ => return self.err("',' or ')'"),
            }
        }
    }

    fn function(&mut self, name: &str) -> Result<Expr, SyntaxError> {
        let at = self.at();
        self.pos += 1;
        match name {
            "contains" | "startswith" | "endswith" => {
                let args = self.args()?;
                let [a, b]: [Operand; 2] = args.try_into().map_err(|_| {
                    SyntaxError(format!(
                        "The function '{name}' requires two arguments at position {at} in '{}'.",
                        self.src
                    ))
                })?;
                self.conditions += 1;
                let f = match name {
                    "contains" => StrFn::Contains,
                    "startswith" => StrFn::StartsWith,
                    _ => StrFn::EndsWith,
                };
                Ok(Expr::Str(f, a, b))
            }
            _ if name.starts_with("Microsoft.Dynamics.CRM.") => self.crm_function(name, at),
            _ if name.ends_with("/any") || name.ends_with("/all") => {
                let all = name.ends_with("/all");
                let nav = name[..name.len() - 4].to_string();
                self.expect(Tok::Open, "'('")?;
                if self.peek() == Some(&Tok::Close) {
                    self.pos += 1;
                    if all {
                        return self.err("Lambda variable");
                    }
                    return Ok(Expr::Lambda {
                        nav,
                        var: String::new(),
                        body: None,
                        all,
                    });
                }
                let var = match self.peek().cloned() {
                    Some(Tok::Ident(v)) => v,
                    _ => return self.err("Lambda variable"),
                };
                self.pos += 1;
                self.expect(Tok::Colon, "':'")?;
                self.lambda_vars.push(var.clone());
                let body = self.or()?;
                self.lambda_vars.pop();
                self.expect(Tok::Close, "')'")?;
                Ok(Expr::Lambda {
                    nav,
                    var,
                    body: Some(Box::new(body)),
                    all,
                })
            }
            _ => Err(SyntaxError(format!(
                "An unknown function with name '{name}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed."
            ))),
        }
    }

    fn crm_function(&mut self, name: &str, at: usize) -> Result<Expr, SyntaxError> {
        let short = &name["Microsoft.Dynamics.CRM.".len()..];
        self.expect(Tok::Open, "'('")?;
        let mut prop: Option<Vec<String>> = None;
        let mut values: Vec<Lit> = Vec::new();
        loop {
            let key = match self.peek().cloned() {
                Some(Tok::Ident(k)) => k,
                Some(Tok::Close) => {
                    self.pos += 1;
                    break;
                }
                _ => return self.err("Parameter name"),
            };
            self.pos += 1;
            self.expect(Tok::Eq, "'='")?;
            let value = match self.peek().cloned() {
                Some(Tok::Array(items)) => {
                    self.pos += 1;
                    items
                }
                _ => match self.operand()? {
                    Operand::Lit(l) => vec![l],
                    Operand::Path(p) => vec![Lit::Str(p.join("/"))],
                },
            };
            match key.as_str() {
                "PropertyName" => match value.first() {
                    Some(Lit::Str(s)) => prop = Some(s.split('/').map(String::from).collect()),
                    _ => return self.err("PropertyName string"),
                },
                _ => values.extend(value),
            }
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::Close) => {
                    self.pos += 1;
                    break;
                }
                _ => return self.err("',' or ')'"),
            }
        }
        let Some(prop) = prop else {
            return Err(SyntaxError(format!(
                "The function '{name}' requires PropertyName at position {at}."
            )));
        };
        self.conditions += 1;
        match short {
            "In" | "NotIn" => Ok(Expr::In(prop, values, short == "NotIn")),
            "Between" | "NotBetween" => {
                let [lo, hi]: [Lit; 2] = values.try_into().map_err(|_| {
                    SyntaxError(format!("The function '{name}' requires two values."))
                })?;
                Ok(Expr::Between(prop, lo, hi, short == "NotBetween"))
            }
            "Null" => Ok(Expr::Cmp(
                CmpOp::Eq,
                Operand::Path(prop),
                Operand::Lit(Lit::Null),
            )),
            "NotNull" => Ok(Expr::Cmp(
                CmpOp::Ne,
                Operand::Path(prop),
                Operand::Lit(Lit::Null),
            )),
            "EqualUserId" | "NotEqualUserId" | "EqualBusinessId" | "NotEqualBusinessId" => {
                // Resolved by the evaluator against the caller.
                let negate = short.starts_with("Not");
                let lit = Lit::Enum(if short.contains("User") {
                    "@caller".into()
                } else {
                    "@businessunit".into()
                });
                Ok(Expr::Cmp(
                    if negate { CmpOp::Ne } else { CmpOp::Eq },
                    Operand::Path(prop),
                    Operand::Lit(lit),
                ))
            }
            _ => Err(SyntaxError::not_emulated(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Expr, SyntaxError> {
        parse(s, &|_| None)
    }

    fn path(s: &str) -> Operand {
        Operand::Path(s.split('/').map(String::from).collect())
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let e = p("a eq 1 or b eq 2 and c eq 3").unwrap();
        let Expr::Or(_, right) = e else {
            panic!("expected or")
        };
        assert!(matches!(*right, Expr::And(..)));
    }

    #[test]
    fn doubled_quotes_escape_a_quote() {
        let e = p("lastname eq 'O''Bryan'").unwrap();
        assert_eq!(
            e,
            Expr::Cmp(
                CmpOp::Eq,
                path("lastname"),
                Operand::Lit(Lit::Str("O'Bryan".into()))
            )
        );
    }

    #[test]
    fn unterminated_literal_reports_its_position() {
        let err = p("lastname eq 'O'Bryan'").unwrap_err();
        assert!(
            err.0.contains("unterminated literal at position 20"),
            "{}",
            err.0
        );
    }

    #[test]
    fn guid_date_number_and_null_literals_are_typed() {
        let e = p("_primarycontactid_value eq a0dbf27c-8efb-e511-80d2-00155db07c77 and createdon ge 2026-01-01T00:00:00Z and revenue gt 1.5 and x ne null and d lt 2024-01-01").unwrap();
        let text = format!("{e:?}");
        assert!(text.contains("Guid(a0dbf27c-8efb-e511-80d2-00155db07c77)"));
        assert!(text.contains("Date(1767225600, false)"));
        assert!(text.contains("Num(1.5)"));
        assert!(text.contains("Null"));
        assert!(text.contains("Date(1704067200, true)"));
    }

    #[test]
    fn functions_not_and_parentheses_parse() {
        let e =
            p("(contains(name,'sample') or contains(name,'test')) and not startswith(name,'a')")
                .unwrap();
        assert!(
            matches!(e, Expr::And(ref l, ref r) if matches!(**l, Expr::Or(..)) && matches!(**r, Expr::Not(..)))
        );
    }

    #[test]
    fn lambda_and_query_functions_parse() {
        let e = p("Account_Tasks/any(t:t/subject eq 'x')").unwrap();
        assert!(matches!(e, Expr::Lambda { ref nav, all: false, .. } if nav == "Account_Tasks"));
        let e = p("Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=['1','2'])")
            .unwrap();
        assert_eq!(
            e,
            Expr::In(
                vec!["statuscode".into()],
                vec![Lit::Str("1".into()), Lit::Str("2".into())],
                false
            )
        );
        let e = p("Microsoft.Dynamics.CRM.Between(PropertyName='numberofemployees',PropertyValues=[\"5\",\"2000\"])").unwrap();
        assert!(matches!(e, Expr::Between(..)));
    }

    #[test]
    fn enum_literals_and_aliases_resolve() {
        let e = p("OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'").unwrap();
        assert_eq!(
            e,
            Expr::Cmp(
                CmpOp::Eq,
                path("OwnershipType"),
                Operand::Lit(Lit::Enum("UserOwned".into()))
            )
        );
        let e = parse("@p1 ne @p3", &|a| {
            (a == "@p1").then(|| "revenue".to_string())
        })
        .unwrap();
        assert_eq!(
            e,
            Expr::Cmp(CmpOp::Ne, path("revenue"), Operand::Lit(Lit::Null))
        );
    }

    #[test]
    fn malformed_filters_are_syntax_errors() {
        for bad in [
            "name eqq 'x'",
            "name eq",
            "(name eq 'x'",
            "name eq 'x')",
            "revenue add 1 eq 2",
            "",
            "name eq `x`",
        ] {
            assert!(p(bad).is_err(), "{bad} should fail");
        }
    }
}
