//! ACL RULES: Consul 1.8's policy rules language and the authorizer that enforces it
//! (spec §1.5; `acl/policy*.go` in Consul's tree). The pure core of the ACL system: no IO,
//! no clock, no token or policy storage (the catalog stores those and imports this module).
//!
//! ```text
//! policy Rules text (HCL or JSON) --parse_rules--> PolicyRules (one policy, validated)
//! [&PolicyRules] of a token (its policies, its roles' policies, identities) + default_policy
//!     --Authorizer::new--> Authorizer --key_read(name), service_write(name), ...--> bool
//! ```
//!
//! Stages, one file each: `syntax` (HCL or JSON text -> one document tree), `layout` (Consul's
//! HCL 1 one-line forms laid out for HCL 2), `parse` (tree -> `PolicyRules`, with Consul's
//! error texts), `rules` (the per-policy model and the
//! built-in rule sets), `authorizer` (the compiled, merged lookup tables). Beside them,
//! `translate` turns a legacy (pre-1.4) token's rules into the current syntax as Consul's
//! HCL 1 printer prints them, and `parse_legacy_rules` reads them the legacy way.
//!
//! Invariants:
//! - A rule set is validated before it exists: a `PolicyRules` never holds `list` outside
//!   `key`/`key_prefix`, and every disposition is one of read, list, write, deny.
//! - Merging is order-free: several rules on one (resource, exact|prefix, segment) keep the
//!   strongest, deny > write > list > read, whichever policy or line they came from.
//! - Anything no rule covers falls to the default policy; `default_policy = "allow"` still
//!   does not grant `acl` (Consul's allow-all authorizer refuses ACL reads and writes; only the
//!   management authorizer grants them) [live on 1.8.7: `GET /v1/acl/policies` is 403].
//! - Parsing never panics on any input (proptest and the `acl_rules` fuzz target check it).

// This round builds the pure core; the catalog (tokens, policies), HTTP enforcement and DNS
// filtering call it from the next round on (issue 18 items 2, 4, 5).
#![allow(dead_code)]

mod authorizer;
#[doc(hidden)]
pub mod fuzz_logic;
mod layout;
mod parse;
mod resolve;
mod rules;
mod syntax;
mod translate;

#[cfg(test)]
mod tests;

#[allow(unused_imports)]
pub(crate) use authorizer::{Authorizer, DefaultPolicy};
#[allow(unused_imports)]
pub(crate) use parse::{RulesError, parse_legacy_rules, parse_rules};
#[allow(unused_imports)]
pub(crate) use resolve::{AgentToken, AgentTokens, Disabled, ROOT_NAMES, Resolve, ResolveError};
#[allow(unused_imports)]
pub(crate) use rules::{
    ANONYMOUS_TOKEN_ACCESSOR_ID, ANONYMOUS_TOKEN_SECRET, GLOBAL_MANAGEMENT_POLICY_ID,
    GLOBAL_MANAGEMENT_RULES, PolicyRules, SegmentRule, SegmentRules,
};
#[allow(unused_imports)]
pub(crate) use translate::{TranslateError, translate_legacy_rules};

/// A rule's disposition (Consul's `policy = "..."`). The derived order is the merge order:
/// at one segment the greater wins (deny > write > list > read, spec §1.5 step 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Access {
    /// Reads only.
    Read,
    /// Reads and recursive KV listing (`key`/`key_prefix` only).
    List,
    /// Reads, lists and writes.
    Write,
    /// Nothing, and no fall-through to the default policy.
    Deny,
}

impl Access {
    /// The disposition a rule text names, case-insensitively as Consul 1.8 reads it
    /// (`"WRITE"` is write [live]); `list` only where `list_allowed` (key rules).
    pub(crate) fn from_rule_text(text: &str, list_allowed: bool) -> Option<Self> {
        if text.eq_ignore_ascii_case("read") {
            Some(Self::Read)
        } else if text.eq_ignore_ascii_case("write") {
            Some(Self::Write)
        } else if text.eq_ignore_ascii_case("deny") {
            Some(Self::Deny)
        } else if list_allowed && text.eq_ignore_ascii_case("list") {
            Some(Self::List)
        } else {
            None
        }
    }

    /// The text a policy's Rules spell it with.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::List => "list",
            Self::Write => "write",
            Self::Deny => "deny",
        }
    }

    /// Whether this disposition grants `need` (spec §1.5 step 3: write grants read, list and
    /// write; list grants read and list; read grants read; deny grants nothing).
    pub(crate) fn grants(self, need: Need) -> bool {
        match self {
            Self::Write => true,
            Self::List => need != Need::Write,
            Self::Read => need == Need::Read,
            Self::Deny => false,
        }
    }
}

/// What a request needs on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Read one object.
    Read,
    /// List a KV prefix recursively (under `enable_key_list_policy`).
    List,
    /// Create, change or delete.
    Write,
}

/// The resources whose rules name a segment (`key "app/" {...}`, spec §1.5's table), in
/// the order Consul validates them (`PolicyRules.Validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Resource {
    /// `agent`/`agent_prefix`: a node name; the agent utility endpoints.
    Agent,
    /// `key`/`key_prefix`: a KV key.
    Key,
    /// `node`/`node_prefix`: a node name.
    Node,
    /// `service`/`service_prefix`: a service name.
    Service,
    /// `session`/`session_prefix`: the node name of the session.
    Session,
    /// `event`/`event_prefix`: a user event name.
    Event,
    /// `query`/`query_prefix`: a prepared-query name.
    Query,
}

impl Resource {
    /// Every segmented resource, in Consul's validation order.
    pub(crate) const ALL: [Self; 7] =
        [Self::Agent, Self::Key, Self::Node, Self::Service, Self::Session, Self::Event, Self::Query];

    /// Position in `ALL` (tables are indexed by it).
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The rule kind of an exact rule (`key`); a prefix rule adds `_prefix`.
    pub(crate) fn exact_kind(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Key => "key",
            Self::Node => "node",
            Self::Service => "service",
            Self::Session => "session",
            Self::Event => "event",
            Self::Query => "query",
        }
    }

    /// The rule kind of a prefix rule (`key_prefix`).
    pub(crate) fn prefix_kind(self) -> &'static str {
        match self {
            Self::Agent => "agent_prefix",
            Self::Key => "key_prefix",
            Self::Node => "node_prefix",
            Self::Service => "service_prefix",
            Self::Session => "session_prefix",
            Self::Event => "event_prefix",
            Self::Query => "query_prefix",
        }
    }
}

/// Whether a segmented rule names one object or every name starting with its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Match {
    /// `key "a/b"`: exactly the name `a/b` (in 1.8's current syntax; in a legacy token's rules
    /// `key` is a prefix, spec §1.5.5, `parse_legacy_rules`).
    Exact,
    /// `key_prefix "a/"`: every name starting with `a/` as a raw string prefix (`""` is all).
    Prefix,
}

/// The resources with one rule and no segment (`operator = "read"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Unsegmented {
    /// `acl`: the ACL API, snapshots, and the "management" check.
    Acl,
    /// `keyring`: `/v1/operator/keyring`.
    Keyring,
    /// `operator`: the rest of `/v1/operator/*`.
    Operator,
}

impl Unsegmented {
    /// Every unsegmented resource.
    pub(crate) const ALL: [Self; 3] = [Self::Acl, Self::Keyring, Self::Operator];

    /// Position in `ALL`.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Its rule kind.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::Acl => "acl",
            Self::Keyring => "keyring",
            Self::Operator => "operator",
        }
    }
}
