//! ACL RULES, the model: one policy's validated rules (`PolicyRules`), and the built-in rule
//! sets Consul synthesizes (global-management, service and node identities, agent_master).
//!
//! Input: rules from `parse::parse_rules`, or built here. Output: per segmented resource an
//! exact and a prefix table, per unsegmented resource one disposition.
//! Invariants: within one policy several rules on one (resource, match, segment) are merged
//! (deny > write > list > read, as Consul 1.8 does [live]); an unsegmented resource written
//! twice keeps the last value (Consul's HCL decoding overwrites [live]); `list` appears only on
//! `Resource::Key`.

use std::collections::BTreeMap;

use super::{Access, Match, Resource, Unsegmented};

/// ID of the built-in `global-management` policy (spec §1.2).
pub(crate) const GLOBAL_MANAGEMENT_POLICY_ID: &str = "00000000-0000-0000-0000-000000000001";
/// AccessorID of the built-in anonymous token (spec §1.2).
pub(crate) const ANONYMOUS_TOKEN_ACCESSOR_ID: &str = "00000000-0000-0000-0000-000000000002";
/// SecretID of the built-in anonymous token (spec §1.2) [live].
pub(crate) const ANONYMOUS_TOKEN_SECRET: &str = "anonymous";

/// The Rules text of the built-in `global-management` policy, byte for byte as Consul 1.8.7
/// serves it from `GET /v1/acl/policy/name/global-management` [live].
pub(crate) const GLOBAL_MANAGEMENT_RULES: &str = "\nacl = \"write\"\nagent_prefix \"\" {\n\tpolicy = \"write\"\n}\nevent_prefix \"\" {\n\tpolicy = \"write\"\n}\nkey_prefix \"\" {\n\tpolicy = \"write\"\n}\nkeyring = \"write\"\nnode_prefix \"\" {\n\tpolicy = \"write\"\n}\noperator = \"write\"\nquery_prefix \"\" {\n\tpolicy = \"write\"\n}\nservice_prefix \"\" {\n\tpolicy = \"write\"\n\tintentions = \"write\"\n}\nsession_prefix \"\" {\n\tpolicy = \"write\"\n}";

/// The merged rule on one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentRule {
    /// `policy = "..."`.
    pub(crate) access: Access,
    /// `intentions = "..."` (service rules only). Parsed, validated and kept so a policy
    /// round-trips, but not evaluated: cairn has no Connect intentions to guard.
    pub(crate) intentions: Option<Access>,
}

impl SegmentRule {
    /// A rule with no intentions.
    pub(crate) fn new(access: Access) -> Self {
        Self { access, intentions: None }
    }

    /// The stronger of two rules on one segment, field by field (deny > write > list > read;
    /// any intentions beat none).
    pub(crate) fn merge(self, other: Self) -> Self {
        Self { access: self.access.max(other.access), intentions: self.intentions.max(other.intentions) }
    }
}

/// The rules of one segmented resource: segment -> merged rule, for exact and prefix rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SegmentRules {
    /// `key "a/b"`.
    pub(crate) exact: BTreeMap<String, SegmentRule>,
    /// `key_prefix "a/"`.
    pub(crate) prefix: BTreeMap<String, SegmentRule>,
}

impl SegmentRules {
    /// The table for one match kind.
    pub(crate) fn table(&self, kind: Match) -> &BTreeMap<String, SegmentRule> {
        match kind {
            Match::Exact => &self.exact,
            Match::Prefix => &self.prefix,
        }
    }
}

/// One policy's rules, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PolicyRules {
    /// Indexed by `Resource::index`.
    segmented: [SegmentRules; 7],
    /// Indexed by `Unsegmented::index`; `None` = no rule (also `acl = ""`, which Consul allows).
    unsegmented: [Option<Access>; 3],
    /// Top-level kinds Consul 1.8 accepts and ignores (`foo "x" { ... }` stores with 200
    /// [live]): kept so the HTTP layer can log them. They grant nothing.
    ignored_kinds: Vec<String>,
}

impl PolicyRules {
    /// The exact and prefix rules of `resource`.
    pub(crate) fn segment_rules(&self, resource: Resource) -> &SegmentRules {
        &self.segmented[resource.index()]
    }

    /// The rule on an unsegmented resource, if any.
    pub(crate) fn unsegmented(&self, resource: Unsegmented) -> Option<Access> {
        self.unsegmented[resource.index()]
    }

    /// Unknown top-level kinds the rules text named (ignored, as Consul 1.8 ignores them).
    pub(crate) fn ignored_kinds(&self) -> &[String] {
        &self.ignored_kinds
    }

    /// Adds a rule, merging with one already on the same segment. `Access::List` outside
    /// `Resource::Key` is the parser's to refuse; here it is kept as given.
    pub(crate) fn add(&mut self, resource: Resource, kind: Match, segment: &str, rule: SegmentRule) {
        let rules = &mut self.segmented[resource.index()];
        let table = match kind {
            Match::Exact => &mut rules.exact,
            Match::Prefix => &mut rules.prefix,
        };
        table.entry(segment.to_owned()).and_modify(|r| *r = r.merge(rule)).or_insert(rule);
    }

    /// Sets an unsegmented rule (the last one written wins within one policy).
    pub(crate) fn set(&mut self, resource: Unsegmented, access: Option<Access>) {
        self.unsegmented[resource.index()] = access;
    }

    /// Records an unknown top-level kind.
    pub(crate) fn ignore_kind(&mut self, kind: &str) {
        self.ignored_kinds.push(kind.to_owned());
    }

    /// Whether the policy grants or denies nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.unsegmented.iter().all(Option::is_none)
            && self.segmented.iter().all(|r| r.exact.is_empty() && r.prefix.is_empty())
    }

    /// The synthetic policy of a service identity `name` (spec §1.2): `service "name"` and
    /// `service "name-sidecar-proxy"` write; `service_prefix ""` and `node_prefix ""` read.
    pub(crate) fn service_identity(name: &str) -> Self {
        let mut rules = Self::default();
        rules.add(Resource::Service, Match::Exact, name, SegmentRule::new(Access::Write));
        let sidecar = format!("{name}-sidecar-proxy");
        rules.add(Resource::Service, Match::Exact, &sidecar, SegmentRule::new(Access::Write));
        rules.add(Resource::Service, Match::Prefix, "", SegmentRule::new(Access::Read));
        rules.add(Resource::Node, Match::Prefix, "", SegmentRule::new(Access::Read));
        rules
    }

    /// The synthetic policy of a node identity `name` (spec §1.2; valid only in its
    /// datacenter, which the caller checks): `node "name"` write, `service_prefix ""` read.
    pub(crate) fn node_identity(name: &str) -> Self {
        let mut rules = Self::default();
        rules.add(Resource::Node, Match::Exact, name, SegmentRule::new(Access::Write));
        rules.add(Resource::Service, Match::Prefix, "", SegmentRule::new(Access::Read));
        rules
    }

    /// What `acl.tokens.agent_master` grants on the agent named `node` (spec §1.1):
    /// `agent "node"` write and `node_prefix ""` read, resolved locally.
    pub(crate) fn agent_master(node: &str) -> Self {
        let mut rules = Self::default();
        rules.add(Resource::Agent, Match::Exact, node, SegmentRule::new(Access::Write));
        rules.add(Resource::Node, Match::Prefix, "", SegmentRule::new(Access::Read));
        rules
    }
}
