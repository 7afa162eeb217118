//! Catalog domain model: nodes, services, checks and their health, and the writes on them.
//!
//! Pure data with no IO and no dependency on the rest of the crate: the records, the write
//! vocabulary (`command`: `Command` and its `CommandResponse`, the Raft log payload), the rules
//! a write must pass before it is proposed (`validate`) and the pure transition `apply`
//! (`(CatalogState, index, Command) -> CatalogState'`) that the Raft state machine and a
//! client's replica both run.
//! Consul's JSON shapes are *not* here: `http::wire` maps these types to and from the wire.
//! Every stored record carries the Raft log index that created and last modified it
//! (`create_index`, `modify_index`), as Consul's catalog does.

pub(crate) mod acl;
pub(crate) mod apply;
pub(crate) mod command;
pub(crate) mod config_entry;
pub(crate) mod duration;
pub(crate) mod gateway;
pub(crate) mod kv;
pub(crate) mod mesh;
pub(crate) mod operator;
mod query;
mod state;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod validate;

pub use state::CatalogDump;
pub(crate) use state::TableIndexes;

pub(crate) use query::{PreparedQuery, QueryFailover, QueryService, is_uuid};
pub use state::CatalogState;
pub(crate) use state::{Change, Instance};

pub(crate) use command::{AclCommand, KvOp, KvWrite, QueryUpsert, TxnOp, TxnResult};
pub use command::{CheckUpdate, Command, CommandResponse, Deregistration, Registration};
pub(crate) use mesh::{Expose, ExposePath, Mesh, Proxy, Upstream};
pub(crate) use validate::Invalid;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Health of a check, ordered from best to worst so `max` aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The check succeeds.
    Passing,
    /// The check is degraded; DNS still returns the instance (Consul's ExcludeCritical filter).
    Warning,
    /// The check fails; the instance leaves DNS answers.
    Critical,
}

impl HealthStatus {
    /// Parses Consul's lower-case status names.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passing" => Some(Self::Passing),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }

    /// Consul's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passing => "passing",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// A catalog node: one agent's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node ID (a UUID in Consul; may be empty for catalog-only nodes).
    pub id: String,
    /// Node name as registered; lookups compare it case-insensitively.
    pub name: String,
    /// The node's address: an IP or a host name.
    pub address: String,
    /// Datacenter the node belongs to.
    pub datacenter: String,
    /// Consul's tagged addresses (`lan`, `wan`, `lan_ipv4`, ...).
    pub tagged_addresses: BTreeMap<String, String>,
    /// Free-form metadata, served as TXT records over DNS (RFC 1464).
    pub meta: BTreeMap<String, String>,
    /// Raft index of the command that created the node.
    pub create_index: u64,
    /// Raft index of the command that last changed the node.
    pub modify_index: u64,
}

/// An address and port pair, as in a service's tagged addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAddress {
    /// IP or host name.
    pub address: String,
    /// Port number.
    pub port: u16,
}

/// One named port of a multi-port service; DNS selects it with `<name>.port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Port name, unique within the service.
    pub name: String,
    /// Port number.
    pub port: u16,
    /// Whether SRV answers without a `.port` label use this port.
    pub default: bool,
}

/// SRV weights chosen by the instance's aggregated health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// Weight while every check passes (Consul's default 1).
    pub passing: u32,
    /// Weight while some check warns (Consul's default 1).
    pub warning: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Self { passing: 1, warning: 1 }
    }
}

/// One service instance registered on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Node the instance runs on (as registered).
    pub node: String,
    /// Instance ID, unique per node (defaults to the name).
    pub id: String,
    /// Service name; DNS and catalog lookups compare it case-insensitively.
    pub name: String,
    /// Tags, in registration order.
    pub tags: Vec<String>,
    /// Service address; empty means "use the node's address".
    pub address: String,
    /// Service port.
    pub port: u16,
    /// Named ports of a multi-port service (`Ports[]`); empty for a single-port service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Free-form metadata.
    pub meta: BTreeMap<String, String>,
    /// Consul's tagged addresses (`lan_ipv4`, `wan`, ...).
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    /// SRV weights.
    pub weights: Weights,
    /// Whether outside catalog writes may change the tags (anti-entropy leaves them alone).
    pub enable_tag_override: bool,
    /// Connect: kind, proxy block, native flag (absent for typical services, and in rows
    /// written before Connect).
    #[serde(default, skip_serializing_if = "Mesh::is_typical")]
    pub mesh: Mesh,
    /// Raft index of the command that created the instance.
    pub create_index: u64,
    /// Raft index of the command that last changed the instance.
    pub modify_index: u64,
}

/// How a check is run, kept with the check so an agent can restart its runner after a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDefinition {
    /// TTL in nanoseconds for TTL checks (0: not a TTL check).
    pub ttl_ns: u64,
    /// Probe interval in nanoseconds (0: none).
    pub interval_ns: u64,
    /// Probe timeout in nanoseconds (0: the kind's default).
    pub timeout_ns: u64,
    /// `DeregisterCriticalServiceAfter` in nanoseconds (0: never).
    pub deregister_critical_service_after_ns: u64,
    /// HTTP URL for HTTP checks.
    pub http: String,
    /// `host:port` for TCP checks.
    pub tcp: String,
    // Fields added with the active checkers. Each is omitted when empty and defaults when
    // absent, so Raft log entries and snapshots written before them still decode.
    /// HTTP method (empty: GET).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// HTTP request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, Vec<String>>,
    /// HTTP request body.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// Never follow an HTTP redirect (by default only redirects to the same host are).
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_redirects: bool,
    /// TLS server name to verify (and send as SNI) instead of the URL's host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_server_name: String,
    /// Accept any server certificate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls_skip_verify: bool,
    /// TCP checks complete a TLS handshake.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tcp_use_tls: bool,
    /// `host:port` for UDP checks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub udp: String,
    /// `host:port[/service]` for gRPC health checks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub grpc: String,
    /// gRPC over TLS.
    #[serde(default, skip_serializing_if = "is_false")]
    pub grpc_use_tls: bool,
    /// `host:port` for HTTP/2 ping checks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub h2ping: String,
    /// HTTP/2 ping over TLS (Consul's default is true; stored resolved).
    #[serde(default, skip_serializing_if = "is_false")]
    pub h2ping_use_tls: bool,
    /// Command and arguments of script checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub script_args: Vec<String>,
    /// Node of an alias check (empty: this agent's node).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias_node: String,
    /// Service ID of an alias check (empty: the node itself).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias_service: String,
    /// Consecutive successes before `passing` is reported (0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub success_before_passing: u32,
    /// Consecutive failures before `warning` is reported (0: the critical threshold).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures_before_warning: u32,
    /// Consecutive failures before `critical` is reported (0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures_before_critical: u32,
    /// Output size limit in bytes (0: the default, 4096).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_max_size: u32,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A health check on a node (`service_id` empty) or on one service instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Node the check belongs to.
    pub node: String,
    /// Check ID, unique per node.
    pub check_id: String,
    /// Human-readable name.
    pub name: String,
    /// Current status.
    pub status: HealthStatus,
    /// Operator notes.
    pub notes: String,
    /// Last probe output.
    pub output: String,
    /// Service instance the check belongs to; empty for node-level checks.
    pub service_id: String,
    /// Name of that service (denormalised, as Consul does).
    pub service_name: String,
    /// Tags of that service (denormalised, as Consul does).
    pub service_tags: Vec<String>,
    /// Check kind: `ttl`, `http`, `tcp`, `serf`, `maintenance`, or empty.
    pub check_type: String,
    /// How the check runs.
    pub definition: CheckDefinition,
    /// Raft index of the command that created the check.
    pub create_index: u64,
    /// Raft index of the command that last changed the check.
    pub modify_index: u64,
}

impl Node {
    /// A node with no ID, tagged addresses or meta; `apply` sets the indexes.
    pub fn new(name: &str, address: &str, datacenter: &str) -> Self {
        Self {
            id: String::new(),
            name: name.to_owned(),
            address: address.to_owned(),
            datacenter: datacenter.to_owned(),
            tagged_addresses: BTreeMap::new(),
            meta: BTreeMap::new(),
            create_index: 0,
            modify_index: 0,
        }
    }
}

impl Service {
    /// An instance on `node` with no tags, address (the node's is used) or meta, and Consul's
    /// default weights; `apply` sets the indexes.
    pub fn new(node: &str, id: &str, name: &str, port: u16) -> Self {
        Self {
            node: node.to_owned(),
            id: id.to_owned(),
            name: name.to_owned(),
            tags: Vec::new(),
            address: String::new(),
            port,
            ports: Vec::new(),
            meta: BTreeMap::new(),
            tagged_addresses: BTreeMap::new(),
            weights: Weights::default(),
            enable_tag_override: false,
            mesh: Mesh::default(),
            create_index: 0,
            modify_index: 0,
        }
    }

    /// The same instance with these tags.
    pub fn with_tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }
}

impl Check {
    /// A check named after its ID, on the node (`service_id` empty) or on one instance, with
    /// no output, notes or kind; `apply` fills the service name and tags and the indexes.
    pub fn new(node: &str, check_id: &str, service_id: &str, status: HealthStatus) -> Self {
        Self {
            node: node.to_owned(),
            check_id: check_id.to_owned(),
            name: check_id.to_owned(),
            status,
            notes: String::new(),
            output: String::new(),
            service_id: service_id.to_owned(),
            service_name: String::new(),
            service_tags: Vec::new(),
            check_type: String::new(),
            definition: CheckDefinition::default(),
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// Lower-cases a catalog key the way Consul's state store indexes names (ASCII only).
pub(crate) fn key(s: &str) -> String {
    s.to_ascii_lowercase()
}
