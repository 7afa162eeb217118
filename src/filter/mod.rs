//! Consul's `?filter=` expressions: HashiCorp go-bexpr 0.1.2's grammar and semantics (what
//! Consul 1.8.7 vendors), over JSON values described by a static schema of Consul's structs.
//!
//! ```text
//! text --parse--> Expr --compile(schema)--> Filter --matches(item: &serde_json::Value)--> bool
//! ```
//!
//! Stages: `parse` (the PEG grammar with pigeon's error reporting), `schema` (the schema
//! types and the validation go-bexpr runs when a filter is created: selectors, operators per
//! field kind, value coercion, regular expressions), `eval` (go-bexpr's evaluation: `in` on
//! strings is a substring test, on lists membership, on maps a key test; a selector through a
//! list matches if any element does; a missing map key makes `==`, `is not empty` and `in`
//! false and every other operator true).
//!
//! Invariants: pure (no IO, no clock); no input panics it (fuzzed: `fuzz_logic`); every error
//! text is go-bexpr's, except where noted: nesting deeper than `parse::MAX_NESTING`, a
//! selector through a null pointer (Consul's agent panics there and drops the connection), and
//! regular-expression errors other than the common ones `schema` maps to Go's wording.
//!
//! Why own code rather than a crate: no Rust crate implements go-bexpr; Consul's clients need
//! its grammar (`contains`, `is not empty`, backquoted strings, `Meta["k"]`), its coercions
//! (a number written as a string compares with an int field, `0x50` parses as in Go) and its
//! exact error texts (Consul answers them verbatim), which a generic expression crate (evalexpr,
//! cel) would change. A parser generator (pest, peg) would give its own error reports, not
//! pigeon's `1:11 (10): no match found, expected: …`, so the grammar is written out by hand
//! in `parse`, rule for rule. Evaluating on the endpoint's JSON rather than on typed structs
//! keeps one evaluator for every endpoint; Consul evaluates on Go structs whose field names are
//! the JSON names cairn returns, and the schema supplies what JSON alone cannot (a field's
//! kind and zero value when omitted, which fields are selectable, which are nil-able pointers).

mod eval;
pub mod fuzz_logic;
mod gostr;
mod parse;
mod peg;
mod schema;
#[cfg(test)]
mod tests;

use std::fmt;

pub(crate) use parse::parse;
pub(crate) use schema::{Field, Filter, Kind, compile};

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// A single match.
    Match(Match),
    /// `not e`.
    Not(Box<Self>),
    /// `l and r`.
    And(Box<Self>, Box<Self>),
    /// `l or r`.
    Or(Box<Self>, Box<Self>),
}

/// `<selector> <op> <value>`, `<value> in <selector>` or `<selector> is [not] empty`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Match {
    /// Path into the item: field names and map keys.
    pub(crate) selector: Vec<String>,
    /// The operator (`contains` is `In`).
    pub(crate) op: MatchOp,
    /// The raw value (a selector used as a value is its parts joined by `.`); none for the
    /// emptiness operators.
    pub(crate) value: Option<String>,
}

/// go-bexpr's match operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `in`, `contains`
    In,
    /// `not in`, `not contains`
    NotIn,
    /// `is empty`
    IsEmpty,
    /// `is not empty`
    IsNotEmpty,
    /// `matches`
    Matches,
    /// `not matches`
    NotMatches,
}

impl MatchOp {
    /// go-bexpr's name in error messages (`Invalid match operator "In" …`).
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            Self::Equal => "Equal",
            Self::NotEqual => "Not Equal",
            Self::In => "In",
            Self::NotIn => "Not In",
            Self::IsEmpty => "Is Empty",
            Self::IsNotEmpty => "Is Not Empty",
            Self::Matches => "Matches",
            Self::NotMatches => "Not Matches",
        }
    }
}

/// go-bexpr's `Selector.String()`: the parts joined by `.`.
pub(crate) fn selector_text(parts: &[String]) -> String {
    parts.join(".")
}

/// Whether `s` is an `Identifier` (`[a-zA-Z][a-zA-Z0-9_]*`).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for Match {
    /// The canonical text that parses back to this match (identifiers dotted, other keys
    /// indexed, values double-quoted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sel = String::new();
        for (i, part) in self.selector.iter().enumerate() {
            if i > 0 && is_identifier(part) {
                sel.push('.');
                sel.push_str(part);
            } else if i > 0 {
                sel.push_str(&format!("[{}]", gostr::literal(part)));
            } else {
                sel.push_str(part);
            }
        }
        let value = self.value.as_deref().map(gostr::literal).unwrap_or_default();
        match self.op {
            MatchOp::Equal => write!(f, "{sel} == {value}"),
            MatchOp::NotEqual => write!(f, "{sel} != {value}"),
            MatchOp::In => write!(f, "{value} in {sel}"),
            MatchOp::NotIn => write!(f, "{value} not in {sel}"),
            MatchOp::IsEmpty => write!(f, "{sel} is empty"),
            MatchOp::IsNotEmpty => write!(f, "{sel} is not empty"),
            MatchOp::Matches => write!(f, "{sel} matches {value}"),
            MatchOp::NotMatches => write!(f, "{sel} not matches {value}"),
        }
    }
}

impl fmt::Display for Expr {
    /// Text that parses back to this tree, with parentheses only where precedence needs them
    /// (so the text nests no deeper than the tree).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn wrapped(e: &Expr, paren: bool) -> String {
            if paren { format!("({e})") } else { e.to_string() }
        }
        let binary = |e: &Self| matches!(e, Self::And(..) | Self::Or(..));
        match self {
            Self::Match(m) => write!(f, "{m}"),
            Self::Not(e) => write!(f, "not {}", wrapped(e, binary(e))),
            Self::And(l, r) => {
                write!(f, "{} and {}", wrapped(l, binary(l)), wrapped(r, matches!(**r, Self::Or(..))))
            }
            Self::Or(l, r) => write!(f, "{} or {r}", wrapped(l, matches!(**l, Self::Or(..)))),
        }
    }
}
