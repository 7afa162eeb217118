//! Translator tests: every case in `live_cases.txt` is an input and what Consul 1.8.7's
//! `consul acl translate-rules -` printed for it (its output less the CLI's final newline, or
//! `ERROR: ` and its error text); the proptest checks the meaning survives translation.

use proptest::prelude::*;

use super::translate_legacy_rules as translate;
use crate::acl::{Resource, Unsegmented, parse_legacy_rules, parse_rules};

/// (input, expected output or `ERROR: text`) pairs of the live file.
fn live_cases() -> Vec<(&'static str, &'static str)> {
    include_str!("live_cases.txt")
        .split("#### input\n")
        .filter(|r| !r.is_empty())
        .map(|record| {
            let (input, output) = record.split_once("\n#### output\n").expect("a record has an output");
            (input, output.strip_suffix('\n').expect("a record ends in a newline"))
        })
        .collect()
}

#[test]
fn every_live_case_prints_as_consul_1_8_7() {
    let cases = live_cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for (input, expected) in cases {
        let got = match translate(input) {
            Ok(text) => text,
            Err(e) => format!("ERROR: {e}"),
        };
        assert_eq!(got, expected, "input:\n{input}");
    }
}

#[test]
fn the_go_api_tests_expectations_hold() {
    assert_eq!(
        translate(r#"key "" { policy = "deny" }"#).as_deref(),
        Ok("key_prefix \"\" {\n  policy = \"deny\"\n}")
    );
    let input =
        "#start of policy\nagent \"\" {\n   policy = \"read\"\n}\n\nquery \"\" {\n   policy = \"read\"\n}";
    let expected = "#start of policy\nagent_prefix \"\" {\n  policy = \"read\"\n}\n\nquery_prefix \"\" {\n  policy = \"read\"\n}";
    assert_eq!(translate(input).as_deref(), Ok(expected));
}

#[test]
fn hostile_inputs_are_errors_not_panics() {
    for input in [
        "{",
        "[",
        "\"",
        "/*",
        "key \"a\" { policy = [",
        "{\"a\": [",
        "<<EOF\nx\nEOF",
        "key \u{0} x",
        "{\"a\":{\"b\":",
    ] {
        let _ = translate(input);
    }
    let deep = "a = [".repeat(200);
    assert!(translate(&deep).is_err());
    let deep_json = format!("{}{}", "{\"a\":".repeat(200), "1");
    let _ = translate(&deep_json);
}

/// A legacy rule line: `kind "segment" { policy = "..." }`, or an unsegmented one.
fn legacy_rule() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec!["agent", "key", "node", "service", "session", "event", "query"]);
    let seg = "[a-z/]{0,4}";
    let policy = prop::sample::select(vec!["read", "write", "deny"]);
    let comment = prop::sample::select(vec!["", " # note", " // note"]);
    prop_oneof![
        (kind.clone(), seg, policy.clone(), comment)
            .prop_map(|(k, s, p, c)| format!("{k} \"{s}\" {{ policy = \"{p}\" }}{c}")),
        (kind, seg, policy.clone()).prop_map(|(k, s, p)| format!("{k} \"{s}\" {{\n  policy = \"{p}\"\n}}")),
        (prop::sample::select(vec!["operator", "keyring"]), policy)
            .prop_map(|(k, p)| format!("{k} = \"{p}\"")),
        Just("# standalone".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn translated_rules_mean_in_the_current_syntax_what_the_legacy_ones_meant(
        lines in prop::collection::vec(legacy_rule(), 0..8),
        blank in prop::collection::vec(any::<bool>(), 8),
    ) {
        let text: String = lines.iter().zip(&blank).map(|(l, b)| if *b { format!("{l}\n\n") } else { format!("{l}\n") }).collect();
        // `operator` or `keyring` twice: HCL 2 (which cairn reads rules with) refuses a
        // repeated attribute, HCL 1 kept the last; such texts are not this test's subject.
        let legacy = parse_legacy_rules(&text);
        prop_assume!(legacy.is_ok());
        let legacy = legacy.expect("checked");
        let out = translate(&text).expect("generated legacy rules translate");
        let current = parse_rules(&out).unwrap_or_else(|e| panic!("{out:?} does not parse: {e}"));
        for r in Resource::ALL {
            prop_assert_eq!(legacy.segment_rules(r), current.segment_rules(r), "{:?}\n{}", r, out);
        }
        for u in [Unsegmented::Keyring, Unsegmented::Operator] {
            prop_assert_eq!(legacy.unsegmented(u), current.unsegmented(u));
        }
        // No legacy kind is left: translating again keeps the meaning (not the layout: a
        // comment after a block's `}` becomes standalone, in HCL 1 too).
        let again = parse_rules(&translate(&out).expect("output translates")).expect("parses");
        for r in Resource::ALL {
            prop_assert_eq!(again.segment_rules(r), current.segment_rules(r));
        }
    }

    #[test]
    fn any_text_translates_or_fails_without_panicking(text in "\\PC{0,80}") {
        let _ = translate(&text);
    }
}
