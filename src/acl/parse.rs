//! ACL RULES, parse step 2: document tree -> validated `PolicyRules`, with Consul 1.8's
//! error texts (`acl/policy.go` `parseCurrent`, `PolicyRules.Validate`).
//!
//! Input: a policy's Rules string (HCL or JSON, `syntax`). Output: `PolicyRules`, or the
//! first error in Consul's validation order: acl, agent, agent_prefix, key, key_prefix, node,
//! node_prefix, service, service_prefix, session, session_prefix, event, event_prefix, query,
//! query_prefix, keyring, operator; rules of one kind in text order [live on 1.8.7].
//!
//! What Consul 1.8.7 accepts, and so does this [live]:
//! - kind and attribute names in any case (`KEY_PREFIX "" { POLICY = "read" }`), dispositions
//!   in any case (`"WRITE"`), but no blanks around them (`" read"` is invalid);
//! - an empty text, only comments, `{}`; `acl = ""` (no rule); numbers as their text
//!   (`acl = 1` is `Invalid acl policy: "1"`);
//! - unknown kinds and unknown attributes, ignored (`foo "x" {...}`, `key "a" { foo = "x" }`);
//!   the unknown kinds are listed in `PolicyRules::ignored_kinds`;
//! - a segment given as a list of objects (`{"key": {"a": [{"policy": "read"}]}}`) and a kind
//!   given as a list (`{"key": [{"a": {...}}]}`).
//!
//! Where cairn differs, always by refusing (`Failed to parse ACL rules: ...`): syntax errors
//! carry hcl-rs's or serde_json's message, not HCL 1's (same prefix, same `At L:C:` layout);
//! a block without a label (`key { policy = "read" }`, which 1.8 reads as a rule on the
//! segment "policy"); malformed JSON that HCL 1's lenient parser let through; an attribute
//! written twice in one HCL body (HCL 2 refuses it; 1.8 kept the last). A mixed-case `"Deny"`
//! merges as a deny here; 1.8's merger compares the raw text, so its `"Deny"` lost to a
//! `read` on the same segment [live], which fails open.
//!
//! Invariants: never panics; a returned `PolicyRules` holds only valid dispositions.

use std::fmt::Write as _;

use super::syntax::{Node, document};
use super::{Access, Match, PolicyRules, Resource, SegmentRule, Unsegmented};

/// Why a Rules text was refused. The Display text is Consul's (an HTTP 500 body, spec §1.7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RulesError {
    /// The text is not HCL or JSON, or its shape is not a rules document.
    #[error("Failed to parse ACL rules: {0}")]
    Syntax(String),
    /// A disposition that is not read/write/deny (or list, on key rules). `rule` is Consul's
    /// Go rendering of the rule (`"list"`, or `&acl.ServiceRule{Name:"web", ...}`).
    #[error("Invalid {kind} policy: {rule}")]
    Policy { kind: &'static str, rule: String },
    /// An `intentions` value that is not read/write/deny.
    #[error("Invalid service intentions policy: {rule}")]
    Intentions { rule: String },
}

/// Parses and validates one policy's Rules text (HCL or JSON).
pub(crate) fn parse_rules(text: &str) -> Result<PolicyRules, RulesError> {
    let entries = document(text).map_err(RulesError::Syntax)?;
    let raw = RawRules::collect(&entries, Syntax::Current)?;
    raw.validate()?;
    Ok(raw.into_rules(Syntax::Current))
}

/// Parses and validates a legacy (pre-1.4) token's Rules text, Consul 1.8's `parseLegacy`
/// [live on 1.8.7]: only the exact kinds exist (`key "a"`), each a prefix rule (so `key "a"`
/// is `key_prefix "a"`); the `_prefix` kinds are unknown and ignored; `acl` is validated but
/// grants nothing (a legacy `acl = "write"` token cannot create tokens); `keyring` and
/// `operator` count as in the current syntax. Errors are the current syntax's texts.
pub(crate) fn parse_legacy_rules(text: &str) -> Result<PolicyRules, RulesError> {
    let entries = document(text).map_err(RulesError::Syntax)?;
    let raw = RawRules::collect(&entries, Syntax::Legacy)?;
    raw.validate()?;
    Ok(raw.into_rules(Syntax::Legacy))
}

/// Which rules language a text is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Current,
    Legacy,
}

/// A segmented rule as written, before validation.
#[derive(Debug, Default)]
struct RawRule {
    segment: String,
    policy: String,
    intentions: String,
}

/// The rules as written, grouped by kind in text order.
#[derive(Debug, Default)]
struct RawRules {
    /// `[resource][0 = exact, 1 = prefix]`.
    segmented: [[Vec<RawRule>; 2]; 7],
    /// The last value written per unsegmented resource ("" = none).
    unsegmented: [String; 3],
    ignored: Vec<String>,
}

/// What a top-level name means.
enum Kind {
    Segmented(Resource, Match),
    Unsegmented(Unsegmented),
}

fn kind_of(name: &str) -> Option<Kind> {
    for r in Resource::ALL {
        if name.eq_ignore_ascii_case(r.exact_kind()) {
            return Some(Kind::Segmented(r, Match::Exact));
        }
        if name.eq_ignore_ascii_case(r.prefix_kind()) {
            return Some(Kind::Segmented(r, Match::Prefix));
        }
    }
    Unsegmented::ALL.into_iter().find(|u| name.eq_ignore_ascii_case(u.kind())).map(Kind::Unsegmented)
}

fn kind_name(resource: Resource, kind: Match) -> &'static str {
    match kind {
        Match::Exact => resource.exact_kind(),
        Match::Prefix => resource.prefix_kind(),
    }
}

impl RawRules {
    fn collect(entries: &[(String, Node)], lang: Syntax) -> Result<Self, RulesError> {
        let mut raw = Self::default();
        for (name, node) in entries {
            match kind_of(name) {
                None => raw.ignored.push(name.clone()),
                Some(Kind::Segmented(_, Match::Prefix)) if lang == Syntax::Legacy => {
                    raw.ignored.push(name.clone());
                }
                Some(Kind::Unsegmented(u)) => match node {
                    Node::Text(s) => raw.unsegmented[u.index()].clone_from(s),
                    other => {
                        return Err(syntax(format!(
                            "{}: expected a string, found {}",
                            u.kind(),
                            other.kind()
                        )));
                    }
                },
                Some(Kind::Segmented(r, m)) => {
                    let rules = &mut raw.segmented[r.index()][m as usize];
                    collect_segments(rules, kind_name(r, m), r == Resource::Service, node)?;
                }
            }
        }
        Ok(raw)
    }

    fn validate(&self) -> Result<(), RulesError> {
        let acl = &self.unsegmented[Unsegmented::Acl.index()];
        check_unsegmented(Unsegmented::Acl, acl)?;
        for r in Resource::ALL {
            for m in [Match::Exact, Match::Prefix] {
                for rule in &self.segmented[r.index()][m as usize] {
                    check_segment(r, m, rule)?;
                }
            }
        }
        for u in [Unsegmented::Keyring, Unsegmented::Operator] {
            check_unsegmented(u, &self.unsegmented[u.index()])?;
        }
        Ok(())
    }

    /// The model; call after `validate` (an invalid disposition is dropped here, never kept).
    fn into_rules(self, lang: Syntax) -> PolicyRules {
        let mut rules = PolicyRules::default();
        for u in Unsegmented::ALL {
            if lang == Syntax::Legacy && u == Unsegmented::Acl {
                continue;
            }
            rules.set(u, Access::from_rule_text(&self.unsegmented[u.index()], false));
        }
        for r in Resource::ALL {
            for m in [Match::Exact, Match::Prefix] {
                // A legacy exact rule is a prefix rule (there are no legacy prefix rules).
                let stored = if lang == Syntax::Legacy { Match::Prefix } else { m };
                for raw in &self.segmented[r.index()][m as usize] {
                    if let Some(access) = Access::from_rule_text(&raw.policy, r == Resource::Key) {
                        let intentions = Access::from_rule_text(&raw.intentions, false);
                        rules.add(r, stored, &raw.segment, SegmentRule { access, intentions });
                    }
                }
            }
        }
        for kind in &self.ignored {
            rules.ignore_kind(kind);
        }
        rules
    }
}

fn syntax(detail: String) -> RulesError {
    RulesError::Syntax(detail)
}

/// Adds the rules of one `kind` entry: an object of segments (or a list of such objects),
/// each segment an object of attributes (or a list of such objects, one rule each).
fn collect_segments(
    out: &mut Vec<RawRule>,
    kind: &str,
    service: bool,
    node: &Node,
) -> Result<(), RulesError> {
    let segments: Vec<&(String, Node)> = match node {
        Node::Map(entries) => entries.iter().collect(),
        Node::List(items) => {
            let mut all = Vec::new();
            for item in items {
                match item {
                    Node::Map(entries) => all.extend(entries),
                    other => {
                        return Err(syntax(format!("{kind}: expected an object, found {}", other.kind())));
                    }
                }
            }
            all
        }
        other => return Err(syntax(format!("{kind}: expected an object of rules, found {}", other.kind()))),
    };
    for (segment, value) in segments {
        let bodies: Vec<&Node> = match value {
            Node::List(items) => items.iter().collect(),
            one => vec![one],
        };
        for body in bodies {
            out.push(rule_of(kind, segment, service, body)?);
        }
    }
    Ok(())
}

fn rule_of(kind: &str, segment: &str, service: bool, body: &Node) -> Result<RawRule, RulesError> {
    let Node::Map(attributes) = body else {
        let what = body.kind();
        return Err(syntax(format!("{kind} {}: expected an object, found {what}", go_quote(segment))));
    };
    let mut rule = RawRule { segment: segment.to_owned(), ..RawRule::default() };
    for (name, value) in attributes {
        let slot = if name.eq_ignore_ascii_case("policy") {
            &mut rule.policy
        } else if service && name.eq_ignore_ascii_case("intentions") {
            &mut rule.intentions
        } else {
            continue;
        };
        match value {
            Node::Text(s) => slot.clone_from(s),
            other => {
                let (seg, what) = (go_quote(segment), other.kind());
                return Err(syntax(format!("{kind} {seg}: {name} must be a string, found {what}")));
            }
        }
    }
    Ok(rule)
}

fn check_unsegmented(u: Unsegmented, value: &str) -> Result<(), RulesError> {
    if value.is_empty() || Access::from_rule_text(value, false).is_some() {
        return Ok(());
    }
    Err(RulesError::Policy { kind: u.kind(), rule: go_quote(value) })
}

fn check_segment(r: Resource, m: Match, rule: &RawRule) -> Result<(), RulesError> {
    if Access::from_rule_text(&rule.policy, r == Resource::Key).is_none() {
        return Err(RulesError::Policy { kind: kind_name(r, m), rule: go_rule(r, rule) });
    }
    if !rule.intentions.is_empty() && Access::from_rule_text(&rule.intentions, false).is_none() {
        return Err(RulesError::Intentions { rule: go_rule(r, rule) });
    }
    Ok(())
}

/// Consul's `%#v` of the rule struct it failed to validate [live on 1.8.7].
fn go_rule(r: Resource, rule: &RawRule) -> String {
    let (seg, policy) = (go_quote(&rule.segment), go_quote(&rule.policy));
    const ENT: &str = "EnterpriseRule:acl.EnterpriseRule{}";
    match r {
        Resource::Key => format!("&acl.KeyRule{{Prefix:{seg}, Policy:{policy}, {ENT}}}"),
        Resource::Node => format!("&acl.NodeRule{{Name:{seg}, Policy:{policy}, {ENT}}}"),
        Resource::Service => {
            let intentions = go_quote(&rule.intentions);
            format!("&acl.ServiceRule{{Name:{seg}, Policy:{policy}, Intentions:{intentions}, {ENT}}}")
        }
        Resource::Agent => format!("&acl.AgentRule{{Node:{seg}, Policy:{policy}}}"),
        Resource::Session => format!("&acl.SessionRule{{Node:{seg}, Policy:{policy}}}"),
        Resource::Event => format!("&acl.EventRule{{Event:{seg}, Policy:{policy}}}"),
        Resource::Query => format!("&acl.PreparedQueryRule{{Prefix:{seg}, Policy:{policy}}}"),
    }
}

/// A string as Go's `strconv.Quote` writes it (what `%#v` shows): `\"`, `\\`, the C escapes,
/// `\xNN` for other ASCII controls, `\uNNNN`/`\UNNNNNNNN` for other non-printable characters.
/// Go's printability test is Unicode's categories; this uses Rust's control and whitespace
/// tests plus the format characters policies are likely to meet, which agrees on ASCII.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') || is_format_char(c) => {
                let code = u32::from(c);
                let _ =
                    if code <= 0xffff { write!(out, "\\u{code:04x}") } else { write!(out, "\\U{code:08x}") };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Unicode format characters (category Cf) Go escapes: soft hyphen, zero-width and bidi
/// controls, word joiners, the byte-order mark.
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}
