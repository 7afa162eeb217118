//! Unit tests and proptests of the ACL rules: parsing (HCL and JSON to one model), Consul's
//! error texts [live on 1.8.7], every precedence rule of the evaluator (spec §1.5, trap 5),
//! and the evaluator against the plain reference evaluation on random rule sets.

use proptest::prelude::*;

use super::fuzz_logic::{self, assert_agrees, probe_names};
use super::parse::go_quote;
use super::*;

fn rules(text: &str) -> PolicyRules {
    match parse_rules(text) {
        Ok(r) => r,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn error(text: &str) -> String {
    match parse_rules(text) {
        Ok(r) => panic!("{text:?} should be refused, parsed as {r:?}"),
        Err(e) => e.to_string(),
    }
}

fn authz(texts: &[&str], default: DefaultPolicy) -> Authorizer {
    let policies: Vec<PolicyRules> = texts.iter().map(|t| rules(t)).collect();
    Authorizer::new(&policies, default)
}

const BOTH: [DefaultPolicy; 2] = [DefaultPolicy::Allow, DefaultPolicy::Deny];

// ---- Precedence (spec §1.5 "Outcomes", trap 5) ----

#[test]
fn longest_prefix_wins_over_a_shorter_one() {
    for d in BOTH {
        let a =
            authz(&[r#"key_prefix "" { policy = "write" }"#, r#"key_prefix "foo/" { policy = "read" }"#], d);
        assert!(a.key_read("foo/x") && !a.key_write("foo/x"), "read only under foo/");
        assert!(a.key_write("bar"), "the shorter prefix still covers the rest");
    }
}

#[test]
fn exact_rule_beats_a_prefix_deny() {
    let text = "key_prefix \"foo/\" { policy = \"deny\" }\nkey \"foo/bar\" { policy = \"write\" }";
    for d in BOTH {
        let a = authz(&[text], d);
        assert!(a.key_write("foo/bar") && a.key_read("foo/bar"));
        assert!(!a.key_read("foo/baz") && !a.key_read("foo/bar/x"), "an exact rule covers only its name");
    }
}

#[test]
fn exact_deny_beats_a_prefix_write() {
    let a = authz(
        &["key_prefix \"app/\" { policy = \"write\" }\nkey \"app/secret\" { policy = \"deny\" }"],
        DefaultPolicy::Allow,
    );
    assert!(!a.key_read("app/secret") && a.key_read("app/secret2") && a.key_write("app/x"));
}

#[test]
fn same_segment_across_policies_merges_deny_over_write_over_list_over_read() {
    let levels = ["read", "list", "write", "deny"];
    for (i, x) in levels.iter().enumerate() {
        for (j, y) in levels.iter().enumerate() {
            let a = authz(
                &[&format!("key \"k\" {{ policy = \"{x}\" }}"), &format!("key \"k\" {{ policy = \"{y}\" }}")],
                DefaultPolicy::Allow,
            );
            let strongest = levels[i.max(j)];
            assert_eq!(a.key_read("k"), strongest != "deny", "{x} + {y}");
            assert_eq!(a.key_list("k"), strongest == "list" || strongest == "write", "{x} + {y}");
            assert_eq!(a.key_write("k"), strongest == "write", "{x} + {y}");
        }
    }
    let web = [r#"service "web" { policy = "read" }"#, r#"service "web" { policy = "deny" }"#];
    assert!(!authz(&web, DefaultPolicy::Allow).service_read("web"));
    let all = [r#"service_prefix "" { policy = "write" }"#, r#"service_prefix "" { policy = "read" }"#];
    assert!(authz(&all, DefaultPolicy::Deny).service_write("any"));
    let reversed = [all[1], all[0]];
    assert!(authz(&reversed, DefaultPolicy::Deny).service_write("any"), "order does not matter");
}

#[test]
fn same_segment_twice_in_one_policy_merges_too() {
    // Consul 1.8.7 denies both orders [live].
    for text in [
        "key \"a\" {\n policy = \"read\"\n}\nkey \"a\" {\n policy = \"deny\"\n}",
        "key \"a\" {\n policy = \"deny\"\n}\nkey \"a\" {\n policy = \"read\"\n}",
    ] {
        assert!(!authz(&[text], DefaultPolicy::Allow).key_read("a"), "{text}");
    }
    let json = r#"{"key_prefix": {"x/": {"policy": "read"}, "x/": {"policy": "write"}}}"#;
    assert!(authz(&[json], DefaultPolicy::Deny).key_write("x/a"), "duplicate JSON keys merge");
}

#[test]
fn unmatched_names_fall_to_the_default_policy() {
    let text = "node_prefix \"ab\" { policy = \"read\" }\nnode \"a\" { policy = \"deny\" }";
    for d in BOTH {
        let a = authz(&[text], d);
        assert!(a.node_read("abc") && !a.node_write("abc"));
        assert!(!a.node_read("a"));
        assert_eq!(a.node_read("b"), d == DefaultPolicy::Allow);
        assert_eq!(a.node_write("b"), d == DefaultPolicy::Allow);
        assert_eq!(a.service_read("web"), d == DefaultPolicy::Allow, "no service rule at all");
        assert_eq!(a.key_write("any"), d == DefaultPolicy::Allow);
    }
}

#[test]
fn a_prefix_is_a_raw_string_prefix_not_a_path() {
    let a = authz(&[r#"key_prefix "foo" { policy = "write" }"#], DefaultPolicy::Deny);
    assert!(a.key_write("foobar") && a.key_write("foo/x") && a.key_write("foo"));
    assert!(!a.key_read("fo"));
}

#[test]
fn list_grants_read_and_list_but_not_write() {
    let a = authz(&[r#"key_prefix "app/" { policy = "list" }"#], DefaultPolicy::Deny);
    assert!(a.key_list("app/") && a.key_read("app/a") && !a.key_write("app/a"));
    let r = authz(&[r#"key_prefix "app/" { policy = "read" }"#], DefaultPolicy::Deny);
    assert!(r.key_read("app/a") && !r.key_list("app/") && !r.key_write("app/a"));
}

#[test]
fn write_implies_read_and_list() {
    let a = authz(
        &[r#"key_prefix "" { policy = "write" }"#, r#"service "web" { policy = "write" }"#],
        DefaultPolicy::Deny,
    );
    assert!(a.key_read("x") && a.key_list("x") && a.key_write("x"));
    assert!(a.service_read("web") && a.service_write("web"));
}

#[test]
fn every_segmented_resource_is_its_own_table() {
    let text = "agent \"n\" { policy = \"write\" }\nevent_prefix \"deploy-\" { policy = \"write\" }\n\
                query \"q\" { policy = \"read\" }\nsession_prefix \"\" { policy = \"read\" }\n\
                node \"n\" { policy = \"read\" }";
    let a = authz(&[text], DefaultPolicy::Deny);
    assert!(a.agent_write("n") && a.agent_read("n") && !a.agent_read("m"));
    assert!(a.event_write("deploy-1") && a.event_read("deploy-1") && !a.event_read("other"));
    assert!(a.query_read("q") && !a.query_write("q"));
    assert!(a.session_read("any") && !a.session_write("any"));
    assert!(a.node_read("n") && !a.node_write("n") && !a.service_read("n") && !a.key_read("n"));
}

#[test]
fn unsegmented_rules_merge_across_policies_and_default_allow_never_grants_acl() {
    let a = authz(
        &["acl = \"read\"", "acl = \"write\"\noperator = \"deny\"", "operator = \"write\""],
        DefaultPolicy::Deny,
    );
    assert!(a.acl_read() && a.acl_write() && a.manage());
    assert!(!a.operator_read() && !a.operator_write(), "deny wins");
    assert!(!a.keyring_read());
    let allow = authz(&[""], DefaultPolicy::Allow);
    assert!(allow.operator_write() && allow.keyring_write() && allow.key_write("x"));
    assert!(!allow.acl_read() && !allow.acl_write() && !allow.manage(), "403 on /v1/acl/* [live]");
    let op = authz(&["operator = \"read\"", "keyring = \"write\""], DefaultPolicy::Deny);
    assert!(op.operator_read() && !op.operator_write() && op.keyring_read() && op.keyring_write());
}

#[test]
fn manage_all_and_the_global_management_policy_allow_everything() {
    let gm = authz(&[GLOBAL_MANAGEMENT_RULES], DefaultPolicy::Deny);
    for a in [Authorizer::manage_all(), gm] {
        assert!(a.manage() && a.acl_read() && a.operator_write() && a.keyring_write());
        for name in ["", "web", "a/b"] {
            assert!(a.key_write(name) && a.key_list(name) && a.key_write_prefix(name));
            assert!(a.service_write(name) && a.node_write(name) && a.session_write(name));
            assert!(a.agent_write(name) && a.event_write(name) && a.query_write(name));
        }
    }
    let gm = rules(GLOBAL_MANAGEMENT_RULES);
    let service = gm.segment_rules(Resource::Service).prefix[""];
    assert_eq!(service, SegmentRule { access: Access::Write, intentions: Some(Access::Write) });
}

#[test]
fn key_write_prefix_needs_write_on_the_covering_prefix_and_nothing_weaker_under_it() {
    // The worked example of spec §1.5 [live].
    let text = "service \"web\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }\n\
                key_prefix \"app/\" { policy = \"read\" }\nkey \"app/secret\" { policy = \"deny\" }\n\
                key_prefix \"app/rw/\" { policy = \"write\" }";
    let a = authz(&[text], DefaultPolicy::Deny);
    assert!(a.key_read("app/a") && !a.key_read("app/secret") && !a.key_read("other/b"));
    assert!(!a.key_write("app/a") && a.key_write("app/rw/y"));
    assert!(!a.key_write_prefix("app/"), "a deny under the prefix");
    assert!(a.key_write_prefix("app/rw/") && a.key_write_prefix("app/rw/deeper/"));
    assert!(a.service_read("web") && !a.service_read("db") && a.node_read("n1"));

    let w = "key_prefix \"\" { policy = \"write\" }\nkey \"x/y\" { policy = \"read\" }";
    for d in BOTH {
        let a = authz(&[w], d);
        assert!(!a.key_write_prefix("x/") && !a.key_write_prefix(""), "an exact read under the prefix");
        assert!(a.key_write_prefix("z/") && a.key_write_prefix("x/y/"), "x/y/ is past the exact rule");
        let under = authz(&[r#"key "a/b" { policy = "write" }"#], d);
        assert_eq!(under.key_write_prefix("a/"), d == DefaultPolicy::Allow, "no covering prefix: default");
        let empty = authz(&[""], d);
        assert_eq!(empty.key_write_prefix("a/"), d == DefaultPolicy::Allow);
    }
    let covering_read = authz(&[r#"key_prefix "a" { policy = "list" }"#], DefaultPolicy::Allow);
    assert!(!covering_read.key_write_prefix("ab/"), "the covering prefix must grant write");
}

#[test]
fn identities_and_agent_master_grant_what_the_spec_lists() {
    let s = Authorizer::new([&PolicyRules::service_identity("web")], DefaultPolicy::Deny);
    assert!(s.service_write("web") && s.service_write("web-sidecar-proxy") && !s.service_write("db"));
    assert!(s.service_read("db") && s.node_read("n1") && !s.node_write("n1") && !s.key_read("k"));
    let n = Authorizer::new([&PolicyRules::node_identity("n1")], DefaultPolicy::Deny);
    assert!(n.node_write("n1") && !n.node_read("n2") && n.service_read("any") && !n.service_write("any"));
    let m = Authorizer::new([&PolicyRules::agent_master("n1")], DefaultPolicy::Deny);
    assert!(m.agent_write("n1") && !m.agent_read("n2") && m.node_read("n2") && !m.node_write("n1"));
}

// ---- Parsing: one model from HCL and JSON ----

const POLICY_HCL: &str = r#"
# Every kind once (spec §1.5's table).
acl = "read"
keyring = "write"
operator = "deny"
agent "n1" { policy = "read" }
agent_prefix "" { policy = "deny" }
event "deploy" { policy = "write" }
event_prefix "" { policy = "read" }
key "app/secret" { policy = "deny" }
key_prefix "app/" { policy = "list" }
node "n1" { policy = "write" }
node_prefix "" { policy = "read" }
query "q" { policy = "write" }
query_prefix "" { policy = "read" }
service "web" {
  policy = "write"
  intentions = "read"
}
service_prefix "" { policy = "read" }
session "n1" { policy = "write" }
session_prefix "" { policy = "read" }
"#;

const POLICY_JSON: &str = r#"{
  "acl": "read", "keyring": "write", "operator": "deny",
  "agent": {"n1": {"policy": "read"}}, "agent_prefix": {"": {"policy": "deny"}},
  "event": {"deploy": {"policy": "write"}}, "event_prefix": {"": {"policy": "read"}},
  "key": {"app/secret": {"policy": "deny"}}, "key_prefix": {"app/": {"policy": "list"}},
  "node": {"n1": {"policy": "write"}}, "node_prefix": {"": {"policy": "read"}},
  "query": {"q": {"policy": "write"}}, "query_prefix": {"": {"policy": "read"}},
  "service": {"web": {"policy": "write", "intentions": "read"}},
  "service_prefix": {"": {"policy": "read"}},
  "session": {"n1": {"policy": "write"}}, "session_prefix": {"": {"policy": "read"}}
}"#;

#[test]
fn hcl_and_json_of_one_policy_parse_to_one_model() {
    let hcl = rules(POLICY_HCL);
    assert_eq!(hcl, rules(POLICY_JSON));
    assert_eq!(hcl.unsegmented(Unsegmented::Acl), Some(Access::Read));
    assert_eq!(hcl.unsegmented(Unsegmented::Operator), Some(Access::Deny));
    let keys = hcl.segment_rules(Resource::Key);
    assert_eq!(keys.exact["app/secret"].access, Access::Deny);
    assert_eq!(keys.prefix["app/"].access, Access::List);
    let web = hcl.segment_rules(Resource::Service).exact["web"];
    assert_eq!(web, SegmentRule { access: Access::Write, intentions: Some(Access::Read) });
    for r in Resource::ALL {
        let table = hcl.segment_rules(r);
        assert_eq!(table.exact.len() + table.prefix.len(), 2, "{r:?}");
    }
    assert!(hcl.ignored_kinds().is_empty());
}

#[test]
fn the_spec_table_pairs_are_equal() {
    for (hcl, json) in [
        (r#"key_prefix "" { policy = "read" }"#, r#"{"key_prefix":{"":{"policy":"read"}}}"#),
        (
            r#"service "web" { policy = "write"  intentions = "read" }"#,
            r#"{"service":{"web":{"policy":"write","intentions":"read"}}}"#,
        ),
        (r#"operator = "read""#, r#"{"operator":"read"}"#),
        (r#"session_prefix "" { policy = "write" }"#, r#"{"session_prefix":{"":{"policy":"write"}}}"#),
    ] {
        assert_eq!(rules(hcl), rules(json), "{hcl}");
        assert!(!rules(hcl).is_empty());
    }
}

#[test]
fn consul_one_line_hcl_forms_parse() {
    let two = rules(r#"key "a" { policy = "read" } key "b" { policy = "deny" } operator = "read""#);
    assert_eq!(two.segment_rules(Resource::Key).exact.len(), 2);
    assert_eq!(two.unsegmented(Unsegmented::Operator), Some(Access::Read));
    let expected = rules("key \"a\" {\n policy = \"read\"\n}");
    for text in [
        r#"key "a" { policy = "read", }"#,
        "key \"a\" {\n  policy = \"read\" }",
        "key \"a\" { policy = \"read\"\n}",
        "key \"a\" { policy = \"read\" # why\n}",
        "/* { */ key \"a\" { policy = \"read\" }",
        r#"key = { a = { policy = "read" } }"#,
        r#"key = { "a": { policy: "read" } }"#,
        r#"KEY "a" { POLICY = "READ" }"#,
        r#"key "a" { policy = "read" foo = "ignored" }"#,
    ] {
        assert_eq!(rules(text), expected, "{text}");
    }
}

#[test]
fn json_list_forms_and_case_parse_like_consul() {
    let expected = rules(r#"key "a" { policy = "write" }"#);
    for text in [
        r#"{"key": [{"a": {"policy": "write"}}]}"#,
        r#"{"key": {"a": [{"policy": "write"}]}}"#,
        r#"{"KEY": {"a": {"POLICY": "Write"}}}"#,
        r#"{"key": {"a": [{"policy": "read"}, {"policy": "write"}]}}"#,
    ] {
        assert_eq!(rules(text), expected, "{text}");
    }
}

#[test]
fn empty_texts_and_unknown_kinds_parse_to_no_rules() {
    for text in ["", "   ", "# only a comment", "{}", "acl = \"\"", " \n{ }"] {
        assert!(rules(text).is_empty(), "{text:?}");
    }
    let unknown = rules("foo \"x\" { policy = \"read\" }\nbar = \"write\"\nkey \"k\" { policy = \"read\" }");
    assert_eq!(unknown.ignored_kinds(), ["foo", "bar"]);
    assert_eq!(unknown.segment_rules(Resource::Key).exact.len(), 1);
    let json = rules(r#"{"foo": {"x": {"policy": "read"}}}"#);
    assert_eq!(json.ignored_kinds(), ["foo"]);
    assert!(json.is_empty());
}

#[test]
fn an_unsegmented_rule_written_twice_keeps_the_last() {
    // Consul's HCL decoding overwrites [live]; HCL 2 refuses a redefined attribute, JSON has it.
    let r = rules(r#"{"operator": "write", "operator": "read"}"#);
    assert_eq!(r.unsegmented(Unsegmented::Operator), Some(Access::Read));
}

#[test]
fn a_mixed_case_deny_still_merges_as_a_deny() {
    // 1.8.7 let `read` win over `"Deny"` on one segment [live]: cairn fails closed instead.
    let a = authz(
        &["key_prefix \"\" {\n policy = \"read\"\n}\nkey_prefix \"\" {\n policy = \"Deny\"\n}"],
        DefaultPolicy::Allow,
    );
    assert!(!a.key_read("a"));
}

#[test]
fn intentions_are_kept_but_only_on_service_rules() {
    let r = rules(r#"service_prefix "" { policy = "read" intentions = "deny" }"#);
    assert_eq!(r.segment_rules(Resource::Service).prefix[""].intentions, Some(Access::Deny));
    let other = rules(r#"node "n" { policy = "read" intentions = "bogus" }"#);
    assert_eq!(other.segment_rules(Resource::Node).exact["n"], SegmentRule::new(Access::Read));
}

// ---- Error texts (Consul 1.8.7, live) ----

#[test]
fn invalid_dispositions_carry_consuls_texts() {
    let ent = "EnterpriseRule:acl.EnterpriseRule{}";
    for (text, want) in [
        (
            r#"service "web" { policy = "list" }"#,
            format!(
                r#"Invalid service policy: &acl.ServiceRule{{Name:"web", Policy:"list", Intentions:"", {ent}}}"#
            ),
        ),
        (
            r#"key "a" { policy = "bogus" }"#,
            format!(r#"Invalid key policy: &acl.KeyRule{{Prefix:"a", Policy:"bogus", {ent}}}"#),
        ),
        (
            r#"key_prefix "a" { policy = "bogus" }"#,
            format!(r#"Invalid key_prefix policy: &acl.KeyRule{{Prefix:"a", Policy:"bogus", {ent}}}"#),
        ),
        (r#"key "a" {}"#, format!(r#"Invalid key policy: &acl.KeyRule{{Prefix:"a", Policy:"", {ent}}}"#)),
        (
            r#"key "a" "b" { policy = "read" }"#,
            format!(r#"Invalid key policy: &acl.KeyRule{{Prefix:"a", Policy:"", {ent}}}"#),
        ),
        (
            r#"key "a" { policy = 1 }"#,
            format!(r#"Invalid key policy: &acl.KeyRule{{Prefix:"a", Policy:"1", {ent}}}"#),
        ),
        (
            r#"key "a" { policy = "${x}" }"#,
            format!(r#"Invalid key policy: &acl.KeyRule{{Prefix:"a", Policy:"${{x}}", {ent}}}"#),
        ),
        (
            "key \"a\" {\npolicy = <<EOF\nread\nEOF\n}",
            format!(r#"Invalid key policy: &acl.KeyRule{{Prefix:"a", Policy:"read\n", {ent}}}"#),
        ),
        (
            r#"key "a" { policy = " read" }"#,
            format!(r#"Invalid key policy: &acl.KeyRule{{Prefix:"a", Policy:" read", {ent}}}"#),
        ),
        (
            r#"{"key": {"a": {"policy": "bogus"}}}"#,
            format!(r#"Invalid key policy: &acl.KeyRule{{Prefix:"a", Policy:"bogus", {ent}}}"#),
        ),
        (
            r#"node "n" { policy = "list" }"#,
            format!(r#"Invalid node policy: &acl.NodeRule{{Name:"n", Policy:"list", {ent}}}"#),
        ),
        (
            r#"node_prefix "n" { policy = "list" }"#,
            format!(r#"Invalid node_prefix policy: &acl.NodeRule{{Name:"n", Policy:"list", {ent}}}"#),
        ),
        (
            r#"service_prefix "n" { policy = "list" }"#,
            format!(
                r#"Invalid service_prefix policy: &acl.ServiceRule{{Name:"n", Policy:"list", Intentions:"", {ent}}}"#
            ),
        ),
        (
            r#"service "a" { policy = "List" }"#,
            format!(
                r#"Invalid service policy: &acl.ServiceRule{{Name:"a", Policy:"List", Intentions:"", {ent}}}"#
            ),
        ),
        (
            r#"service "w" { intentions = "read" }"#,
            format!(
                r#"Invalid service policy: &acl.ServiceRule{{Name:"w", Policy:"", Intentions:"read", {ent}}}"#
            ),
        ),
        (
            r#"service "w" { policy = "read" intentions = "list" }"#,
            format!(
                r#"Invalid service intentions policy: &acl.ServiceRule{{Name:"w", Policy:"read", Intentions:"list", {ent}}}"#
            ),
        ),
        (
            r#"agent "n" { policy = "list" }"#,
            r#"Invalid agent policy: &acl.AgentRule{Node:"n", Policy:"list"}"#.to_owned(),
        ),
        (
            r#"agent_prefix "n" { policy = "list" }"#,
            r#"Invalid agent_prefix policy: &acl.AgentRule{Node:"n", Policy:"list"}"#.to_owned(),
        ),
        (
            r#"session "n" { policy = "list" }"#,
            r#"Invalid session policy: &acl.SessionRule{Node:"n", Policy:"list"}"#.to_owned(),
        ),
        (
            r#"session_prefix "n" { policy = "list" }"#,
            r#"Invalid session_prefix policy: &acl.SessionRule{Node:"n", Policy:"list"}"#.to_owned(),
        ),
        (
            r#"event "n" { policy = "list" }"#,
            r#"Invalid event policy: &acl.EventRule{Event:"n", Policy:"list"}"#.to_owned(),
        ),
        (
            r#"event_prefix "n" { policy = "list" }"#,
            r#"Invalid event_prefix policy: &acl.EventRule{Event:"n", Policy:"list"}"#.to_owned(),
        ),
        (
            r#"query "n" { policy = "list" }"#,
            r#"Invalid query policy: &acl.PreparedQueryRule{Prefix:"n", Policy:"list"}"#.to_owned(),
        ),
        (
            r#"query_prefix "n" { policy = "list" }"#,
            r#"Invalid query_prefix policy: &acl.PreparedQueryRule{Prefix:"n", Policy:"list"}"#.to_owned(),
        ),
        (r#"acl = "list""#, r#"Invalid acl policy: "list""#.to_owned()),
        (r#"acl = "bogus""#, r#"Invalid acl policy: "bogus""#.to_owned()),
        (r#"acl = "List""#, r#"Invalid acl policy: "List""#.to_owned()),
        ("acl = 1", r#"Invalid acl policy: "1""#.to_owned()),
        (r#"operator = "list""#, r#"Invalid operator policy: "list""#.to_owned()),
        (r#"keyring = "x""#, r#"Invalid keyring policy: "x""#.to_owned()),
    ] {
        assert_eq!(error(text), want, "{text}");
    }
}

#[test]
fn the_first_error_follows_consuls_validation_order() {
    for (text, want) in [
        ("operator = \"x\"\nacl = \"y\"", r#"Invalid acl policy: "y""#),
        ("keyring = \"x\"\noperator = \"y\"", r#"Invalid keyring policy: "x""#),
        ("query_prefix \"q\" { policy = \"x\" }\nkeyring = \"y\"", "Invalid query_prefix policy"),
        (
            "key \"a\" { policy = \"x\" }\nagent_prefix \"b\" { policy = \"y\" }",
            "Invalid agent_prefix policy",
        ),
        ("agent_prefix \"a\" { policy = \"x\" }\nagent \"b\" { policy = \"y\" }", "Invalid agent policy"),
        ("node \"a\" { policy = \"x\" }\nkey_prefix \"b\" { policy = \"y\" }", "Invalid key_prefix policy"),
        (
            "service \"a\" { policy = \"x\" }\nnode_prefix \"b\" { policy = \"y\" }",
            "Invalid node_prefix policy",
        ),
        (
            "session \"a\" { policy = \"x\" }\nservice_prefix \"b\" { policy = \"y\" }",
            "Invalid service_prefix policy",
        ),
        (
            "event \"a\" { policy = \"x\" }\nsession_prefix \"b\" { policy = \"y\" }",
            "Invalid session_prefix policy",
        ),
        (
            "query \"a\" { policy = \"x\" }\nevent_prefix \"b\" { policy = \"y\" }",
            "Invalid event_prefix policy",
        ),
        (
            "query \"a\" { policy = \"x\" }\nquery \"b\" { policy = \"y\" }",
            r#"Invalid query policy: &acl.PreparedQueryRule{Prefix:"a""#,
        ),
    ] {
        let got = error(text);
        assert!(got.starts_with(want), "{text}: {got}");
    }
}

#[test]
fn malformed_documents_fail_to_parse_with_consuls_prefix() {
    for text in [
        r#"key "a" { policy = "read" "#,
        r#"key "a" { policy = read }"#,
        r#"key "a" { policy = true }"#,
        r#"key "a" { policy = ["read"] }"#,
        r#"acl { policy = "read" }"#,
        r#"acl = ["read"]"#,
        r#"key = "read""#,
        r#"key { policy = "read" }"#,
        r#"key "a" = { policy = "read" }"#,
        "[]",
        "x",
        "= \"read\"",
        r#"{"key": "read"}"#,
        r#"{"acl": {"a": "b"}}"#,
        r#"{"key": {"a": {"policy": "read"}}"#,
        r#"{"key": {"a": "read"}}"#,
        r#"{"key": ["a"]}"#,
        r#"{"acl": null}"#,
        "{\"key\": {\"a\": {\"policy\": \"read\"}}} trailing",
    ] {
        let e = error(text);
        assert!(e.starts_with("Failed to parse ACL rules: "), "{text}: {e}");
        assert!(!e.contains('\n'), "one line: {e:?}");
    }
    assert_eq!(
        error(r#"{"acl": {"a": "b"}}"#),
        "Failed to parse ACL rules: acl: expected a string, found an object"
    );
    assert!(error(r#"{"key": {"a": {"policy": "read"}}"#).starts_with("Failed to parse ACL rules: At 1:"));
    assert!(error("key \"a\" {\n  policy = read\n  x").starts_with("Failed to parse ACL rules: At "));
}

#[test]
fn go_quote_escapes_like_strconv_quote() {
    assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(go_quote("\n\t\r\u{7}\u{0}\u{1b}\u{7f}"), r#""\n\t\r\a\x00\x1b\x7f""#);
    assert_eq!(go_quote("é/ü ok"), "\"é/ü ok\"");
    assert_eq!(go_quote("\u{a0}\u{200b}\u{feff}\u{85}"), r#""\u00a0\u200b\ufeff\u0085""#);
}

// ---- Random rule sets: the evaluator against the reference, HCL and JSON round trips ----

/// Segments and names over a three-letter alphabet, so prefixes collide often.
fn segment() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ab/]{0,4}").expect("valid regex")
}

fn access(list: bool) -> impl Strategy<Value = Access> {
    let all = if list {
        vec![Access::Read, Access::List, Access::Write, Access::Deny]
    } else {
        vec![Access::Read, Access::Write, Access::Deny]
    };
    proptest::sample::select(all)
}

fn policy() -> impl Strategy<Value = PolicyRules> {
    let rule = (0..7usize, any::<bool>(), segment(), access(true), proptest::option::of(access(false)));
    let unsegmented = proptest::collection::vec(proptest::option::of(access(false)), 3);
    (proptest::collection::vec(rule, 0..10), unsegmented).prop_map(|(rules, unseg)| {
        let mut p = PolicyRules::default();
        for (r, prefix, seg, mut acc, intentions) in rules {
            let resource = Resource::ALL[r];
            if resource != Resource::Key && acc == Access::List {
                acc = Access::Read;
            }
            let intentions = intentions.filter(|_| resource == Resource::Service);
            let kind = if prefix { Match::Prefix } else { Match::Exact };
            p.add(resource, kind, &seg, SegmentRule { access: acc, intentions });
        }
        for (u, a) in Unsegmented::ALL.into_iter().zip(unseg) {
            p.set(u, a);
        }
        p
    })
}

fn hcl_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn to_hcl(p: &PolicyRules) -> String {
    let mut out = String::new();
    for u in Unsegmented::ALL {
        if let Some(a) = p.unsegmented(u) {
            out.push_str(&format!("{} = \"{}\"\n", u.kind(), a.as_str()));
        }
    }
    for r in Resource::ALL {
        for m in [Match::Exact, Match::Prefix] {
            let kind = if m == Match::Exact { r.exact_kind() } else { r.prefix_kind() };
            for (seg, rule) in p.segment_rules(r).table(m) {
                out.push_str(&format!(
                    "{kind} {} {{\n  policy = \"{}\"\n",
                    hcl_quote(seg),
                    rule.access.as_str()
                ));
                if let Some(i) = rule.intentions {
                    out.push_str(&format!("  intentions = \"{}\"\n", i.as_str()));
                }
                out.push_str("}\n");
            }
        }
    }
    out
}

fn to_json(p: &PolicyRules) -> String {
    let mut doc = serde_json::Map::new();
    for u in Unsegmented::ALL {
        if let Some(a) = p.unsegmented(u) {
            doc.insert(u.kind().to_owned(), a.as_str().into());
        }
    }
    for r in Resource::ALL {
        for m in [Match::Exact, Match::Prefix] {
            let kind = if m == Match::Exact { r.exact_kind() } else { r.prefix_kind() };
            let mut segments = serde_json::Map::new();
            for (seg, rule) in p.segment_rules(r).table(m) {
                let mut body = serde_json::Map::new();
                body.insert("policy".to_owned(), rule.access.as_str().into());
                if let Some(i) = rule.intentions {
                    body.insert("intentions".to_owned(), i.as_str().into());
                }
                segments.insert(seg.clone(), body.into());
            }
            if !segments.is_empty() {
                doc.insert(kind.to_owned(), segments.into());
            }
        }
    }
    serde_json::Value::Object(doc).to_string()
}

/// Rules-like text: the grammar's own tokens, so random input gets past the first byte.
fn rules_like_text() -> impl Strategy<Value = String> {
    let token = proptest::sample::select(vec![
        "key",
        "key_prefix",
        "service",
        "acl",
        "operator",
        "policy",
        "intentions",
        " = ",
        "\"read\"",
        "\"list\"",
        "\"write\"",
        "\"deny\"",
        "\"a/\"",
        "\"\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\n",
        " ",
        "#",
        "//",
        "/*",
        "*/",
        "<<EOF\n",
        "EOF",
        "\\",
        "\"",
        "${",
        "1",
        "true",
        "null",
        "é",
    ]);
    proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn authorizer_agrees_with_the_reference_evaluation(
        policies in proptest::collection::vec(policy(), 0..4),
        names in proptest::collection::vec(segment(), 0..8),
    ) {
        let mut probes = names;
        for p in &policies {
            for r in Resource::ALL {
                for m in [Match::Exact, Match::Prefix] {
                    for seg in p.segment_rules(r).table(m).keys() {
                        probes.extend(probe_names(seg));
                    }
                }
            }
        }
        for d in BOTH {
            assert_agrees(&policies, d, &probes);
        }
    }

    #[test]
    fn policies_merge_the_same_in_any_order(policies in proptest::collection::vec(policy(), 1..4), name in segment()) {
        let mut reversed = policies.clone();
        reversed.reverse();
        let (a, b) = (Authorizer::new(&policies, DefaultPolicy::Deny), Authorizer::new(&reversed, DefaultPolicy::Deny));
        for r in Resource::ALL {
            for need in [Need::Read, Need::List, Need::Write] {
                prop_assert_eq!(a.allows(r, &name, need), b.allows(r, &name, need));
            }
        }
    }

    #[test]
    fn hcl_and_json_renderings_parse_back_to_the_model(p in policy()) {
        let hcl = to_hcl(&p);
        prop_assert_eq!(&rules(&hcl), &p, "{}", hcl);
        let json = to_json(&p);
        prop_assert_eq!(&rules(&json), &p, "{}", json);
    }

    #[test]
    fn parsing_never_panics_on_any_text(text in any::<String>()) {
        let _ = parse_rules(&text);
        fuzz_logic::rules_text(text.as_bytes());
    }

    #[test]
    fn parsing_never_panics_on_rules_like_text(text in rules_like_text()) {
        fuzz_logic::rules_text(text.as_bytes());
    }

    #[test]
    fn parsing_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        fuzz_logic::rules_text(&bytes);
    }
}
