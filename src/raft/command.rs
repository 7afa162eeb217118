//! `Command`: the Raft log payload, the only way the catalog changes.
//!
//! A command carries everything `apply` needs, including any time or random value, so applying
//! the same log on any server yields the same catalog. The encoding is part of the on-disk
//! format (LMDB log) and the wire (Raft RPC): add variants at the end, never change one.

use serde::{Deserialize, Serialize};

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
        }
    }
}
