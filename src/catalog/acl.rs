//! ACL STATE: tokens, policies and roles as replicated catalog state (spec §1.2, §1.12).
//!
//! Stage: domain model, written only by `catalog::apply` (commands `AclBootstrap`,
//! `AclTokenSet`, `AclPolicySet`, …), read by the token resolver and the HTTP layer.
//! Input: the records a proposer built (IDs, SecretIDs and CreateTime chosen by the proposer,
//! never here). Output: `AclState`, indexed by AccessorID, SecretID and name.
//!
//! Invariants:
//! - Links from a token or role to policies and roles are stored by ID; names are resolved
//!   at write time (a renamed policy does not break its tokens) and again at read time.
//! - A SecretID never appears in `Debug` output (logs, panics): `AclToken`'s impl redacts it.
//! - `content_errors` reads only a record's content (no state), so the HTTP layer and the
//!   server that receives a forwarded write reach the same verdict; what depends on the
//!   state (duplicates, unknown links, built-ins) is decided by `apply`.
//! - The whole ACL state is one LMDB row (`Change::Acl`): ACL writes are rare and the tables
//!   small, so rewriting the row keeps the store simple and a reload exact.

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::acl::{
    ANONYMOUS_TOKEN_ACCESSOR_ID, ANONYMOUS_TOKEN_SECRET, GLOBAL_MANAGEMENT_POLICY_ID, GLOBAL_MANAGEMENT_RULES,
};

/// Name of the built-in management policy.
pub(crate) const GLOBAL_MANAGEMENT_NAME: &str = "global-management";
/// Prefix of the IDs Consul reserves for built-ins.
pub(crate) const RESERVED_ID_PREFIX: &str = "00000000-0000-0000-0000-0000000000";
/// Shortest `ExpirationTTL` (and how far ahead an `ExpirationTime` must be), in ms.
pub(crate) const MIN_TOKEN_TTL_MS: u64 = 60_000;
/// Longest `ExpirationTTL`, in ms.
pub(crate) const MAX_TOKEN_TTL_MS: u64 = 24 * 3_600_000;

/// A token's or role's link to a policy or role: stored by ID, the name as resolved at write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclLink {
    pub id: String,
    pub name: String,
}

/// `ServiceIdentities[]`: service `S` (and its sidecar) write, optionally only in some DCs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceIdentity {
    pub service_name: String,
    #[serde(default)]
    pub datacenters: Vec<String>,
}

/// `NodeIdentities[]`: node `N` write in datacenter `dc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub node_name: String,
    pub datacenter: String,
}

/// One ACL token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclToken {
    pub accessor_id: String,
    pub secret_id: String,
    pub description: String,
    pub policies: Vec<AclLink>,
    pub roles: Vec<AclLink>,
    pub service_identities: Vec<ServiceIdentity>,
    pub node_identities: Vec<NodeIdentity>,
    pub local: bool,
    /// Unix ms after which the token is invisible; `None`: never.
    pub expiration_time_ms: Option<u64>,
    /// Unix ms, set by the proposer.
    pub create_time_ms: u64,
    pub create_index: u64,
    pub modify_index: u64,
    /// A legacy (pre-1.4) token's `Type`: `client` or `management`; empty for a current
    /// token. Consul keeps it on the tokens the legacy API and the leader made (the master and
    /// bootstrap tokens are `management`), and `/v1/acl/list` shows only tokens that have one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub legacy_type: String,
    /// A legacy token's rules, in the legacy syntax (`key "a"` is a prefix); they add to what
    /// its policies grant (`acl::parse_legacy_rules`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rules: String,
}

/// A legacy token's `Type` values.
pub(crate) const LEGACY_CLIENT: &str = "client";
/// A legacy management token's `Type`.
pub(crate) const LEGACY_MANAGEMENT: &str = "management";

impl std::fmt::Debug for AclToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclToken")
            .field("accessor_id", &self.accessor_id)
            .field("secret_id", &"<hidden>")
            .field("description", &self.description)
            .field("policies", &self.policies)
            .field("roles", &self.roles)
            .field("local", &self.local)
            .field("expiration_time_ms", &self.expiration_time_ms)
            .field("create_index", &self.create_index)
            .field("modify_index", &self.modify_index)
            .field("legacy_type", &self.legacy_type)
            .finish_non_exhaustive()
    }
}

impl AclToken {
    /// Whether the token has expired at `now_ms` (expired tokens are invisible at once).
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.expiration_time_ms.is_some_and(|t| t <= now_ms)
    }

    /// Whether the legacy API may not change it (Consul's `UsesNonLegacyFields`): it has no
    /// legacy type, or links, identities or an expiration (a legacy management token links
    /// `global-management` once made, so it counts too) [live on 1.8.7].
    pub(crate) fn uses_current_fields(&self) -> bool {
        self.legacy_type.is_empty()
            || !self.policies.is_empty()
            || !self.roles.is_empty()
            || !self.service_identities.is_empty()
            || !self.node_identities.is_empty()
            || self.expiration_time_ms.is_some()
    }
}

/// One ACL policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclPolicy {
    pub id: String,
    pub name: String,
    pub description: String,
    pub rules: String,
    pub datacenters: Vec<String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// One ACL role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRole {
    pub id: String,
    pub name: String,
    pub description: String,
    pub policies: Vec<AclLink>,
    pub service_identities: Vec<ServiceIdentity>,
    pub node_identities: Vec<NodeIdentity>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Serialisable form of the ACL state (the LMDB row, snapshots, backups).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclDump {
    pub tokens: Vec<AclToken>,
    pub policies: Vec<AclPolicy>,
    pub roles: Vec<AclRole>,
    /// Raft index of the last ACL change (`X-Consul-Index` of the ACL reads).
    pub index: u64,
    /// Raft index of the bootstrap (the reset index), if bootstrapped.
    pub bootstrap_index: Option<u64>,
}

impl AclDump {
    /// Whether there is no ACL state at all (never bootstrapped, nothing written).
    pub(crate) fn is_empty(&self) -> bool {
        self.tokens.is_empty()
            && self.policies.is_empty()
            && self.roles.is_empty()
            && self.index == 0
            && self.bootstrap_index.is_none()
    }
}

/// The ACL tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AclState {
    tokens: OrdMap<String, Arc<AclToken>>,
    by_secret: OrdMap<String, String>,
    policies: OrdMap<String, Arc<AclPolicy>>,
    policy_names: OrdMap<String, String>,
    roles: OrdMap<String, Arc<AclRole>>,
    role_names: OrdMap<String, String>,
    index: u64,
    bootstrap_index: Option<u64>,
}

impl AclState {
    pub(crate) fn from_dump(dump: AclDump) -> Self {
        let mut s = Self { index: dump.index, bootstrap_index: dump.bootstrap_index, ..Self::default() };
        for t in dump.tokens {
            s.put_token(t);
        }
        for p in dump.policies {
            s.put_policy(p);
        }
        for r in dump.roles {
            s.put_role(r);
        }
        s
    }

    pub(crate) fn dump(&self) -> AclDump {
        AclDump {
            tokens: self.tokens.values().map(|t| (**t).clone()).collect(),
            policies: self.policies.values().map(|p| (**p).clone()).collect(),
            roles: self.roles.values().map(|r| (**r).clone()).collect(),
            index: self.index,
            bootstrap_index: self.bootstrap_index,
        }
    }

    /// Raft index of the last ACL change.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    /// The reset index, once bootstrapped.
    pub(crate) fn bootstrap_index(&self) -> Option<u64> {
        self.bootstrap_index
    }

    pub(crate) fn token(&self, accessor: &str) -> Option<&Arc<AclToken>> {
        self.tokens.get(accessor)
    }

    pub(crate) fn token_by_secret(&self, secret: &str) -> Option<&Arc<AclToken>> {
        self.tokens.get(self.by_secret.get(secret)?)
    }

    pub(crate) fn tokens(&self) -> impl Iterator<Item = &Arc<AclToken>> {
        self.tokens.values()
    }

    pub(crate) fn policy(&self, id: &str) -> Option<&Arc<AclPolicy>> {
        self.policies.get(id)
    }

    pub(crate) fn policy_by_name(&self, name: &str) -> Option<&Arc<AclPolicy>> {
        self.policies.get(self.policy_names.get(name)?)
    }

    pub(crate) fn policies(&self) -> impl Iterator<Item = &Arc<AclPolicy>> {
        self.policies.values()
    }

    pub(crate) fn role(&self, id: &str) -> Option<&Arc<AclRole>> {
        self.roles.get(id)
    }

    pub(crate) fn role_by_name(&self, name: &str) -> Option<&Arc<AclRole>> {
        self.roles.get(self.role_names.get(name)?)
    }

    pub(crate) fn roles(&self) -> impl Iterator<Item = &Arc<AclRole>> {
        self.roles.values()
    }

    pub(crate) fn put_token(&mut self, t: AclToken) {
        if let Some(old) = self.tokens.get(&t.accessor_id) {
            self.by_secret.remove(&old.secret_id);
        }
        self.by_secret.insert(t.secret_id.clone(), t.accessor_id.clone());
        self.tokens.insert(t.accessor_id.clone(), Arc::new(t));
    }

    pub(crate) fn remove_token(&mut self, accessor: &str) -> bool {
        match self.tokens.remove(accessor) {
            Some(old) => {
                self.by_secret.remove(&old.secret_id);
                true
            }
            None => false,
        }
    }

    pub(crate) fn put_policy(&mut self, p: AclPolicy) {
        if let Some(old) = self.policies.get(&p.id) {
            self.policy_names.remove(&old.name);
        }
        self.policy_names.insert(p.name.clone(), p.id.clone());
        self.policies.insert(p.id.clone(), Arc::new(p));
    }

    pub(crate) fn remove_policy(&mut self, id: &str) -> bool {
        match self.policies.remove(id) {
            Some(old) => {
                self.policy_names.remove(&old.name);
                true
            }
            None => false,
        }
    }

    pub(crate) fn put_role(&mut self, r: AclRole) {
        if let Some(old) = self.roles.get(&r.id) {
            self.role_names.remove(&old.name);
        }
        self.role_names.insert(r.name.clone(), r.id.clone());
        self.roles.insert(r.id.clone(), Arc::new(r));
    }

    pub(crate) fn remove_role(&mut self, id: &str) -> bool {
        match self.roles.remove(id) {
            Some(old) => {
                self.role_names.remove(&old.name);
                true
            }
            None => false,
        }
    }

    pub(crate) fn touch(&mut self, index: u64) {
        self.index = index;
    }

    pub(crate) fn set_bootstrapped(&mut self, index: u64) {
        self.bootstrap_index = Some(index);
    }
}

/// The built-in `global-management` policy, as created at `index`.
pub(crate) fn global_management_policy(index: u64) -> AclPolicy {
    AclPolicy {
        id: GLOBAL_MANAGEMENT_POLICY_ID.into(),
        name: GLOBAL_MANAGEMENT_NAME.into(),
        description: "Builtin Policy that grants unlimited access".into(),
        rules: GLOBAL_MANAGEMENT_RULES.into(),
        datacenters: Vec::new(),
        create_index: index,
        modify_index: index,
    }
}

/// The built-in anonymous token, as created at `index` at `now_ms`.
pub(crate) fn anonymous_token(index: u64, now_ms: u64) -> AclToken {
    AclToken {
        accessor_id: ANONYMOUS_TOKEN_ACCESSOR_ID.into(),
        secret_id: ANONYMOUS_TOKEN_SECRET.into(),
        description: "Anonymous Token".into(),
        policies: Vec::new(),
        roles: Vec::new(),
        service_identities: Vec::new(),
        node_identities: Vec::new(),
        local: false,
        expiration_time_ms: None,
        create_time_ms: now_ms,
        create_index: index,
        modify_index: index,
        legacy_type: String::new(),
        rules: String::new(),
    }
}

/// Content checks of an ACL write, whoever proposes it (`Command::validate`).
pub(crate) fn command_content_errors(cmd: &super::AclCommand) -> Result<(), String> {
    use super::AclCommand as A;
    match cmd {
        A::TokenSet { token, .. } => token_content_errors(token),
        A::PolicySet { policy, .. } => policy_content_errors(policy),
        A::RoleSet { role, .. } => role_content_errors(role),
        A::InitBuiltins { .. }
        | A::Bootstrap { .. }
        | A::TokenDelete(_)
        | A::PolicyDelete(_)
        | A::RoleDelete(_) => Ok(()),
    }
}

/// Consul's policy-name rule: `^[A-Za-z0-9\-_]{1,128}$`; roles allow 256.
fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Content checks of a policy write (Consul's texts; HTTP 500).
pub(crate) fn policy_content_errors(p: &AclPolicy) -> Result<(), String> {
    if !valid_name(&p.name, 128) {
        return Err(
            "Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed".into()
        );
    }
    Ok(())
}

/// Content checks of a role write.
pub(crate) fn role_content_errors(r: &AclRole) -> Result<(), String> {
    if !valid_name(&r.name, 256) {
        return Err(
            "Invalid Role: invalid Name. Only alphanumeric characters, '-' and '_' are allowed".into()
        );
    }
    identities_errors(&r.service_identities, &r.node_identities)
}

/// Content checks of a token write: UUID IDs outside the reserved range.
pub(crate) fn token_content_errors(t: &AclToken) -> Result<(), String> {
    if !super::is_uuid(&t.accessor_id) {
        return Err(format!("Invalid Token: AccessorID {:?} is not a UUID", t.accessor_id));
    }
    if t.accessor_id.starts_with(RESERVED_ID_PREFIX) && t.accessor_id != ANONYMOUS_TOKEN_ACCESSOR_ID {
        return Err(
            "Invalid Token: UUIDs with the prefix \"00000000-0000-0000-0000-0000000000\" are reserved".into(),
        );
    }
    // A legacy token's secret is its legacy ID, which may be any text (`PUT /v1/acl/create`
    // with `"ID": "my-own-id"` is 200 [live on 1.8.7]).
    if t.accessor_id != ANONYMOUS_TOKEN_ACCESSOR_ID
        && t.legacy_type.is_empty()
        && !super::is_uuid(&t.secret_id)
    {
        return Err("Invalid Token: SecretID is not a UUID".into());
    }
    if t.secret_id.is_empty() {
        return Err("Invalid Token: SecretID is not a UUID".into());
    }
    match t.legacy_type.as_str() {
        "" if !t.rules.is_empty() => return Err("Rules cannot be specified for this token".into()),
        "" | LEGACY_CLIENT | LEGACY_MANAGEMENT => {}
        _ => return Err("Invalid ACL Type".into()),
    }
    if let Err(e) = crate::acl::parse_legacy_rules(&t.rules) {
        return Err(format!("ACL rule compilation failed: {e}"));
    }
    if let Some(exp) = t.expiration_time_ms {
        let ahead = exp.saturating_sub(t.create_time_ms);
        if exp <= t.create_time_ms || ahead < MIN_TOKEN_TTL_MS {
            return Err("ExpirationTTL cannot be less than 1m0s".into());
        }
        if ahead > MAX_TOKEN_TTL_MS {
            return Err("ExpirationTTL cannot be more than 24h0m0s".into());
        }
    }
    identities_errors(&t.service_identities, &t.node_identities)
}

fn identities_errors(services: &[ServiceIdentity], nodes: &[NodeIdentity]) -> Result<(), String> {
    for s in services {
        if s.service_name.is_empty() {
            return Err("Service identity is missing the service name field on this token".into());
        }
    }
    for n in nodes {
        if n.node_name.is_empty() {
            return Err("Node identity is missing the node name field on this token".into());
        }
        if n.datacenter.is_empty() {
            return Err(format!(
                "Node identity is missing the datacenter field on this token: {}",
                n.node_name
            ));
        }
    }
    Ok(())
}
