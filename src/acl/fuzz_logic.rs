//! FUZZING ENTRY: arbitrary bytes as a policy's Rules text (rules arrive over HTTP, in
//! `PUT /v1/acl/policy`), and the reference evaluator the authorizer is checked against;
//! arbitrary bytes as legacy rules to translate (`POST /v1/acl/rules/translate`).
//!
//! Input: bytes (read as UTF-8, invalid sequences replaced). Output: nothing; it panics only
//! when an invariant breaks. A panic inside the parser is the other finding.
//!
//! Invariants checked on every text that parses:
//! - `list` appears only on key rules;
//! - for both default policies, the compiled `Authorizer` answers every resource, need and
//!   probe name (each segment, one byte shorter, one byte longer, the empty name) exactly as
//!   the reference evaluation below does, `key_write_prefix` and the unsegmented rules too.
//!
//! The reference is spec §1.5 written as plainly as possible: a linear scan over every rule of
//! every policy, with no tables, no trie and no early exit. Used by the cargo-fuzz target in
//! `tests/fuzz/` and by the proptests in `acl/tests.rs`.

use super::{
    Access, Authorizer, DefaultPolicy, Match, Need, PolicyRules, Resource, Unsegmented, parse_legacy_rules,
    parse_rules, translate_legacy_rules,
};

/// Parses `data` as rules and, when it parses, checks the authorizer against the reference.
pub fn rules_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(rules) = parse_rules(&text) else {
        return;
    };
    for r in Resource::ALL {
        if r != Resource::Key {
            let table = rules.segment_rules(r);
            let list = table.exact.values().chain(table.prefix.values()).any(|x| x.access == Access::List);
            assert!(!list, "list on a {} rule", r.exact_kind());
        }
    }
    let policies = [rules];
    let mut names: Vec<String> = vec![String::new()];
    for r in Resource::ALL {
        for m in [Match::Exact, Match::Prefix] {
            for segment in policies[0].segment_rules(r).table(m).keys().take(16) {
                names.extend(probe_names(segment));
            }
        }
    }
    for default in [DefaultPolicy::Allow, DefaultPolicy::Deny] {
        assert_agrees(&policies, default, &names);
    }
}

/// Translates `data` as legacy rules (`POST /v1/acl/rules/translate`); when it also parses as
/// legacy rules in the current syntax's HCL reading (`parse_legacy_rules`) and its translation
/// parses, the two must grant the same on every segmented resource, keyring and operator.
/// (A translation may fail to parse where HCL 1 and HCL 2 disagree on a text; that is not a
/// finding, a panic or a changed meaning is.)
pub fn translate_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(out) = translate_legacy_rules(&text) else {
        return;
    };
    let (Ok(legacy), Ok(current)) = (parse_legacy_rules(&text), parse_rules(&out)) else {
        return;
    };
    for r in Resource::ALL {
        assert_eq!(legacy.segment_rules(r), current.segment_rules(r), "{r:?}: {text:?} -> {out:?}");
    }
    for u in [Unsegmented::Keyring, Unsegmented::Operator] {
        assert_eq!(legacy.unsegmented(u), current.unsegmented(u), "{text:?} -> {out:?}");
    }
}

/// `segment`, `segment` without its last character, and `segment` plus a byte.
pub(crate) fn probe_names(segment: &str) -> [String; 3] {
    let mut shorter = segment.to_owned();
    shorter.pop();
    [segment.to_owned(), shorter, format!("{segment}x")]
}

/// Asserts that the compiled authorizer of `policies` answers every check on `names` as the
/// reference does.
pub(crate) fn assert_agrees(policies: &[PolicyRules], default: DefaultPolicy, names: &[String]) {
    let authz = Authorizer::new(policies, default);
    for name in names {
        for r in Resource::ALL {
            for need in [Need::Read, Need::List, Need::Write] {
                let want = reference_allows(policies, default, r, name, need);
                assert_eq!(
                    authz.allows(r, name, need),
                    want,
                    "{r:?} {need:?} on {name:?}, default {default:?}"
                );
            }
        }
        let want = reference_key_write_prefix(policies, default, name);
        assert_eq!(authz.key_write_prefix(name), want, "key_write_prefix {name:?}, default {default:?}");
    }
    for u in Unsegmented::ALL {
        for need in [Need::Read, Need::Write] {
            let want = reference_allows_unsegmented(policies, default, u, need);
            assert_eq!(authz.allows_unsegmented(u, need), want, "{u:?} {need:?}, default {default:?}");
        }
    }
}

/// Step 1 for one segment: the strongest disposition any policy gives it (deny > write >
/// list > read), scanning every rule.
fn merged(policies: &[PolicyRules], r: Resource, kind: Match, segment: &str) -> Option<Access> {
    let mut strongest = None;
    for policy in policies {
        for (s, rule) in policy.segment_rules(r).table(kind) {
            if s == segment {
                strongest = strongest.max(Some(rule.access));
            }
        }
    }
    strongest
}

/// The merged rule deciding `name`: an exact rule on `name`, else the longest prefix rule.
fn deciding_rule(policies: &[PolicyRules], r: Resource, name: &str) -> Option<Access> {
    if let Some(exact) = merged(policies, r, Match::Exact, name) {
        return Some(exact);
    }
    let mut longest: Option<&str> = None;
    for policy in policies {
        for s in policy.segment_rules(r).prefix.keys() {
            if name.starts_with(s.as_str()) && longest.is_none_or(|l| s.len() > l.len()) {
                longest = Some(s);
            }
        }
    }
    longest.and_then(|s| merged(policies, r, Match::Prefix, s))
}

/// Spec §1.5, steps 1 to 3, for a segmented resource.
pub(crate) fn reference_allows(
    policies: &[PolicyRules],
    default: DefaultPolicy,
    r: Resource,
    name: &str,
    need: Need,
) -> bool {
    match deciding_rule(policies, r, name) {
        Some(access) => access.grants(need),
        None => default == DefaultPolicy::Allow,
    }
}

/// Spec §1.5 step 4: a recursive KV delete.
pub(crate) fn reference_key_write_prefix(
    policies: &[PolicyRules],
    default: DefaultPolicy,
    prefix: &str,
) -> bool {
    let mut longest: Option<&str> = None;
    for policy in policies {
        for s in policy.segment_rules(Resource::Key).prefix.keys() {
            if prefix.starts_with(s.as_str()) && longest.is_none_or(|l| s.len() > l.len()) {
                longest = Some(s);
            }
        }
    }
    let covering = longest.and_then(|s| merged(policies, Resource::Key, Match::Prefix, s));
    if covering.is_some_and(|a| a != Access::Write) {
        return false;
    }
    for policy in policies {
        for kind in [Match::Exact, Match::Prefix] {
            for s in policy.segment_rules(Resource::Key).table(kind).keys() {
                let under = s.starts_with(prefix);
                if under && merged(policies, Resource::Key, kind, s) != Some(Access::Write) {
                    return false;
                }
            }
        }
    }
    covering.is_some() || default == DefaultPolicy::Allow
}

/// An unsegmented resource: the strongest rule of any policy, else the default policy
/// (`allow` never covers `acl`).
pub(crate) fn reference_allows_unsegmented(
    policies: &[PolicyRules],
    default: DefaultPolicy,
    u: Unsegmented,
    need: Need,
) -> bool {
    let strongest = policies.iter().filter_map(|p| p.unsegmented(u)).max();
    match strongest {
        Some(access) => access.grants(need),
        None => default == DefaultPolicy::Allow && u != Unsegmented::Acl,
    }
}
