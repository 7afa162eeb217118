//! ACL RULES, enforcement: the policies of one token merged and compiled into lookup tables.
//!
//! Input: the token's `PolicyRules` (its policies, its roles' policies, its identities'
//! synthetic policies) and `acl.default_policy`. Output: an `Authorizer` answering
//! `key_read(name)`, `service_write(name)`, ... with `true` (allowed) or `false`.
//!
//! Evaluation (spec §1.5, trap 5; Consul's `policyAuthorizer`, `getPolicy`, `enforce`):
//! 1. merge: every (resource, exact|prefix, segment) keeps its strongest disposition across
//!    all policies, deny > write > list > read;
//! 2. look up: walking the name from its first byte, an exact rule on the whole name wins
//!    outright (even over a prefix deny); otherwise the longest prefix rule seen wins, `""`
//!    matching every name; prefixes are raw byte prefixes, not paths;
//! 3. enforce: write grants read, list and write; list grants read and list; read grants
//!    read; deny grants nothing; no rule falls to the default policy.
//!
//! Speed: each segmented resource is one byte trie holding both rule kinds (the radix tree
//! Consul uses, uncompressed). A lookup walks the name once and stops at the first byte no
//! rule continues: O(length of the name) with a binary search over a node's children, no
//! allocation, independent of the number of rules. `key_write_prefix` is O(length of the
//! prefix) too: every node knows whether a rule below it grants less than write. Building is
//! O(total bytes of all segments). An `Authorizer` is immutable; share it behind an `Arc`.

use std::collections::BTreeMap;

use super::{Access, Match, Need, PolicyRules, Resource, Unsegmented};

/// `acl.default_policy`: what a request no rule covers gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultPolicy {
    /// Everything but the ACL system itself (Consul's allow-all authorizer refuses `acl`).
    Allow,
    /// Nothing.
    Deny,
}

/// What answers when no rule matches: Consul's static authorizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallback {
    /// `default_policy = "deny"`.
    Deny,
    /// `default_policy = "allow"`: all but `acl` read and write.
    Allow,
    /// The root `manage` authorizer: everything.
    Manage,
}

/// One token's compiled permissions. Immutable; cheap to share.
#[derive(Debug, Clone)]
pub(crate) struct Authorizer {
    /// Indexed by `Resource::index`.
    segmented: [SegmentTrie; 7],
    /// Indexed by `Unsegmented::index`, merged across policies.
    unsegmented: [Option<Access>; 3],
    fallback: Fallback,
}

impl Authorizer {
    /// Merges `policies` (in any order: the result does not depend on it) over `default`.
    pub(crate) fn new<'a>(
        policies: impl IntoIterator<Item = &'a PolicyRules>,
        default: DefaultPolicy,
    ) -> Self {
        let mut merged: [[BTreeMap<&str, Access>; 2]; 7] = Default::default();
        let mut unsegmented = [None; 3];
        for policy in policies {
            for u in Unsegmented::ALL {
                unsegmented[u.index()] = unsegmented[u.index()].max(policy.unsegmented(u));
            }
            for r in Resource::ALL {
                for m in [Match::Exact, Match::Prefix] {
                    for (segment, rule) in policy.segment_rules(r).table(m) {
                        let slot =
                            merged[r.index()][m as usize].entry(segment.as_str()).or_insert(rule.access);
                        *slot = (*slot).max(rule.access);
                    }
                }
            }
        }
        let segmented = merged.map(|[exact, prefix]| SegmentTrie::build(&exact, &prefix));
        let fallback = match default {
            DefaultPolicy::Allow => Fallback::Allow,
            DefaultPolicy::Deny => Fallback::Deny,
        };
        Self { segmented, unsegmented, fallback }
    }

    /// The global-management authorizer (Consul's root `manage`): allows everything. The
    /// built-in `global-management` policy compiles to the same answers
    /// (`GLOBAL_MANAGEMENT_RULES`).
    pub(crate) fn manage_all() -> Self {
        Self { segmented: Default::default(), unsegmented: [None; 3], fallback: Fallback::Manage }
    }

    /// Whether a segmented rule grants `need` on `name`.
    pub(crate) fn allows(&self, resource: Resource, name: &str, need: Need) -> bool {
        match self.segmented[resource.index()].lookup(name.as_bytes()) {
            Some(access) => access.grants(need),
            None => self.fallback != Fallback::Deny,
        }
    }

    /// Whether the rule on an unsegmented resource grants `need`.
    pub(crate) fn allows_unsegmented(&self, resource: Unsegmented, need: Need) -> bool {
        match self.unsegmented[resource.index()] {
            Some(access) => access.grants(need),
            None => match self.fallback {
                Fallback::Manage => true,
                Fallback::Allow => resource != Unsegmented::Acl,
                Fallback::Deny => false,
            },
        }
    }

    /// `GET /v1/kv/:key` and each entry of a recursive read.
    pub(crate) fn key_read(&self, key: &str) -> bool {
        self.allows(Resource::Key, key, Need::Read)
    }

    /// `GET /v1/kv/:prefix?recurse` / `?keys` as a whole. Only consulted when
    /// `acl.enable_key_list_policy` is true (spec §1.1, Consul's `KVS.List`): then a denied
    /// list is 403; when false there is no list check and entries are only filtered by
    /// `key_read`, which also applies after an allowed list.
    pub(crate) fn key_list(&self, prefix: &str) -> bool {
        self.allows(Resource::Key, prefix, Need::List)
    }

    /// `PUT`/`DELETE /v1/kv/:key` (also cas, acquire, release), txn KV writes.
    pub(crate) fn key_write(&self, key: &str) -> bool {
        self.allows(Resource::Key, key, Need::Write)
    }

    /// `DELETE /v1/kv/:prefix?recurse` (Consul's `KeyWritePrefix`, spec §1.5 step 4): the
    /// longest prefix rule covering `prefix` must grant write, and no rule, exact or prefix,
    /// on `prefix` or under it may grant less than write. With no covering prefix rule and no
    /// such rule under it, the default policy decides.
    pub(crate) fn key_write_prefix(&self, prefix: &str) -> bool {
        match self.segmented[Resource::Key.index()].write_prefix(prefix.as_bytes()) {
            Some(allowed) => allowed,
            None => self.fallback != Fallback::Deny,
        }
    }

    /// Service discovery (catalog, health, DNS, agent services).
    pub(crate) fn service_read(&self, name: &str) -> bool {
        self.allows(Resource::Service, name, Need::Read)
    }

    /// Registering or deregistering the service.
    pub(crate) fn service_write(&self, name: &str) -> bool {
        self.allows(Resource::Service, name, Need::Write)
    }

    /// Node data in catalog, health, members, coordinates and DNS.
    pub(crate) fn node_read(&self, name: &str) -> bool {
        self.allows(Resource::Node, name, Need::Read)
    }

    /// Registering the node, node checks, maintenance, coordinate updates.
    pub(crate) fn node_write(&self, name: &str) -> bool {
        self.allows(Resource::Node, name, Need::Write)
    }

    /// Reading sessions of the node `node`.
    pub(crate) fn session_read(&self, node: &str) -> bool {
        self.allows(Resource::Session, node, Need::Read)
    }

    /// Creating, renewing or destroying a session on the node `node`.
    pub(crate) fn session_write(&self, node: &str) -> bool {
        self.allows(Resource::Session, node, Need::Write)
    }

    /// Agent utility reads (`/v1/agent/self`, metrics, monitor) on the agent named `node`.
    pub(crate) fn agent_read(&self, node: &str) -> bool {
        self.allows(Resource::Agent, node, Need::Read)
    }

    /// Agent utility writes (reload, join, leave, token) on the agent named `node`.
    pub(crate) fn agent_write(&self, node: &str) -> bool {
        self.allows(Resource::Agent, node, Need::Write)
    }

    /// Listing the user event `name`.
    pub(crate) fn event_read(&self, name: &str) -> bool {
        self.allows(Resource::Event, name, Need::Read)
    }

    /// Firing the user event `name`.
    pub(crate) fn event_write(&self, name: &str) -> bool {
        self.allows(Resource::Event, name, Need::Write)
    }

    /// Reading the prepared query named `name`.
    pub(crate) fn query_read(&self, name: &str) -> bool {
        self.allows(Resource::Query, name, Need::Read)
    }

    /// Creating, changing or deleting the prepared query named `name`.
    pub(crate) fn query_write(&self, name: &str) -> bool {
        self.allows(Resource::Query, name, Need::Write)
    }

    /// `GET /v1/operator/keyring`.
    pub(crate) fn keyring_read(&self) -> bool {
        self.allows_unsegmented(Unsegmented::Keyring, Need::Read)
    }

    /// Changing the gossip keyring.
    pub(crate) fn keyring_write(&self) -> bool {
        self.allows_unsegmented(Unsegmented::Keyring, Need::Write)
    }

    /// `/v1/operator/*` reads but the keyring.
    pub(crate) fn operator_read(&self) -> bool {
        self.allows_unsegmented(Unsegmented::Operator, Need::Read)
    }

    /// `/v1/operator/*` writes but the keyring, `force-leave`.
    pub(crate) fn operator_write(&self) -> bool {
        self.allows_unsegmented(Unsegmented::Operator, Need::Write)
    }

    /// ACL API reads.
    pub(crate) fn acl_read(&self) -> bool {
        self.allows_unsegmented(Unsegmented::Acl, Need::Read)
    }

    /// ACL API writes.
    pub(crate) fn acl_write(&self) -> bool {
        self.allows_unsegmented(Unsegmented::Acl, Need::Write)
    }

    /// Management rights, as Consul 1.8 tests them (`ACLWrite` allowed): snapshots, seeing a
    /// prepared query's captured token, listing nameless queries.
    pub(crate) fn manage(&self) -> bool {
        self.acl_write()
    }
}

/// A byte trie over one resource's segments holding both rule kinds (node 0 is the root,
/// the empty segment).
#[derive(Debug, Clone)]
struct SegmentTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// An exact rule on the segment ending here.
    exact: Option<Access>,
    /// A prefix rule on the segment ending here.
    prefix: Option<Access>,
    /// Whether a rule here or below grants less than write (`key_write_prefix`).
    weak_below: bool,
    /// Children by next byte, sorted by byte.
    children: Vec<(u8, u32)>,
}

impl Default for SegmentTrie {
    fn default() -> Self {
        Self { nodes: vec![TrieNode::default()] }
    }
}

impl SegmentTrie {
    fn build(exact: &BTreeMap<&str, Access>, prefix: &BTreeMap<&str, Access>) -> Self {
        let mut trie = Self::default();
        let mut parents: Vec<usize> = vec![0];
        for (kind, table) in [(Match::Exact, exact), (Match::Prefix, prefix)] {
            for (segment, access) in table {
                let node = trie.insert(segment.as_bytes(), &mut parents);
                match kind {
                    Match::Exact => trie.nodes[node].exact = Some(*access),
                    Match::Prefix => trie.nodes[node].prefix = Some(*access),
                }
            }
        }
        // Children always come after their parent, so one backward pass lifts `weak_below`.
        for i in (0..trie.nodes.len()).rev() {
            let n = &trie.nodes[i];
            let weak = n.weak_below
                || n.exact.is_some_and(|a| a != Access::Write)
                || n.prefix.is_some_and(|a| a != Access::Write);
            trie.nodes[i].weak_below = weak;
            if i > 0 && weak {
                trie.nodes[parents[i]].weak_below = true;
            }
        }
        trie
    }

    /// The node for `segment`, created with its path if missing; `parents` grows alongside.
    fn insert(&mut self, segment: &[u8], parents: &mut Vec<usize>) -> usize {
        let mut node = 0;
        for &byte in segment {
            node = match self.child(node, byte) {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    parents.push(node);
                    let children = &mut self.nodes[node].children;
                    let at = children.partition_point(|(b, _)| *b < byte);
                    // A trie over policy segments stays far below u32::MAX nodes.
                    children.insert(at, (byte, u32::try_from(child).unwrap_or(u32::MAX)));
                    child
                }
            };
        }
        node
    }

    fn child(&self, node: usize, byte: u8) -> Option<usize> {
        let children = &self.nodes.get(node)?.children;
        let at = children.binary_search_by_key(&byte, |(b, _)| *b).ok()?;
        usize::try_from(children[at].1).ok()
    }

    /// The rule deciding `name`: its exact rule, else the longest prefix rule, else none.
    fn lookup(&self, name: &[u8]) -> Option<Access> {
        let mut node = 0;
        let mut best = self.nodes.first()?.prefix;
        for &byte in name {
            match self.child(node, byte) {
                Some(child) => node = child,
                None => return best,
            }
            best = self.nodes[node].prefix.or(best);
        }
        self.nodes[node].exact.or(best)
    }

    /// `Some(allowed)` if rules decide a recursive write under `prefix`, `None` if the
    /// default policy does (no prefix rule covers it and none under it is weaker than write).
    fn write_prefix(&self, prefix: &[u8]) -> Option<bool> {
        let mut node = 0;
        let mut covering = self.nodes.first()?.prefix;
        let mut reached = true;
        for &byte in prefix {
            match self.child(node, byte) {
                Some(child) => node = child,
                None => {
                    reached = false;
                    break;
                }
            }
            covering = self.nodes[node].prefix.or(covering);
        }
        if covering.is_some_and(|a| a != Access::Write) || (reached && self.nodes[node].weak_below) {
            return Some(false);
        }
        covering.map(|_| true)
    }
}
