//! The ACL objects as Consul's Go client (`api.ACLToken`, `api.ACLPolicy`, `api.ACLRole` and
//! their list entries) decodes them from the agent and encodes them again for `-format=json`.
//!
//! Input: the agent's JSON. Output: the same objects re-encoded with the Go structs' field
//! order and `omitempty` rules, so `cairn acl … -format=json` prints what `consul acl …
//! -format=json` prints (checked against Consul 1.8.7): `CreateIndex` first on tokens,
//! `Datacenters: null` on policies, `Legacy` only on list entries. Invariant: every field the
//! agent sends that the CLI shows is kept; unknown fields are dropped, as Go's decoder does.

use serde::{Deserialize, Serialize};

/// `{ID, Name}` of a linked policy or role; a write may carry only one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The linked object's ID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// The linked object's name.
    #[serde(rename = "Name", default)]
    pub name: String,
}

/// A service identity: `SERVICE` or `SERVICE:dc1,dc2`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceIdentity {
    /// The service.
    #[serde(default)]
    pub service_name: String,
    /// Where it applies (empty: all datacenters).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub datacenters: Vec<String>,
}

/// A node identity: `NODE:dc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeIdentity {
    /// The node.
    #[serde(default)]
    pub node_name: String,
    /// Its datacenter.
    #[serde(default)]
    pub datacenter: String,
}

/// `null` as an empty list (Go's nil slice).
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A token (`GET /v1/acl/token/:id`, the answer to every token write and to bootstrap).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Token {
    /// Raft index of the creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
    /// The public ID.
    #[serde(rename = "AccessorID", default)]
    pub accessor_id: String,
    /// The secret (`<hidden>` without `acl:write`).
    #[serde(rename = "SecretID", default)]
    pub secret_id: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Linked policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub policies: Vec<Link>,
    /// Linked roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub roles: Vec<Link>,
    /// Service identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub service_identities: Vec<ServiceIdentity>,
    /// Node identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub node_identities: Vec<NodeIdentity>,
    /// Valid in this datacenter only.
    #[serde(default)]
    pub local: bool,
    /// When it stops working (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    /// When it was made (RFC 3339).
    #[serde(default)]
    pub create_time: String,
    /// Content hash (base64).
    #[serde(default)]
    pub hash: Option<String>,
}

/// A `GET /v1/acl/tokens` entry: a token without its secret, with `Legacy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TokenStub {
    /// Raft index of the creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
    /// The public ID.
    #[serde(rename = "AccessorID", default)]
    pub accessor_id: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Linked policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub policies: Vec<Link>,
    /// Linked roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub roles: Vec<Link>,
    /// Service identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub service_identities: Vec<ServiceIdentity>,
    /// Node identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub node_identities: Vec<NodeIdentity>,
    /// Valid in this datacenter only.
    #[serde(default)]
    pub local: bool,
    /// When it stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    /// When it was made.
    #[serde(default)]
    pub create_time: String,
    /// Content hash (base64).
    #[serde(default)]
    pub hash: Option<String>,
    /// A pre-1.4 token (never, in cairn).
    #[serde(default)]
    pub legacy: bool,
}

/// A policy (`GET /v1/acl/policy/:id`, the answer to policy writes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    /// Its ID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The rules, HCL or JSON, as written.
    #[serde(default)]
    pub rules: String,
    /// Where it applies (`null`: everywhere).
    #[serde(default)]
    pub datacenters: Option<Vec<String>>,
    /// Content hash (base64).
    #[serde(default)]
    pub hash: Option<String>,
    /// Raft index of the creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
}

/// A `GET /v1/acl/policies` entry: a policy without its rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyStub {
    /// Its ID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Where it applies (`null`: everywhere).
    #[serde(default)]
    pub datacenters: Option<Vec<String>>,
    /// Content hash (base64).
    #[serde(default)]
    pub hash: Option<String>,
    /// Raft index of the creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
}

/// A role (also the entries of `GET /v1/acl/roles`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    /// Its ID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Linked policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub policies: Vec<Link>,
    /// Service identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub service_identities: Vec<ServiceIdentity>,
    /// Node identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub node_identities: Vec<NodeIdentity>,
    /// Content hash (base64).
    #[serde(default)]
    pub hash: Option<String>,
    /// Raft index of the creation.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(default)]
    pub modify_index: u64,
}

/// The body of a token create or update: only what a write sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TokenWrite {
    /// The public ID (create: empty lets the agent pick one).
    #[serde(rename = "AccessorID", skip_serializing_if = "String::is_empty")]
    pub accessor_id: String,
    /// The secret (create: empty lets the agent pick one).
    #[serde(rename = "SecretID", skip_serializing_if = "String::is_empty")]
    pub secret_id: String,
    /// Free text.
    pub description: String,
    /// Linked policies.
    pub policies: Vec<Link>,
    /// Linked roles.
    pub roles: Vec<Link>,
    /// Service identities.
    pub service_identities: Vec<ServiceIdentity>,
    /// Node identities.
    pub node_identities: Vec<NodeIdentity>,
    /// Valid in this datacenter only.
    pub local: bool,
    /// Lifetime from now, a Go duration (create only).
    #[serde(rename = "ExpirationTTL", skip_serializing_if = "Option::is_none")]
    pub expiration_ttl: Option<String>,
    /// The expiry an update keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
}

impl TokenWrite {
    /// The update body that keeps everything of `t`.
    pub fn from_token(t: &Token) -> Self {
        Self {
            accessor_id: t.accessor_id.clone(),
            secret_id: t.secret_id.clone(),
            description: t.description.clone(),
            policies: t.policies.clone(),
            roles: t.roles.clone(),
            service_identities: t.service_identities.clone(),
            node_identities: t.node_identities.clone(),
            local: t.local,
            expiration_ttl: None,
            expiration_time: t.expiration_time.clone(),
        }
    }
}

/// The body of a policy create or update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyWrite {
    /// Its ID (update only).
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The rules.
    pub rules: String,
    /// Where it applies (empty: everywhere).
    pub datacenters: Vec<String>,
}

/// The body of a role create or update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleWrite {
    /// Its ID (update only).
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Linked policies.
    pub policies: Vec<Link>,
    /// Service identities.
    pub service_identities: Vec<ServiceIdentity>,
    /// Node identities.
    pub node_identities: Vec<NodeIdentity>,
}
