//! Catalog and health response shapes: Consul's `Node`, `NodeService`/`AgentService`,
//! `ServiceNode`, `HealthCheck` (with its `HealthCheckDefinition`), `CheckServiceNode` and
//! `NodeServices`.
//!
//! Stage: HTTP reads (catalog, health, agent, txn endpoints), after the snapshot is loaded.
//! Input: `catalog` records (`Node`, `Service`, `Check`) → output: serde structs with Consul's
//! exact PascalCase field names.
//! Invariants: lists are never `null` (`ServiceTags`, `Tags`, `Checks` are `[]` when empty);
//! maps are `{}` when empty; durations are Go duration strings (`""` when zero); the mesh
//! blocks (`Kind`, `Proxy`, `Connect`) follow `wire::mesh`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::mesh::{ConnectJson, ProxyJson, agent_connect, agent_proxy};
use crate::agent::format_go_duration;
use crate::catalog::{
    Check, CheckDefinition, HealthStatus, Node, Service, ServiceAddress, ServicePort, Weights,
};

fn go_duration_ns(ns: u64) -> String {
    if ns == 0 { String::new() } else { format_go_duration(Duration::from_nanos(ns)) }
}

/// `{"Address","Port"}`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AddressJson {
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
}

/// `{"Passing","Warning"}`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WeightsJson {
    /// Passing weight.
    pub passing: u32,
    /// Warning weight.
    pub warning: u32,
}

impl From<Weights> for WeightsJson {
    fn from(w: Weights) -> Self {
        Self { passing: w.passing, warning: w.warning }
    }
}

/// `{"Name","Port","Default"}`, one named port of a multi-port service.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PortJson {
    /// Port name.
    pub name: String,
    /// Port number.
    pub port: u16,
    /// Whether it is the default port.
    pub default: bool,
}

fn ports_json(ports: &[ServicePort]) -> Option<Vec<PortJson>> {
    (!ports.is_empty()).then(|| {
        ports.iter().map(|p| PortJson { name: p.name.clone(), port: p.port, default: p.default }).collect()
    })
}

fn tagged(t: &BTreeMap<String, ServiceAddress>) -> BTreeMap<String, AddressJson> {
    t.iter().map(|(k, a)| (k.clone(), AddressJson { address: a.address.clone(), port: a.port })).collect()
}

/// A catalog node (`/v1/catalog/nodes`, `Node` in health and node results).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NodeJson {
    /// Node ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name.
    pub node: String,
    /// Address.
    pub address: String,
    /// Datacenter.
    pub datacenter: String,
    /// Tagged addresses.
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node meta.
    pub meta: BTreeMap<String, String>,
    /// Create index.
    pub create_index: u64,
    /// Modify index.
    pub modify_index: u64,
}

impl From<&Node> for NodeJson {
    fn from(n: &Node) -> Self {
        Self {
            id: n.id.clone(),
            node: n.name.clone(),
            address: n.address.clone(),
            datacenter: n.datacenter.clone(),
            tagged_addresses: n.tagged_addresses.clone(),
            meta: n.meta.clone(),
            create_index: n.create_index,
            modify_index: n.modify_index,
        }
    }
}

/// A service instance as the agent and node/health endpoints print it (`AgentService` /
/// `NodeService`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ServiceJson {
    /// Kind (omitted for typical services).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Instance ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service name.
    pub service: String,
    /// Tags (never null).
    pub tags: Vec<String>,
    /// Address.
    pub address: String,
    /// Tagged addresses, left out when there are none (Consul's `omitempty`: Go's client then
    /// decodes a nil map, which its own tests compare against).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tagged_addresses: BTreeMap<String, AddressJson>,
    /// Meta.
    pub meta: BTreeMap<String, String>,
    /// Port.
    pub port: u16,
    /// Named ports (multi-port services only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortJson>>,
    /// Weights.
    pub weights: WeightsJson,
    /// Enable tag override.
    pub enable_tag_override: bool,
    /// Datacenter (agent endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Proxy block (catalog views always; agent views for proxies and gateways).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyJson>,
    /// Connect block (catalog views always; agent views when native).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectJson>,
    /// Create index (catalog endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_index: Option<u64>,
    /// Modify index (catalog endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modify_index: Option<u64>,
}

impl ServiceJson {
    /// The agent view (`/v1/agent/services`): with `Datacenter`, without indexes.
    pub(crate) fn agent(s: &Service, datacenter: &str) -> Self {
        let mut j = Self::catalog(s);
        j.datacenter = Some(datacenter.to_owned());
        j.proxy = agent_proxy(&s.mesh);
        j.connect = agent_connect(&s.mesh);
        j.create_index = None;
        j.modify_index = None;
        j
    }

    /// The catalog view (`NodeService`): with indexes and the mesh blocks.
    pub(crate) fn catalog(s: &Service) -> Self {
        Self {
            kind: s.mesh.kind.clone(),
            id: s.id.clone(),
            service: s.name.clone(),
            tags: s.tags.clone(),
            address: s.address.clone(),
            tagged_addresses: tagged(&s.tagged_addresses),
            meta: s.meta.clone(),
            port: s.port,
            ports: ports_json(&s.ports),
            weights: s.weights.into(),
            enable_tag_override: s.enable_tag_override,
            datacenter: None,
            proxy: Some(ProxyJson::new(&s.mesh.proxy, true)),
            connect: Some(ConnectJson { native: s.mesh.native }),
            create_index: Some(s.create_index),
            modify_index: Some(s.modify_index),
        }
    }
}

/// `/v1/catalog/service/:name` element (`ServiceNode`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ServiceNodeJson {
    /// Node ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name.
    pub node: String,
    /// Node address.
    pub address: String,
    /// Datacenter.
    pub datacenter: String,
    /// Node tagged addresses.
    pub tagged_addresses: BTreeMap<String, String>,
    /// Node meta.
    pub node_meta: BTreeMap<String, String>,
    /// Kind (`""`: typical).
    pub service_kind: String,
    /// Instance ID.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Service name.
    pub service_name: String,
    /// Tags (never null).
    pub service_tags: Vec<String>,
    /// Service address.
    pub service_address: String,
    /// Service tagged addresses.
    pub service_tagged_addresses: BTreeMap<String, AddressJson>,
    /// Weights.
    pub service_weights: WeightsJson,
    /// Service meta.
    pub service_meta: BTreeMap<String, String>,
    /// Port.
    pub service_port: u16,
    /// Named ports (multi-port services only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_ports: Option<Vec<PortJson>>,
    /// Always `""`.
    pub service_socket_path: String,
    /// Enable tag override.
    pub service_enable_tag_override: bool,
    /// Proxy block.
    pub service_proxy: ProxyJson,
    /// Connect block.
    pub service_connect: ConnectJson,
    /// Service create index.
    pub create_index: u64,
    /// Service modify index.
    pub modify_index: u64,
}

impl ServiceNodeJson {
    /// Joins an instance with its node.
    pub(crate) fn new(n: &Node, s: &Service) -> Self {
        Self {
            id: n.id.clone(),
            node: n.name.clone(),
            address: n.address.clone(),
            datacenter: n.datacenter.clone(),
            tagged_addresses: n.tagged_addresses.clone(),
            node_meta: n.meta.clone(),
            service_kind: s.mesh.kind.clone(),
            service_id: s.id.clone(),
            service_name: s.name.clone(),
            service_tags: s.tags.clone(),
            service_address: s.address.clone(),
            service_tagged_addresses: tagged(&s.tagged_addresses),
            service_weights: s.weights.into(),
            service_meta: s.meta.clone(),
            service_port: s.port,
            service_ports: ports_json(&s.ports),
            service_socket_path: String::new(),
            service_enable_tag_override: s.enable_tag_override,
            service_proxy: ProxyJson::new(&s.mesh.proxy, true),
            service_connect: ConnectJson { native: s.mesh.native },
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

/// `HealthCheckDefinition` (only the fields the appliance keeps; zero values omitted).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CheckDefinitionJson {
    /// HTTP URL.
    #[serde(rename = "HTTP", skip_serializing_if = "String::is_empty")]
    pub http: String,
    /// TCP address.
    #[serde(rename = "TCP", skip_serializing_if = "String::is_empty")]
    pub tcp: String,
    /// HTTP method.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// HTTP headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, Vec<String>>,
    /// HTTP body.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// Redirects disabled.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_redirects: bool,
    /// TLS server name.
    #[serde(rename = "TLSServerName", skip_serializing_if = "String::is_empty")]
    pub tls_server_name: String,
    /// TLS verification off.
    #[serde(rename = "TLSSkipVerify", skip_serializing_if = "std::ops::Not::not")]
    pub tls_skip_verify: bool,
    /// TCP with a TLS handshake.
    #[serde(rename = "TCPUseTLS", skip_serializing_if = "std::ops::Not::not")]
    pub tcp_use_tls: bool,
    /// UDP address.
    #[serde(rename = "UDP", skip_serializing_if = "String::is_empty")]
    pub udp: String,
    /// gRPC target.
    #[serde(rename = "GRPC", skip_serializing_if = "String::is_empty")]
    pub grpc: String,
    /// gRPC over TLS.
    #[serde(rename = "GRPCUseTLS", skip_serializing_if = "std::ops::Not::not")]
    pub grpc_use_tls: bool,
    /// HTTP/2 ping target.
    #[serde(rename = "H2PING", skip_serializing_if = "String::is_empty")]
    pub h2ping: String,
    /// HTTP/2 ping over TLS.
    #[serde(rename = "H2PingUseTLS", skip_serializing_if = "std::ops::Not::not")]
    pub h2ping_use_tls: bool,
    /// Script command and arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub script_args: Vec<String>,
    /// Aliased node.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alias_node: String,
    /// Aliased service.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alias_service: String,
    /// Interval.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interval: String,
    /// Timeout.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub timeout: String,
    /// TTL.
    #[serde(rename = "TTL", skip_serializing_if = "String::is_empty")]
    pub ttl: String,
    /// Deregister critical service after.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deregister_critical_service_after: String,
}

impl From<&CheckDefinition> for CheckDefinitionJson {
    fn from(d: &CheckDefinition) -> Self {
        Self {
            http: d.http.clone(),
            tcp: d.tcp.clone(),
            method: d.method.clone(),
            header: d.header.clone(),
            body: d.body.clone(),
            disable_redirects: d.disable_redirects,
            tls_server_name: d.tls_server_name.clone(),
            tls_skip_verify: d.tls_skip_verify,
            tcp_use_tls: d.tcp_use_tls,
            udp: d.udp.clone(),
            grpc: d.grpc.clone(),
            grpc_use_tls: d.grpc_use_tls,
            h2ping: d.h2ping.clone(),
            h2ping_use_tls: d.h2ping_use_tls,
            script_args: d.script_args.clone(),
            alias_node: d.alias_node.clone(),
            alias_service: d.alias_service.clone(),
            interval: go_duration_ns(d.interval_ns),
            timeout: go_duration_ns(d.timeout_ns),
            ttl: go_duration_ns(d.ttl_ns),
            deregister_critical_service_after: go_duration_ns(d.deregister_critical_service_after_ns),
        }
    }
}

/// Consul's `HealthCheck`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HealthCheckJson {
    /// Node name.
    pub node: String,
    /// Check ID.
    #[serde(rename = "CheckID")]
    pub check_id: String,
    /// Name.
    pub name: String,
    /// `passing`, `warning` or `critical`.
    pub status: HealthStatus,
    /// Notes.
    pub notes: String,
    /// Output.
    pub output: String,
    /// Service ID (`""` for node checks).
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Service name.
    pub service_name: String,
    /// Service tags (never null).
    pub service_tags: Vec<String>,
    /// Kind (`ttl`, `http`, …).
    pub r#type: String,
    /// Interval as a Go duration (`""` when none).
    pub interval: String,
    /// Timeout as a Go duration (`""` when none).
    pub timeout: String,
    /// Always 0.
    pub exposed_port: u16,
    /// Definition.
    pub definition: CheckDefinitionJson,
    /// Create index.
    pub create_index: u64,
    /// Modify index.
    pub modify_index: u64,
}

impl From<&Check> for HealthCheckJson {
    fn from(c: &Check) -> Self {
        Self {
            node: c.node.clone(),
            check_id: c.check_id.clone(),
            name: c.name.clone(),
            status: c.status,
            notes: c.notes.clone(),
            output: c.output.clone(),
            service_id: c.service_id.clone(),
            service_name: c.service_name.clone(),
            service_tags: c.service_tags.clone(),
            r#type: c.check_type.clone(),
            interval: go_duration_ns(c.definition.interval_ns),
            timeout: go_duration_ns(c.definition.timeout_ns),
            exposed_port: 0,
            definition: (&c.definition).into(),
            create_index: c.create_index,
            modify_index: c.modify_index,
        }
    }
}

/// `/v1/health/service/:name` element.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ServiceEntryJson {
    /// The node.
    pub node: NodeJson,
    /// The instance.
    pub service: ServiceJson,
    /// Node checks and the instance's checks.
    pub checks: Vec<HealthCheckJson>,
}

/// `/v1/catalog/node-services/:node`: the node's instances as a list ordered by ID; both
/// fields `null` for an unknown node.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NodeServiceListJson {
    /// The node.
    pub node: Option<NodeJson>,
    /// Its instances.
    pub services: Option<Vec<ServiceJson>>,
}

impl From<Option<NodeServicesJson>> for NodeServiceListJson {
    fn from(n: Option<NodeServicesJson>) -> Self {
        match n {
            Some(n) => Self { node: Some(n.node), services: Some(n.services.into_values().collect()) },
            None => Self { node: None, services: None },
        }
    }
}

/// `/v1/catalog/node/:node`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NodeServicesJson {
    /// The node.
    pub node: NodeJson,
    /// Instances by ID.
    pub services: BTreeMap<String, ServiceJson>,
}
