//! STAGE 3 of a filter: a compiled `Filter` and one JSON item → whether the item matches.
//!
//! Input: the item as the endpoint returns it (`serde_json::Value`). Output: go-bexpr's
//! answer. Invariants: walks the item and the schema together as go-bexpr walks a Go value
//! with reflection: an omitted or mistyped field reads as its kind's zero value (`""`, 0,
//! false, empty); a selector through a list is true if it is true for any element (the
//! negated operators included: `Checks.Status != passing` means some check is not passing);
//! a missing map key makes `==`, `is not empty` and `in` false and the others true; a
//! selector through a nil pointer is an error (Consul's agent panics on it). `and`/`or`
//! short-circuit, so such an error only surfaces where evaluation reaches it.

use serde_json::Value;

use super::MatchOp;
use super::schema::{Check, Filter, Kind, Node, Operand};
use super::{gostr::quote, selector_text};

/// Evaluation failure: the selector passes through a field that is null on this item.
#[derive(Debug, thiserror::Error)]
#[error("Selector {selector} passes through {field}, which is null on this item")]
pub(crate) struct EvalError {
    selector: String,
    field: String,
}

impl Filter {
    /// Whether `item` matches.
    pub(crate) fn matches(&self, item: &Value) -> Result<bool, EvalError> {
        eval(&self.root, item, self.fields)
    }
}

fn eval(node: &Node, item: &Value, fields: &'static [super::Field]) -> Result<bool, EvalError> {
    Ok(match node {
        Node::Not(e) => !eval(e, item, fields)?,
        Node::And(l, r) => eval(l, item, fields)? && eval(r, item, fields)?,
        Node::Or(l, r) => eval(l, item, fields)? || eval(r, item, fields)?,
        Node::Check(c) => walk(c, 0, Some(item), &Kind::Struct(fields))?,
    })
}

/// go-bexpr's `evaluateMatchExpressionRecurse`: `value` is what the first `depth` parts of the
/// selector reached (`None`: omitted).
fn walk(c: &Check, depth: usize, value: Option<&Value>, kind: &Kind) -> Result<bool, EvalError> {
    let Some(part) = c.selector.get(depth) else {
        return Ok(leaf(c, value, kind));
    };
    match kind {
        Kind::Struct(fields) | Kind::Nullable(fields) => {
            let Some(field) = fields.iter().find(|f| f.name == part) else {
                return Ok(false);
            };
            let child = value.and_then(|v| v.get(field.name));
            if matches!(field.kind, Kind::Nullable(_)) && child.is_none_or(Value::is_null) {
                return Err(EvalError {
                    selector: quote(&selector_text(&c.selector)),
                    field: quote(&selector_text(&c.selector[..=depth])),
                });
            }
            walk(c, depth + 1, child, &field.kind)
        }
        Kind::List(fields) => {
            let element = Kind::Struct(fields);
            for item in value.and_then(Value::as_array).into_iter().flatten() {
                if walk(c, depth, Some(item), &element)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Kind::Map(inner) => match value.and_then(|v| v.get(part.as_str())) {
            Some(v) => walk(c, depth + 1, Some(v), inner),
            None => Ok(!matches!(c.op, MatchOp::Equal | MatchOp::IsNotEmpty | MatchOp::In)),
        },
        // Validation stops selectors at scalars; nothing to walk into.
        Kind::Str | Kind::Int | Kind::Bool | Kind::StrList => Ok(false),
    }
}

/// The operator applied where the selector ends.
fn leaf(c: &Check, value: Option<&Value>, kind: &Kind) -> bool {
    match c.op {
        MatchOp::Equal => equal(&c.operand, value),
        MatchOp::NotEqual => !equal(&c.operand, value),
        MatchOp::In => contains(&c.operand, value, kind),
        MatchOp::NotIn => !contains(&c.operand, value, kind),
        MatchOp::IsEmpty => len(value) == 0,
        MatchOp::IsNotEmpty => len(value) != 0,
        MatchOp::Matches => regex_match(&c.operand, value),
        MatchOp::NotMatches => !regex_match(&c.operand, value),
    }
}

fn text(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or_default()
}

fn int(value: Option<&Value>) -> i64 {
    value.and_then(|v| v.as_i64().or_else(|| v.as_u64().map(u64::cast_signed))).unwrap_or_default()
}

fn equal(operand: &Operand, value: Option<&Value>) -> bool {
    match operand {
        Operand::Str(s) => text(value) == s,
        Operand::Int(i) => int(value) == *i,
        Operand::Bool(b) => value.and_then(Value::as_bool).unwrap_or_default() == *b,
        Operand::None | Operand::Regex(_) => false,
    }
}

fn contains(operand: &Operand, value: Option<&Value>, kind: &Kind) -> bool {
    let Operand::Str(s) = operand else {
        return false;
    };
    match kind {
        Kind::Str => text(value).contains(s.as_str()),
        Kind::StrList => {
            value.and_then(Value::as_array).is_some_and(|a| a.iter().any(|e| e.as_str() == Some(s.as_str())))
        }
        Kind::Map(_) => value.and_then(Value::as_object).is_some_and(|m| m.contains_key(s.as_str())),
        _ => false,
    }
}

fn len(value: Option<&Value>) -> usize {
    match value {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(m)) => m.len(),
        Some(Value::String(s)) => s.len(),
        _ => 0,
    }
}

fn regex_match(operand: &Operand, value: Option<&Value>) -> bool {
    matches!(operand, Operand::Regex(re) if re.is_match(text(value)))
}
