//! "Filter rows" of the row-changed trigger: an OData `$filter` the row must satisfy after the
//! change. Power Automate evaluates it in the service; a webhook step has no such condition, so
//! the component evaluates it on the image the step sends (the post image, or the pre image of
//! a delete). The subset is what a condition on one row needs: `eq ne gt ge lt le`, `and or not`,
//! parentheses, `contains` / `startswith` / `endswith`, string (`'O''Neil'`), number, GUID,
//! `true` / `false` / `null` literals, and `_column_value` for a lookup's ID. Text compares
//! without regard to case, as Dataverse's default collation does.

use serde_json::{Map, Value};

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(String, Op, Literal),
    Function(Function, String, String),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => value.push(other),
                        None => return Err("has a string literal without its closing quote".into()),
                    }
                }
                out.push(Token::Text(value));
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+') => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+') {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            other => {
                return Err(format!(
                    "has a character OData does not allow here: {other:?}"
                ));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.at) {
            Some(Token::Word(word)) => Some(word),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, wanted: Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(token) if token == wanted => Ok(()),
            _ => Err(format!("expects {what}")),
        }
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.peek_word() == Some("or") {
            self.at += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.unary()?;
        while self.peek_word() == Some("and") {
            self.at += 1;
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, String> {
        if self.peek_word() == Some("not") {
            self.at += 1;
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::Close, "a closing parenthesis")?;
            return Ok(inner);
        }
        let name = match self.next() {
            Some(Token::Word(word)) => word,
            _ => return Err("expects a column name, not, or a parenthesis".into()),
        };
        let function = match name.as_str() {
            "contains" => Some(Function::Contains),
            "startswith" => Some(Function::StartsWith),
            "endswith" => Some(Function::EndsWith),
            _ => None,
        };
        if let Some(function) = function {
            self.expect(Token::Open, &format!("an opening parenthesis after {name}"))?;
            let column = match self.next() {
                Some(Token::Word(column)) if is_column(&column) => column,
                _ => return Err(format!("expects a column as the first argument of {name}")),
            };
            self.expect(Token::Comma, &format!("a comma in {name}"))?;
            let text = match self.next() {
                Some(Token::Text(text)) => text,
                _ => return Err(format!("expects a string as the second argument of {name}")),
            };
            self.expect(Token::Close, &format!("a closing parenthesis after {name}"))?;
            return Ok(Condition::Function(function, column.to_lowercase(), text));
        }
        if !is_column(&name) {
            return Err(format!("names {name:?}, which is not a column name"));
        }
        let op = match self.next() {
            Some(Token::Word(op)) => match op.as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                other => {
                    return Err(format!(
                        "has {other:?} after {name}; expected eq, ne, gt, ge, lt or le"
                    ));
                }
            },
            _ => return Err(format!("expects eq, ne, gt, ge, lt or le after {name}")),
        };
        let literal = match self.next() {
            Some(Token::Text(text)) => Literal::Text(text),
            Some(Token::Word(word)) => match word.as_str() {
                "null" => Literal::Null,
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                _ if dataverse::guid::is_guid(&word) => Literal::Text(word),
                _ => word.parse::<f64>().map(Literal::Number).map_err(|_| {
                    format!("compares {name} with {word:?}, which is not a literal (quote text as 'text')")
                })?,
            },
            _ => return Err(format!("expects a value after {name}")),
        };
        Ok(Condition::Compare(name.to_lowercase(), op, literal))
    }
}

fn is_column(word: &str) -> bool {
    word.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a filter; the error says what is wrong, for the input's message.
pub fn parse(text: &str) -> Result<Condition, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    if parser.tokens.is_empty() {
        return Err("is empty".into());
    }
    let condition = parser.or()?;
    if parser.at < parser.tokens.len() {
        return Err("has text after the end of its condition".into());
    }
    Ok(condition)
}

/// The columns the image must hold to evaluate the condition (`_x_value` reads column x).
pub fn columns(condition: &Condition, out: &mut Vec<String>) {
    let mut add = |name: &str| {
        let column = image_column(name).to_string();
        if !out.contains(&column) {
            out.push(column);
        }
    };
    match condition {
        Condition::Compare(name, _, _) | Condition::Function(_, name, _) => add(name),
        Condition::And(a, b) | Condition::Or(a, b) => {
            columns(a, out);
            columns(b, out);
        }
        Condition::Not(inner) => columns(inner, out),
    }
}

fn image_column(name: &str) -> &str {
    name.strip_prefix('_')
        .and_then(|rest| rest.strip_suffix("_value"))
        .unwrap_or(name)
}

/// Whether the row (an image's columns, as the webhook event gives them) satisfies it.
pub fn matches(condition: &Condition, row: &Map<String, Value>) -> bool {
    match condition {
        Condition::And(a, b) => matches(a, row) && matches(b, row),
        Condition::Or(a, b) => matches(a, row) || matches(b, row),
        Condition::Not(inner) => !matches(inner, row),
        Condition::Function(function, name, text) => {
            let Some(Value::String(value)) = value_of(row, name) else {
                return false;
            };
            let (value, text) = (value.to_lowercase(), text.to_lowercase());
            match function {
                Function::Contains => value.contains(&text),
                Function::StartsWith => value.starts_with(&text),
                Function::EndsWith => value.ends_with(&text),
            }
        }
        Condition::Compare(name, op, literal) => {
            let value = value_of(row, name).unwrap_or(Value::Null);
            let ordering = match (&value, literal) {
                (Value::Null, Literal::Null) => Some(std::cmp::Ordering::Equal),
                (Value::Null, _) | (_, Literal::Null) => None,
                (Value::String(a), Literal::Text(b)) => {
                    Some(a.to_lowercase().cmp(&b.to_lowercase()))
                }
                (Value::Number(a), Literal::Number(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
                (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
                _ => None,
            };
            match (op, ordering) {
                (Op::Eq, Some(order)) => order.is_eq(),
                // Null is unequal to any value, and a value of another type is unequal too.
                (Op::Ne, order) => !order.is_some_and(|order| order.is_eq()),
                (Op::Gt, Some(order)) => order.is_gt(),
                (Op::Ge, Some(order)) => order.is_ge(),
                (Op::Lt, Some(order)) => order.is_lt(),
                (Op::Le, Some(order)) => order.is_le(),
                _ => false,
            }
        }
    }
}

/// A column's value; a lookup (`{id, logicalName, name}`) is its ID.
fn value_of(row: &Map<String, Value>, name: &str) -> Option<Value> {
    let value = row.get(image_column(name))?;
    Some(match value {
        Value::Object(lookup) => lookup.get("id").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row() -> Map<String, Value> {
        json!({"name": "Contoso Ltd", "revenue": 5000, "statecode": 0, "donotemail": false, "description": null,
               "primarycontactid": {"id": "00000000-0000-0000-0000-0000000000c1", "logicalName": "contact", "name": "X"}})
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn conditions_read_the_row_as_dataverse_compares_it() {
        let cases = [
            ("name eq 'contoso ltd'", true),
            ("revenue gt 4000 and statecode eq 0", true),
            (
                "revenue ge 5000 and (statecode eq 1 or donotemail eq false)",
                true,
            ),
            ("not (revenue lt 6000)", false),
            ("description eq null", true),
            ("description ne 'x'", true),
            ("revenue eq 'text'", false),
            (
                "contains(name, 'TOSO') and startswith(name,'con') and endswith(name, 'ltd')",
                true,
            ),
            (
                "_primarycontactid_value eq 00000000-0000-0000-0000-0000000000c1",
                true,
            ),
            ("missing eq null", true),
            ("name eq 'O''Neil'", false),
        ];
        for (text, expected) in cases {
            let condition = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(matches(&condition, &row()), expected, "{text}");
        }
    }

    #[test]
    fn malformed_filters_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("name eq 'open", "closing quote"),
            ("name is 'x'", "expected eq"),
            ("name eq", "expects a value"),
            ("name eq Contoso", "not a literal"),
            ("(name eq 'x'", "closing parenthesis"),
            ("name eq 'x' extra", "after the end"),
            ("name eq 'x' ; drop", "character"),
        ] {
            let problem = parse(text).unwrap_err();
            assert!(problem.contains(says), "{text}: {problem}");
        }
    }

    #[test]
    fn the_image_holds_the_columns_the_filter_reads() {
        let mut out = Vec::new();
        columns(
            &parse("name eq 'a' and (_parentaccountid_value eq null or name ne 'b')").unwrap(),
            &mut out,
        );
        assert_eq!(out, vec!["name".to_string(), "parentaccountid".to_string()]);
    }
}
