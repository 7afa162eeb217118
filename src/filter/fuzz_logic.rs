//! FUZZING ENTRY: arbitrary bytes as a `?filter=` expression, which arrives over HTTP on every
//! list endpoint.
//!
//! Input: bytes (read as UTF-8, invalid sequences replaced). Output: nothing; it panics only
//! when an invariant breaks. A panic inside the parser, validator or evaluator is the other
//! finding.
//!
//! Invariants checked: an error text is never empty; a parsed tree prints as text that parses
//! back to the same tree; validation against a schema with every field kind either fails with
//! a message or yields a filter that evaluates a sample item without panicking, and `not e`
//! evaluates to the negation of `e`. Used by the cargo-fuzz target in `tests/fuzz/` and by the
//! proptests in `filter/tests.rs`.

use serde_json::{Value, json};

use super::{Expr, Field, Kind, compile, parse};

const ADDRESS: &[Field] = &[Field::new("Address", Kind::Str), Field::new("Port", Kind::Int)];
const CHECK: &[Field] = &[Field::new("Status", Kind::Str), Field::new("Tags", Kind::StrList)];

/// A schema with one field of every kind.
pub(crate) const SAMPLE: &[Field] = &[
    Field::new("Name", Kind::Str),
    Field::new("Port", Kind::Int),
    Field::new("On", Kind::Bool),
    Field::new("Tags", Kind::StrList),
    Field::new("Meta", Kind::Map(&Kind::Str)),
    Field::new("Addrs", Kind::Map(&Kind::Struct(ADDRESS))),
    Field::new("Main", Kind::Struct(ADDRESS)),
    Field::new("Maybe", Kind::Nullable(ADDRESS)),
    Field::new("Checks", Kind::List(CHECK)),
];

/// An item of `SAMPLE`.
pub(crate) fn sample_item() -> Value {
    json!({
        "Name": "web", "Port": 80, "On": true, "Tags": ["v1", "prod"],
        "Meta": {"env": "prod", "a b": "c"},
        "Addrs": {"lan": {"Address": "10.0.0.1", "Port": 8080}},
        "Main": {"Address": "10.0.0.2"},
        "Checks": [{"Status": "passing", "Tags": []}, {"Status": "critical"}],
    })
}

/// Parses `data` and checks the invariants above.
pub fn expression_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let expr = match parse(&text) {
        Ok(expr) => expr,
        Err(msg) => {
            assert!(!msg.is_empty(), "empty error for {text:?}");
            return;
        }
    };
    let printed = expr.to_string();
    match parse(&printed) {
        Ok(again) => assert_eq!(again, expr, "{text:?} printed as {printed:?}"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
    check_evaluation(&expr);
}

/// Validates `expr` against `SAMPLE` and evaluates it and its negation on the sample item.
pub(crate) fn check_evaluation(expr: &Expr) {
    let item = sample_item();
    match compile(expr, SAMPLE) {
        Err(msg) => assert!(!msg.is_empty()),
        Ok(f) => {
            let negated = compile(&Expr::Not(Box::new(expr.clone())), SAMPLE);
            let Ok(negated) = negated else {
                panic!("the negation of a valid expression is invalid");
            };
            match (f.matches(&item), negated.matches(&item)) {
                (Ok(a), Ok(b)) => assert_ne!(a, b, "not flips the answer"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("an expression and its negation disagree on failing: {a:?} {b:?}"),
            }
        }
    }
}
