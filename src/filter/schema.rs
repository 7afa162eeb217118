//! STAGE 2 of a filter: a parsed `Expr` checked against the schema of the filtered items →
//! a `Filter` ready to evaluate (go-bexpr's `validate`, run when Consul creates a filter).
//!
//! Input: the tree and the item's fields. Output: the tree with every value coerced to its
//! field's kind (Go's `ParseInt(v, 0, 64)`, `ParseBool`) and every regular expression compiled,
//! or go-bexpr's error text (`Selector "Foo" is not valid`, `Invalid match operator "In" for
//! selector "Port"`, `Failed to coerce value …`, `Failed to compile regular expression …`).
//! Invariants: checks run left to right, depth first, and the first failure is the answer, as
//! in go-bexpr; the operators a kind supports are go-bexpr's (`generateFieldConfiguration`).

use regex::Regex;

use super::gostr::{parse_bool, parse_int, quote};
use super::{Expr, MatchOp, selector_text};

/// The kind of a field of a Consul struct, as go-bexpr derives its configuration.
#[derive(Debug)]
pub(crate) enum Kind {
    /// `string`
    Str,
    /// `int` (and the other integer types)
    Int,
    /// `bool`
    Bool,
    /// `[]string`
    StrList,
    /// `map[string]T`: indexable by any key.
    Map(&'static Self),
    /// A struct value.
    Struct(&'static [Field]),
    /// A pointer to a struct that may be nil.
    Nullable(&'static [Field]),
    /// `[]S` for a struct `S`: a selector through it matches if any element does.
    List(&'static [Field]),
}

/// One selectable field: its name in selectors (and in the JSON item) and its kind.
#[derive(Debug)]
pub(crate) struct Field {
    /// Name.
    pub(crate) name: &'static str,
    /// Kind.
    pub(crate) kind: Kind,
}

impl Field {
    /// A field.
    pub(crate) const fn new(name: &'static str, kind: Kind) -> Self {
        Self { name, kind }
    }
}

/// A match's value after coercion.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    /// `is empty`, `is not empty`.
    None,
    /// A string (string fields, list elements, map keys).
    Str(String),
    /// An integer field's value.
    Int(i64),
    /// A boolean field's value.
    Bool(bool),
    /// `matches` and `not matches`.
    Regex(Regex),
}

/// A compiled match.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) selector: Vec<String>,
    pub(crate) op: MatchOp,
    pub(crate) operand: Operand,
}

/// A compiled expression tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Check(Check),
    Not(Box<Self>),
    And(Box<Self>, Box<Self>),
    Or(Box<Self>, Box<Self>),
}

/// An expression validated against a schema, ready to evaluate items of that schema.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) root: Node,
    pub(crate) fields: &'static [Field],
}

/// Validates `expr` against items with `fields` (go-bexpr's `validate`).
pub(crate) fn compile(expr: &Expr, fields: &'static [Field]) -> Result<Filter, String> {
    Ok(Filter { root: node(expr, fields)?, fields })
}

fn node(expr: &Expr, fields: &'static [Field]) -> Result<Node, String> {
    Ok(match expr {
        Expr::Not(e) => Node::Not(Box::new(node(e, fields)?)),
        Expr::And(l, r) => Node::And(Box::new(node(l, fields)?), Box::new(node(r, fields)?)),
        Expr::Or(l, r) => Node::Or(Box::new(node(l, fields)?), Box::new(node(r, fields)?)),
        Expr::Match(m) => {
            let kind = resolve(&m.selector, fields)?;
            let sel = quote(&selector_text(&m.selector));
            if !supports(kind).contains(&m.op) {
                return Err(format!("Invalid match operator {} for selector {sel}", quote(m.op.go_name())));
            }
            let operand = match &m.value {
                None => Operand::None,
                Some(raw) => {
                    let coerced = coerce(kind, raw).map_err(|e| {
                        format!("Failed to coerce value {} for selector {sel}: {e}", quote(raw))
                    })?;
                    if matches!(m.op, MatchOp::Matches | MatchOp::NotMatches) {
                        Operand::Regex(regex(raw)?)
                    } else {
                        coerced
                    }
                }
            };
            Node::Check(Check { selector: m.selector.clone(), op: m.op, operand })
        }
    })
}

/// The kind a selector ends at, or `Selector "…" is not valid` naming the first bad prefix.
fn resolve(selector: &[String], fields: &'static [Field]) -> Result<&'static Kind, String> {
    let mut here: Option<&'static Kind> = None;
    for (i, part) in selector.iter().enumerate() {
        let next = match here {
            None => lookup(fields, part),
            Some(Kind::Struct(f) | Kind::Nullable(f) | Kind::List(f)) => lookup(f, part),
            Some(Kind::Map(inner)) => Some(*inner),
            Some(_) => None,
        };
        match next {
            Some(k) => here = Some(k),
            None => return Err(format!("Selector {} is not valid", quote(&selector_text(&selector[..=i])))),
        }
    }
    here.ok_or_else(|| format!("Invalid selector: {}", quote("")))
}

fn lookup(fields: &'static [Field], name: &str) -> Option<&'static Kind> {
    fields.iter().find(|f| f.name == name).map(|f| &f.kind)
}

/// The operators go-bexpr allows on a field of `kind`.
fn supports(kind: &Kind) -> &'static [MatchOp] {
    use MatchOp::*;
    match kind {
        Kind::Str => &[Equal, NotEqual, In, NotIn, Matches, NotMatches],
        Kind::Int | Kind::Bool => &[Equal, NotEqual],
        Kind::StrList | Kind::Map(_) => &[In, NotIn, IsEmpty, IsNotEmpty],
        Kind::List(_) => &[IsEmpty, IsNotEmpty],
        Kind::Struct(_) | Kind::Nullable(_) => &[],
    }
}

/// The field's coercion of a raw value (strings for string-keyed containers).
fn coerce(kind: &Kind, raw: &str) -> Result<Operand, String> {
    Ok(match kind {
        Kind::Int => Operand::Int(parse_int(raw)?),
        Kind::Bool => Operand::Bool(parse_bool(raw)?),
        _ => Operand::Str(raw.to_owned()),
    })
}

/// Compiles a `matches` pattern; errors in Go's words where the mistake is a common one.
fn regex(raw: &str) -> Result<Regex, String> {
    let go = |what: String| {
        format!("Failed to compile regular expression {}: error parsing regexp: {what}", quote(raw))
    };
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(raw) {
        let span = e.span();
        let at = raw.get(span.start.offset..span.end.offset).unwrap_or_default();
        let from = raw.get(span.start.offset..).unwrap_or_default();
        use regex_syntax::ast::ErrorKind as K;
        return Err(go(match e.kind() {
            K::GroupUnclosed => format!("missing closing ): `{raw}`"),
            K::GroupUnopened => format!("unexpected ): `{raw}`"),
            K::ClassUnclosed => format!("missing closing ]: `{from}`"),
            K::RepetitionMissing => {
                format!("missing argument to repetition operator: `{}`", repetition(from))
            }
            K::EscapeUnrecognized => format!("invalid escape sequence: `{at}`"),
            K::EscapeUnexpectedEof => "trailing backslash at end of expression: ``".to_owned(),
            K::ClassRangeInvalid => format!("invalid character class range: `{at}`"),
            K::RepetitionCountInvalid => format!("invalid repeat count: `{at}`"),
            other => other.to_string(),
        }));
    }
    Regex::new(raw).map_err(|e| go(e.to_string()))
}

/// The repetition operator `text` starts with (`*`, `+`, `?` or a `{…}` count).
fn repetition(text: &str) -> &str {
    match text.find('}') {
        Some(end) if text.starts_with('{') => &text[..=end],
        _ => text.get(..text.chars().next().map_or(0, char::len_utf8)).unwrap_or_default(),
    }
}
