//! `Command`: the Raft log payload, the only way the catalog changes.
//!
//! A command carries everything `apply` needs, including any time or random value, so applying
//! the same log on any server yields the same catalog. The encoding is part of the on-disk
//! format (LMDB log) and the wire (Raft RPC): add variants at the end, never change one.

use serde::{Deserialize, Serialize};

use crate::catalog::acl::{AclPolicy, AclRole, AclToken};
use crate::catalog::config_entry::ConfigEntry;
use crate::catalog::kv::{KvEntry, Session, b64};
use crate::catalog::operator::{AutopilotConfig, CoordinateEntry};
use crate::catalog::{Check, HealthStatus, Node, PreparedQuery, Service};

/// One catalog change, proposed to Raft and applied by the state machine.
// A command is built once and moved into the log; boxing `Registration` would only add an
// allocation and churn every constructor.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Consul's catalog register: a node with an optional service and checks, atomically.
    Register(Registration),
    /// Consul's catalog deregister: a whole node, or one service, or one check.
    Deregister(Deregistration),
    /// A check's new status and output (TTL updates, probe results).
    UpdateCheck(CheckUpdate),
    /// Commands proposed concurrently and grouped into one log entry (group commit, see
    /// `raft::batch`). Each is applied in order, independently, at the entry's index; a
    /// nested batch is rejected.
    Batch(Vec<Self>),
    /// Create (`update` false) or replace (`update` true: the query must exist) a prepared
    /// query. The HTTP layer generated the ID before proposing.
    QueryUpsert(QueryUpsert),
    /// Delete a prepared query by ID (deleting a missing one succeeds, as in Consul).
    QueryDelete(String),
    /// Replace the whole catalog with a backup's (`PUT /v1/snapshot`, `cairn snapshot
    /// restore`); the HTTP layer verified the file's checksum before proposing.
    Restore(Box<crate::catalog::CatalogDump>),
    /// One KV write (`PUT`/`DELETE /v1/kv/...`); answered with `CommandResponse::Bool`.
    /// `now_ms` (Unix ms, set by the proposer; the leader sets its own on a command a follower
    /// forwards) times lock-delays.
    Kv {
        /// The operation.
        op: KvOp,
        /// Proposer's clock, Unix milliseconds.
        now_ms: u64,
    },
    /// A transaction (`PUT /v1/txn`): all operations apply or none; answered with
    /// `CommandResponse::Txn`.
    Txn {
        /// The operations, in order.
        ops: Vec<TxnOp>,
        /// Proposer's clock, Unix milliseconds.
        now_ms: u64,
    },
    /// Create a session (the HTTP layer generated the ID and applied defaults).
    SessionCreate {
        /// The session; its indexes are ignored.
        session: Session,
        /// Proposer's clock, Unix milliseconds.
        now_ms: u64,
    },
    /// Destroy (or expire: the leader's TTL timer proposes it) a session, releasing or
    /// deleting its locks and starting their lock-delay at `now_ms`. A missing one succeeds.
    SessionDestroy {
        /// Session ID.
        id: String,
        /// Proposer's clock, Unix milliseconds.
        now_ms: u64,
    },
    /// Drop the KV tombstones of deletes at or before this index (proposed by the leader once
    /// they are older than the tombstone TTL).
    KvReap(u64),
    /// An ACL write (tokens, policies, roles, bootstrap); see `catalog::acl`.
    Acl(AclCommand),
    /// Store autopilot's configuration (`PUT /v1/operator/autopilot/configuration`, or the
    /// leader storing the agent's settings once); with `cas`, only if it equals the stored
    /// `ModifyIndex` (0: none stored). Answered with `CommandResponse::Bool`.
    AutopilotSet {
        /// The configuration; its indexes are ignored.
        config: Box<AutopilotConfig>,
        /// Check-and-set index.
        cas: Option<u64>,
    },
    /// Network coordinates of nodes, batched (agents' own, `PUT /v1/coordinate/update`);
    /// entries for unknown nodes or with invalid coordinates are skipped.
    CoordinateBatch(Vec<CoordinateEntry>),
    /// Store a config entry (`PUT /v1/config`), validated and normalised by the HTTP layer;
    /// with `cas`, only if it equals the stored `ModifyIndex` (0: none stored). Answered with
    /// `CommandResponse::Bool`.
    ConfigEntrySet {
        /// The entry; its indexes are ignored.
        entry: Box<ConfigEntry>,
        /// Check-and-set index.
        cas: Option<u64>,
    },
    /// Delete a config entry (`DELETE /v1/config/:kind/:name`); a missing one succeeds.
    ConfigEntryDelete {
        /// Consul's `Kind`.
        kind: String,
        /// Consul's `Name`.
        name: String,
    },
}

/// The ACL writes. IDs, SecretIDs and times are chosen by the proposer and travel here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclCommand {
    /// The leader, on gaining leadership: create the `global-management` policy and the
    /// anonymous token if missing.
    InitBuiltins {
        /// Proposer's clock, Unix milliseconds (the anonymous token's CreateTime).
        now_ms: u64,
    },
    /// `PUT /v1/acl/bootstrap`, or the leader creating the configured master token: allowed
    /// once, then again only with `reset_index` equal to the reset index.
    Bootstrap {
        /// The token (linked to `global-management`).
        token: Box<AclToken>,
        /// The index read from `<data_dir>/acl-bootstrap-reset`, if any.
        reset_index: Option<u64>,
    },
    /// Create (`update` false) or replace a token; policy and role links may name by ID or
    /// by name (an empty ID), resolved at apply.
    TokenSet {
        /// The token.
        token: Box<AclToken>,
        /// Replace an existing token.
        update: bool,
    },
    /// Delete a token by AccessorID.
    TokenDelete(String),
    /// Create or replace a policy.
    PolicySet {
        /// The policy.
        policy: Box<AclPolicy>,
        /// Replace an existing policy.
        update: bool,
    },
    /// Delete a policy by ID.
    PolicyDelete(String),
    /// Create or replace a role.
    RoleSet {
        /// The role.
        role: Box<AclRole>,
        /// Replace an existing role.
        update: bool,
    },
    /// Delete a role by ID.
    RoleDelete(String),
}

/// A KV verb (Consul's `api.KVOp`), as a single write or a transaction operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    /// Set the value and flags.
    Set(KvWrite),
    /// Set only if ModifyIndex == `index` (0: only if absent).
    Cas(KvWrite),
    /// Acquire the lock with `session` and set the value.
    Lock(KvWrite),
    /// Release the lock held by `session` and set the value.
    Unlock(KvWrite),
    /// Read a key (fails when missing).
    Get(String),
    /// Read a key (no failure when missing).
    GetOrEmpty(String),
    /// Read every key under a prefix.
    GetTree(String),
    /// Fail unless ModifyIndex == `index`.
    CheckIndex(String, u64),
    /// Fail unless the key is locked by `session`.
    CheckSession(String, String),
    /// Fail if the key exists.
    CheckNotExists(String),
    /// Delete a key.
    Delete(String),
    /// Delete every key under a prefix.
    DeleteTree(String),
    /// Delete only if ModifyIndex == `index` (0 never deletes).
    DeleteCas(String, u64),
}

impl KvOp {
    /// The key or prefix the verb names.
    pub fn key(&self) -> &str {
        match self {
            Self::Set(w) | Self::Cas(w) | Self::Lock(w) | Self::Unlock(w) => &w.key,
            Self::Get(k)
            | Self::GetOrEmpty(k)
            | Self::GetTree(k)
            | Self::CheckIndex(k, _)
            | Self::CheckSession(k, _)
            | Self::CheckNotExists(k)
            | Self::Delete(k)
            | Self::DeleteTree(k)
            | Self::DeleteCas(k, _) => k,
        }
    }

    /// Whether the verb only reads.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Self::Get(_)
                | Self::GetOrEmpty(_)
                | Self::GetTree(_)
                | Self::CheckIndex(..)
                | Self::CheckSession(..)
                | Self::CheckNotExists(_)
        )
    }
}

/// The payload of a KV write verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KvWrite {
    /// Key.
    pub key: String,
    /// New value.
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    /// New flags.
    pub flags: u64,
    /// For `Cas`: the expected ModifyIndex.
    pub index: u64,
    /// For `Lock`/`Unlock`: the session.
    pub session: String,
}

/// One transaction operation: a KV verb or a catalog read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// A KV verb.
    Kv(KvOp),
    /// Read a node (fails when missing).
    NodeGet(String),
    /// Read a service instance `(node, service ID)` (fails when missing).
    ServiceGet(String, String),
    /// Read a check `(node, check ID)` (fails when missing).
    CheckGet(String, String),
    /// Service `set`: register the instance on its node (the node must exist).
    ServiceSet(Service),
    /// Service `cas`: register it only if its ModifyIndex is the given one (0: only if absent).
    ServiceCas(Service, u64),
    /// Service `delete`: remove `(node, ID)` and its checks (done when absent); the name is
    /// what ACLs vet.
    ServiceDelete(Service),
    /// Service `delete-cas`: remove it only if its ModifyIndex is the given one.
    ServiceDeleteCas(Service, u64),
}

/// One successful transaction operation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnResult {
    /// A KV entry, with its value for `get` verbs only.
    Kv(KvEntry, bool),
    /// A node, by name (the reply renders it from the snapshot of the transaction).
    Node(String),
    /// A service instance `(node, ID)`.
    Service(String, String),
    /// A check `(node, ID)`.
    Check(String, String),
}

/// A failed transaction operation (Consul's `TxnError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    /// Position of the operation.
    pub op_index: usize,
    /// Why it failed.
    pub what: String,
}

/// A prepared-query write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryUpsert {
    /// The query; its indexes are ignored (apply sets them).
    pub query: PreparedQuery,
    /// Whether this is an update of an existing query (`PUT /v1/query/:id`).
    pub update: bool,
}

/// Consul's `RegisterRequest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The node; its indexes are ignored (apply sets them).
    pub node: Node,
    /// Leave the node's address and meta as they are (the node must exist).
    pub skip_node_update: bool,
    /// A service instance on the node (its `node` field must name the node).
    pub service: Option<Service>,
    /// Checks on the node or on its services.
    pub checks: Vec<Check>,
}

/// Consul's `DeregisterRequest`: the node, or one of its services, or one of its checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deregistration {
    /// Node name.
    pub node: String,
    /// Remove only this service instance (and its checks).
    pub service_id: Option<String>,
    /// Remove only this check.
    pub check_id: Option<String>,
}

/// New status and output for an existing check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckUpdate {
    /// Node name.
    pub node: String,
    /// Check ID.
    pub check_id: String,
    /// New status.
    pub status: HealthStatus,
    /// New output.
    pub output: String,
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Applied (possibly as a no-op when nothing changed).
    Applied,
    /// Rejected deterministically; the catalog is unchanged. The text is Consul's error message.
    Rejected(String),
    /// One response per command of a `Command::Batch`, in order.
    Batch(Vec<Self>),
    /// A KV write's outcome (`true`/`false` body).
    Bool(bool),
    /// A transaction's results, or its errors (nothing applied).
    Txn(Result<Vec<TxnResult>, Vec<TxnError>>),
}

impl Command {
    /// The KV value bytes this command carries (0 for commands without values): what makes a
    /// log entry large, used to bound group commits.
    pub fn value_bytes(&self) -> usize {
        fn op(o: &KvOp) -> usize {
            match o {
                KvOp::Set(w) | KvOp::Cas(w) | KvOp::Lock(w) | KvOp::Unlock(w) => w.value.len(),
                _ => 0,
            }
        }
        match self {
            Self::Kv { op: o, .. } => op(o),
            Self::Txn { ops, .. } => ops.iter().map(|t| if let TxnOp::Kv(o) = t { op(o) } else { 0 }).sum(),
            Self::Batch(cmds) => cmds.iter().map(Self::value_bytes).sum(),
            _ => 0,
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Register(r) => write!(f, "register node {}", r.node.name),
            Self::Deregister(d) => write!(f, "deregister node {}", d.node),
            Self::UpdateCheck(u) => write!(f, "update check {}/{}", u.node, u.check_id),
            Self::Batch(cmds) => write!(f, "batch of {} commands", cmds.len()),
            Self::QueryUpsert(q) => write!(f, "upsert prepared query {}", q.query.id),
            Self::QueryDelete(id) => write!(f, "delete prepared query {id}"),
            Self::Restore(d) => write!(f, "restore a catalog of {} nodes", d.nodes.len()),
            Self::Kv { op, .. } => write!(f, "kv write of {:?}", op.key()),
            Self::Txn { ops, .. } => write!(f, "transaction of {} operations", ops.len()),
            Self::SessionCreate { session, .. } => write!(f, "create session {}", session.id),
            Self::SessionDestroy { id, .. } => write!(f, "destroy session {id}"),
            Self::KvReap(upto) => write!(f, "reap KV tombstones up to index {upto}"),
            Self::Acl(a) => write!(f, "{a}"),
            Self::AutopilotSet { .. } => write!(f, "set the autopilot configuration"),
            Self::CoordinateBatch(e) => write!(f, "update {} network coordinates", e.len()),
            Self::ConfigEntrySet { entry, .. } => write!(f, "set config entry {}/{}", entry.kind, entry.name),
            Self::ConfigEntryDelete { kind, name } => write!(f, "delete config entry {kind}/{name}"),
        }
    }
}

impl std::fmt::Display for AclCommand {
    /// Names the object, never a SecretID.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InitBuiltins { .. } => write!(f, "create the built-in ACL objects"),
            Self::Bootstrap { token, .. } => write!(f, "ACL bootstrap with token {}", token.accessor_id),
            Self::TokenSet { token, .. } => write!(f, "set ACL token {}", token.accessor_id),
            Self::TokenDelete(id) => write!(f, "delete ACL token {id}"),
            Self::PolicySet { policy, .. } => write!(f, "set ACL policy {}", policy.id),
            Self::PolicyDelete(id) => write!(f, "delete ACL policy {id}"),
            Self::RoleSet { role, .. } => write!(f, "set ACL role {}", role.id),
            Self::RoleDelete(id) => write!(f, "delete ACL role {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, KvOp, KvWrite, TxnOp};

    fn set(n: usize) -> KvOp {
        KvOp::Set(KvWrite { key: "k".into(), value: vec![0; n], ..KvWrite::default() })
    }

    fn check(cmd: &Command, bytes: usize) {
        assert_eq!(cmd.value_bytes(), bytes, "{cmd}");
    }

    #[test]
    fn value_bytes_counts_kv_values_only() {
        check(&Command::Kv { op: set(10), now_ms: 0 }, 10);
        check(&Command::Kv { op: KvOp::Get("k".into()), now_ms: 0 }, 0);
        let txn = Command::Txn {
            ops: vec![TxnOp::Kv(set(3)), TxnOp::NodeGet("n".into()), TxnOp::Kv(set(4))],
            now_ms: 0,
        };
        check(&txn, 7);
        check(
            &Command::Batch(vec![
                txn,
                Command::Kv { op: set(5), now_ms: 0 },
                Command::QueryDelete("q".into()),
            ]),
            12,
        );
    }
}
