//! Unit tests and proptests of `?filter=` expressions: parse errors byte for byte as go-bexpr
//! 0.1.2 gives them (recorded from Consul 1.8.7), validation, evaluation, and the fuzz
//! invariants on generated input.

use proptest::prelude::*;
use serde_json::json;

use super::fuzz_logic::{SAMPLE, check_evaluation, expression_text, sample_item};
use super::gostr::{parse_int, quote, unquote};
use super::parse::MAX_NESTING;
use super::{Expr, Match, MatchOp, compile, parse};

fn matches(expr: &str) -> bool {
    let e = parse(expr).unwrap();
    compile(&e, SAMPLE).unwrap().matches(&sample_item()).unwrap()
}

fn invalid(expr: &str) -> String {
    match parse(expr) {
        Err(e) => e,
        Ok(e) => compile(&e, SAMPLE).unwrap_err(),
    }
}

#[test]
fn parse_errors_are_go_bexpr_texts() {
    // (expression, Consul 1.8.7's text after "Failed to create boolean expression evaluator: ")
    let cases = [
        (
            "Service ==",
            r#"1:11 (10): no match found, expected: "-", "0", "\"", "`", [ \t\r\n], [1-9] or [a-zA-Z]"#,
        ),
        (
            "Service =",
            r#"1:9 (8): no match found, expected: "!=", "==", "contains", "in", "is", "matches", "not" or [ \t\r\n]"#,
        ),
        ("(Service == web", r#"1:16 (15): rule "grouping": Unmatched parentheses"#),
        ("((Service == web)", r#"1:18 (17): rule "grouping": Unmatched parentheses"#),
        ("(Service == web))", r#"1:17 (16): no match found, expected: [ \t\r\n] or EOF"#),
        (
            "Service == web)",
            r#"1:15 (14): no match found, expected: ".", "[", [ \t\r\n], [a-zA-Z0-9_] or EOF"#,
        ),
        (r#"Service == "a\q""#, r#"1:12 (11): rule "string": invalid syntax"#),
        (r#"Service == "a\""#, r#"1:12 (11): rule "string": invalid syntax"#),
        (r#"Service == "abc"#, r#"1:16 (15): rule "string": Unterminated string literal"#),
        ("Service == `abc", r#"1:16 (15): rule "string": Unterminated string literal"#),
        ("Service == 80abc", r#"1:14 (13): rule "number": Invalid number literal"#),
        ("Port == 0x50", r#"1:10 (9): rule "number": Invalid number literal"#),
        ("Meta[env] == prod", r#"1:6 (5): rule "index": Invalid index"#),
        (r#"Meta["env" == prod"#, r#"1:12 (11): rule "index": Unclosed index expression"#),
        (r#"Meta.missing not in "x""#, r#"1:21 (20): rule "match": Invalid selector"#),
        ("Service == web or", r#"1:18 (17): no match found, expected: [ \t\r\n]"#),
        ("and", r#"1:4 (3): no match found, expected: "!=", ".", "==", "[", [ \t\r\n] or [a-zA-Z0-9_]"#),
        (
            "()",
            r#"1:2 (1): no match found, expected: "(", "-", "0", "\"", "`", "not", [ \t\r\n], [1-9] or [a-zA-Z]"#,
        ),
        (
            ")",
            r#"1:1 (0): no match found, expected: "(", "-", "0", "\"", "`", "not", [ \t\r\n], [1-9] or [a-zA-Z]"#,
        ),
        (
            "   ",
            r#"1:4 (3): no match found, expected: "(", "-", "0", "\"", "`", "not", [ \t\r\n], [1-9] or [a-zA-Z]"#,
        ),
        ("web in 5", r#"1:8 (7): rule "match": Invalid selector"#),
        ("Service == \"a\nb\"", r#"1:12 (11): rule "string": invalid syntax"#),
        ("Tags contains\"v1\"", r#"1:14 (13): no match found, expected: [ \t\r\n]"#),
    ];
    for (expr, want) in cases {
        assert_eq!(parse(expr).unwrap_err(), want, "{expr:?}");
    }
}

#[test]
fn grammar_accepts_consuls_forms() {
    let m = |selector: &[&str], op, value: Option<&str>| {
        Expr::Match(Match {
            selector: selector.iter().map(|s| (*s).to_owned()).collect(),
            op,
            value: value.map(str::to_owned),
        })
    };
    assert_eq!(parse("Service==web").unwrap(), m(&["Service"], MatchOp::Equal, Some("web")));
    assert_eq!(parse(r#"Meta["a b"] != `x`"#).unwrap(), m(&["Meta", "a b"], MatchOp::NotEqual, Some("x")));
    assert_eq!(parse("v1 in Tags").unwrap(), m(&["Tags"], MatchOp::In, Some("v1")));
    assert_eq!(parse("Tags not contains v1").unwrap(), m(&["Tags"], MatchOp::NotIn, Some("v1")));
    assert_eq!(parse("Tags is  not\tempty").unwrap(), m(&["Tags"], MatchOp::IsNotEmpty, None));
    assert_eq!(parse("Port == -1.5").unwrap(), m(&["Port"], MatchOp::Equal, Some("-1.5")));
    assert_eq!(parse("Service == a.b").unwrap(), m(&["Service"], MatchOp::Equal, Some("a.b")));
    assert_eq!(parse("not not Port == 1").unwrap(), m(&["Port"], MatchOp::Equal, Some("1")));
    let chain = parse("a == 1 and b == 2 or not c == 3").unwrap();
    assert!(
        matches!(chain, Expr::Or(ref l, ref r) if matches!(**l, Expr::And(..)) && matches!(**r, Expr::Not(_)))
    );
}

#[test]
fn validation_errors_are_go_bexpr_texts() {
    assert_eq!(invalid("Foo == 1"), r#"Selector "Foo" is not valid"#);
    assert_eq!(invalid("Name == web and Foo.Bar == 1"), r#"Selector "Foo" is not valid"#);
    assert_eq!(invalid("Meta.env.x == 1"), r#"Selector "Meta.env.x" is not valid"#);
    assert_eq!(invalid("Port contains 8"), r#"Invalid match operator "In" for selector "Port""#);
    assert_eq!(invalid("Meta.env is empty"), r#"Invalid match operator "Is Empty" for selector "Meta.env""#);
    assert_eq!(invalid("Main == 1"), r#"Invalid match operator "Equal" for selector "Main""#);
    assert_eq!(
        invalid("Port == abc"),
        r#"Failed to coerce value "abc" for selector "Port": strconv.ParseInt: parsing "abc": invalid syntax"#
    );
    assert_eq!(
        invalid(r#"Port == "99999999999999999999""#),
        r#"Failed to coerce value "99999999999999999999" for selector "Port": strconv.ParseInt: parsing "99999999999999999999": value out of range"#
    );
    assert_eq!(
        invalid(r#"On == "yes""#),
        r#"Failed to coerce value "yes" for selector "On": strconv.ParseBool: parsing "yes": invalid syntax"#
    );
    for (re, go) in [
        ("(", "missing closing ): `(`"),
        ("a)", "unexpected ): `a)`"),
        ("[a", "missing closing ]: `[a`"),
        ("*", "missing argument to repetition operator: `*`"),
        (r"\\q", r"invalid escape sequence: `\q`"),
    ] {
        let want = format!(
            "Failed to compile regular expression {}: error parsing regexp: {go}",
            quote(&unquote(&format!("\"{re}\"")).unwrap())
        );
        assert_eq!(invalid(&format!("Name matches \"{re}\"")), want);
    }
}

#[test]
fn evaluation_follows_go_bexpr() {
    assert!(matches("Name == web and Port == 80 and On == true"));
    assert!(matches(r#"Port == "0x50" and Port != "1_0" and On == 1"#));
    assert!(matches("v1 in Tags and prod in Tags and v2 not in Tags"));
    assert!(matches("eb in Name and Name contains we"));
    assert!(matches(r#"env in Meta and Meta["a b"] == c and "x" not in Meta"#));
    assert!(matches(r#"Meta.env matches "^pr" and Name not matches "^db""#));
    // A missing key: ==, is not empty and in are false; everything else is true.
    assert!(!matches("Meta.none == x") && matches("Meta.none != x") && matches(r#"Meta.none matches "x""#));
    assert!(matches(r#"Meta.none not matches "x""#));
    assert!(matches("Addrs.lan.Port == 8080 and Addrs.wan.Port != 1"));
    // Omitted fields read as zero values.
    assert!(matches("Main.Port == 0 and Main.Address == \"10.0.0.2\""));
    // Through a list: any element.
    assert!(matches("Checks.Status == passing and Checks.Status == critical and Checks.Status != passing"));
    assert!(matches("Checks.Tags is empty and Checks is not empty and not Checks is empty"));
    assert!(!matches("Checks.Status == warning"));
    assert!(matches("Tags is not empty and Meta is not empty"));
}

#[test]
fn a_selector_through_a_null_pointer_is_an_error_where_reached() {
    let f = compile(&parse("Maybe.Port == 1").unwrap(), SAMPLE).unwrap();
    let err = f.matches(&sample_item()).unwrap_err().to_string();
    assert_eq!(err, r#"Selector "Maybe.Port" passes through "Maybe", which is null on this item"#);
    let short = compile(&parse("Port == 1 and Maybe.Port == 1").unwrap(), SAMPLE).unwrap();
    assert!(!short.matches(&sample_item()).unwrap());
    let set = compile(&parse("Maybe.Port == 0").unwrap(), SAMPLE).unwrap();
    assert!(set.matches(&json!({"Maybe": {"Address": "x"}})).unwrap());
}

#[test]
fn nesting_is_bounded_and_deep_parentheses_stay_fast() {
    let ok = format!("{}Port == 80{}", "(".repeat(MAX_NESTING - 1), ")".repeat(MAX_NESTING - 1));
    assert!(parse(&ok).is_ok());
    let unmatched = format!("{}Port == 80", "(".repeat(MAX_NESTING - 2));
    assert!(parse(&unmatched).unwrap_err().contains("Unmatched parentheses"));
    let deep = format!("{}Port == 80{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(parse(&deep).unwrap_err(), format!("expression nests deeper than {MAX_NESTING} levels"));
    assert!(parse(&"not ".repeat(10_000)).is_err());
}

#[test]
fn go_int_parsing() {
    assert_eq!(parse_int("0x1F"), Ok(31));
    assert_eq!(parse_int("010"), Ok(8));
    assert_eq!(parse_int("0b101"), Ok(5));
    assert_eq!(parse_int("0o17"), Ok(15));
    assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
    assert_eq!(parse_int("1_000"), Ok(1000));
    assert!(parse_int("_1").is_err() && parse_int("1__0").is_err() && parse_int("08").is_err());
    assert!(parse_int("9223372036854775808").unwrap_err().ends_with("value out of range"));
}

#[test]
fn go_unquote() {
    assert_eq!(unquote(r#""a\tb\u00e9\x41\101""#).as_deref(), Some("a\tbéAA"));
    assert_eq!(unquote("`a\\n\r`").as_deref(), Some("a\\n"));
    assert_eq!(unquote(r#""\'""#), None);
    assert_eq!(unquote(r#""\ud800""#), None);
}

/// A selector part: usually an identifier, sometimes a key that needs `["…"]`.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-zA-Z][a-zA-Z0-9_]{0,6}", 1 => any::<String>()]
}

fn leaf() -> impl Strategy<Value = Expr> {
    let op = prop_oneof![
        Just(MatchOp::Equal),
        Just(MatchOp::NotEqual),
        Just(MatchOp::In),
        Just(MatchOp::NotIn),
        Just(MatchOp::IsEmpty),
        Just(MatchOp::IsNotEmpty),
        Just(MatchOp::Matches),
        Just(MatchOp::NotMatches),
    ];
    ("[a-zA-Z][a-zA-Z0-9_]{0,6}", prop::collection::vec(part(), 0..3), op, any::<String>()).prop_map(
        |(first, rest, op, value)| {
            let mut selector = vec![first];
            selector.extend(rest);
            let value = (!matches!(op, MatchOp::IsEmpty | MatchOp::IsNotEmpty)).then_some(value);
            Expr::Match(Match { selector, op, value })
        },
    )
}

fn tree() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 48, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| match e {
                Expr::Not(x) => *x,
                e => Expr::Not(Box::new(e)),
            }),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner).prop_map(|(l, r)| Expr::Or(Box::new(l), Box::new(r))),
        ]
    })
}

/// Text near the grammar: its tokens and some noise.
fn near_grammar() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("Name".to_owned()),
        Just("Meta.env".to_owned()),
        Just("Tags".to_owned()),
        Just("Checks.Status".to_owned()),
        Just("Maybe.Port".to_owned()),
        Just("==".to_owned()),
        Just("!=".to_owned()),
        Just("in".to_owned()),
        Just("not".to_owned()),
        Just("and".to_owned()),
        Just("or".to_owned()),
        Just("is empty".to_owned()),
        Just("contains".to_owned()),
        Just("matches".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[\"k\"]".to_owned()),
        Just("\"v\"".to_owned()),
        Just("`r`".to_owned()),
        Just("80".to_owned()),
        Just("-1.5".to_owned()),
        "[ -~]{0,3}",
    ];
    prop::collection::vec(token, 0..12).prop_map(|t| t.join(" "))
}

proptest! {
    #[test]
    fn printed_trees_parse_back(e in tree()) {
        let text = e.to_string();
        prop_assert_eq!(parse(&text), Ok(e), "{}", text);
    }

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        expression_text(s.as_bytes());
    }

    #[test]
    fn text_near_the_grammar_keeps_the_invariants(s in near_grammar()) {
        expression_text(s.as_bytes());
    }

    #[test]
    fn generated_trees_keep_the_evaluation_invariants(e in tree()) {
        check_evaluation(&e);
    }
}
