//! Consul's JSON wire types: catalog model → response JSON, request JSON → catalog commands.
//!
//! Input: `catalog` records (and catalog register/deregister bodies) → output: serde structs
//! with Consul's exact PascalCase field names, or `raft` commands.
//! Invariants: this is the only place (with `agent`'s definition decoder) that knows Consul's
//! field names; lists are never `null` (`ServiceTags`, `Tags`, `Checks` are `[]` when empty);
//! maps are `{}` when empty; durations are Go duration strings; request field names match
//! case-insensitively and an unknown field is an error naming it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use crate::agent::{
    DefinitionError, Fields, decode_ports, format_go_duration, parse_go_duration, service_ports,
};
use crate::catalog::{
    Check, CheckDefinition, HealthStatus, Node, PreparedQuery, QueryFailover, QueryService, Service,
    ServiceAddress, ServicePort, Weights,
};
use crate::catalog::{Deregistration, Registration};

fn go_duration_ns(ns: u64) -> String {
    if ns == 0 { String::new() } else { format_go_duration(Duration::from_nanos(ns)) }
}

/// `{"Address","Port"}`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AddressJson {
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
}

/// `{"Passing","Warning"}`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct WeightsJson {
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
pub struct PortJson {
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
pub struct NodeJson {
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

/// Empty mesh structures Consul always prints on `NodeService`.
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ProxyJson {
    /// `{}`.
    pub mesh_gateway: BTreeMap<String, String>,
    /// `{}`.
    pub expose: BTreeMap<String, String>,
}

/// A service instance as the agent and node/health endpoints print it (`AgentService` /
/// `NodeService`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceJson {
    /// Instance ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service name.
    pub service: String,
    /// Tags (never null).
    pub tags: Vec<String>,
    /// Address.
    pub address: String,
    /// Tagged addresses.
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
    /// Mesh proxy (always empty; catalog endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyJson>,
    /// Connect (always empty; catalog endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<BTreeMap<String, String>>,
    /// Create index (catalog endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_index: Option<u64>,
    /// Modify index (catalog endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modify_index: Option<u64>,
}

impl ServiceJson {
    /// The agent view (`/v1/agent/services`): with `Datacenter`, without indexes.
    pub fn agent(s: &Service, datacenter: &str) -> Self {
        let mut j = Self::catalog(s);
        j.datacenter = Some(datacenter.to_owned());
        j.proxy = None;
        j.connect = None;
        j.create_index = None;
        j.modify_index = None;
        j
    }

    /// The catalog view (`NodeService`): with indexes and empty mesh fields.
    pub fn catalog(s: &Service) -> Self {
        Self {
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
            proxy: Some(ProxyJson::default()),
            connect: Some(BTreeMap::new()),
            create_index: Some(s.create_index),
            modify_index: Some(s.modify_index),
        }
    }
}

/// `/v1/catalog/service/:name` element (`ServiceNode`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceNodeJson {
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
    /// Always `""` (typical service).
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
    /// Always empty.
    pub service_proxy: ProxyJson,
    /// Always empty.
    pub service_connect: BTreeMap<String, String>,
    /// Service create index.
    pub create_index: u64,
    /// Service modify index.
    pub modify_index: u64,
}

impl ServiceNodeJson {
    /// Joins an instance with its node.
    pub fn new(n: &Node, s: &Service) -> Self {
        Self {
            id: n.id.clone(),
            node: n.name.clone(),
            address: n.address.clone(),
            datacenter: n.datacenter.clone(),
            tagged_addresses: n.tagged_addresses.clone(),
            node_meta: n.meta.clone(),
            service_kind: String::new(),
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
            service_proxy: ProxyJson::default(),
            service_connect: BTreeMap::new(),
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

/// `HealthCheckDefinition` (only the fields the appliance keeps; zero values omitted).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CheckDefinitionJson {
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
pub struct HealthCheckJson {
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
pub struct ServiceEntryJson {
    /// The node.
    pub node: NodeJson,
    /// The instance.
    pub service: ServiceJson,
    /// Node checks and the instance's checks.
    pub checks: Vec<HealthCheckJson>,
}

/// `/v1/catalog/node/:node`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeServicesJson {
    /// The node.
    pub node: NodeJson,
    /// Instances by ID.
    pub services: BTreeMap<String, ServiceJson>,
}

/// `Service.Failover` of a prepared query.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryFailoverJson {
    /// `NearestN`.
    pub nearest_n: i64,
    /// `Datacenters` (never null).
    pub datacenters: Vec<String>,
}

/// `Service` of a prepared query (`ServiceQuery`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryServiceJson {
    /// Service name.
    pub service: String,
    /// Failover (stored, not acted on).
    pub failover: QueryFailoverJson,
    /// Only passing instances.
    pub only_passing: bool,
    /// Checks ignored for health (never null).
    #[serde(rename = "IgnoreCheckIDs")]
    pub ignore_check_ids: Vec<String>,
    /// Near (stored, not acted on).
    pub near: String,
    /// Tag filters, `!` negates (never null).
    pub tags: Vec<String>,
    /// Node meta filter.
    pub node_meta: BTreeMap<String, String>,
    /// Service meta filter.
    pub service_meta: BTreeMap<String, String>,
}

/// `DNS` of a prepared query.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryDnsJson {
    /// TTL as written, `""` when unset.
    #[serde(rename = "TTL")]
    pub ttl: String,
}

/// `Template` of a prepared query (templates are not supported: always empty).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct QueryTemplateJson {
    /// `""`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `""`.
    pub regexp: String,
    /// `false`.
    pub remove_empty_tags: bool,
}

/// A prepared query as `/v1/query` and `/v1/query/:id` list it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreparedQueryJson {
    /// ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name.
    pub name: String,
    /// Session.
    pub session: String,
    /// Token.
    pub token: String,
    /// Template (always empty).
    pub template: QueryTemplateJson,
    /// What to look up.
    pub service: QueryServiceJson,
    /// DNS settings.
    #[serde(rename = "DNS")]
    pub dns: QueryDnsJson,
    /// Create index.
    pub create_index: u64,
    /// Modify index.
    pub modify_index: u64,
}

impl From<&PreparedQuery> for PreparedQueryJson {
    fn from(q: &PreparedQuery) -> Self {
        let s = &q.service;
        Self {
            id: q.id.clone(),
            name: q.name.clone(),
            session: q.session.clone(),
            token: q.token.clone(),
            template: QueryTemplateJson::default(),
            service: QueryServiceJson {
                service: s.service.clone(),
                failover: QueryFailoverJson {
                    nearest_n: s.failover.nearest_n,
                    datacenters: s.failover.datacenters.clone(),
                },
                only_passing: s.only_passing,
                ignore_check_ids: s.ignore_check_ids.clone(),
                near: s.near.clone(),
                tags: s.tags.clone(),
                node_meta: s.node_meta.clone(),
                service_meta: s.service_meta.clone(),
            },
            dns: QueryDnsJson { ttl: q.dns_ttl.clone() },
            create_index: q.create_index,
            modify_index: q.modify_index,
        }
    }
}

/// `/v1/query/:id/execute` (`PreparedQueryExecuteResponse`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryExecuteJson {
    /// The service the query selected.
    pub service: String,
    /// The selected instances, shuffled (never null).
    pub nodes: Vec<ServiceEntryJson>,
    /// DNS settings of the query.
    #[serde(rename = "DNS")]
    pub dns: QueryDnsJson,
    /// The datacenter that answered (always ours).
    pub datacenter: String,
    /// Datacenters failed over to (always 0).
    pub failovers: u32,
}

/// `{"ID"}` of `POST /v1/query`.
#[derive(Debug, Serialize)]
pub struct QueryIdJson {
    /// The new query's ID.
    #[serde(rename = "ID")]
    pub id: String,
}

// ----- requests ------------------------------------------------------------------------------

fn rpc(msg: impl Into<String>) -> ApiError {
    ApiError::Internal(msg.into())
}

fn port(p: i64) -> Result<u16, ApiError> {
    u16::try_from(p).map_err(|_| ApiError::Decode(format!("json: invalid port {p}")))
}

fn is_ip_any(addr: &str) -> bool {
    addr.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
}

const IGNORED_REQUEST_FIELDS: &[&str] =
    &["Token", "WriteRequest", "Namespace", "Partition", "PeerName", "Locality", "EnterpriseMeta"];

fn decode_service(v: &Value, node: &str) -> Result<Service, ApiError> {
    let mut f = Fields::new(v, "NodeService")?;
    let name = f.string(&["Service"])?.unwrap_or_default();
    let id = f.string(&["ID"])?.filter(|s| !s.is_empty()).unwrap_or_else(|| name.clone());
    let mut tagged_addresses = BTreeMap::new();
    for (k, a) in f.object_map(&["TaggedAddresses"])? {
        let mut a = Fields::new(&a, "ServiceAddress")?;
        let address = a.string(&["Address"])?.unwrap_or_default();
        let p = port(a.int(&["Port"])?.unwrap_or(0))?;
        a.finish()?;
        tagged_addresses.insert(k, ServiceAddress { address, port: p });
    }
    let weights = match f.take(&["Weights"]) {
        None => Weights::default(),
        Some(w) => {
            let mut w = Fields::new(&w, "Weights")?;
            let passing = w.int(&["Passing"])?.unwrap_or(0);
            let warning = w.int(&["Warning"])?.unwrap_or(0);
            w.finish()?;
            if passing < 1 || warning < 0 {
                return Err(rpc("Invalid Weights"));
            }
            Weights {
                passing: u32::try_from(passing).map_err(|_| rpc("Invalid Weights"))?,
                warning: u32::try_from(warning).map_err(|_| rpc("Invalid Weights"))?,
            }
        }
    };
    let single = f.int(&["Port"])?.unwrap_or(0);
    let named = match f.take(&["Ports"]) {
        Some(v) => decode_ports(&v)?,
        None => Vec::new(),
    };
    port(single)?;
    let (port_number, ports) = service_ports(single, &named).map_err(|e| rpc(e.to_string()))?;
    let service = Service {
        node: node.to_owned(),
        id,
        name,
        tags: f.strings(&["Tags"])?,
        address: f.string(&["Address"])?.unwrap_or_default(),
        port: port_number,
        ports,
        meta: f.string_map(&["Meta"])?,
        tagged_addresses,
        weights,
        enable_tag_override: f.bool(&["EnableTagOverride"])?.unwrap_or(false),
        create_index: 0,
        modify_index: 0,
    };
    let kind = f.string(&["Kind"])?.unwrap_or_default();
    if !kind.is_empty() {
        return Err(rpc(format!("Unsupported service kind {kind:?}")));
    }
    f.ignore(IGNORED_REQUEST_FIELDS);
    f.ignore(&["Proxy", "Connect", "SocketPath", "CreateIndex", "ModifyIndex", "LocallyRegisteredAsSidecar"]);
    f.finish()?;
    if is_ip_any(&service.address) {
        return Err(rpc("Invalid service address"));
    }
    Ok(service)
}

fn decode_check(v: &Value, node: &str) -> Result<Check, ApiError> {
    let mut f = Fields::new(v, "HealthCheck")?;
    let check_node = f.string(&["Node"])?.filter(|s| !s.is_empty()).unwrap_or_else(|| node.to_owned());
    let status = match f.string(&["Status"])? {
        None => HealthStatus::Critical,
        Some(s) if s.is_empty() => HealthStatus::Critical,
        Some(s) => HealthStatus::parse(&s).ok_or_else(|| rpc(format!("Invalid check status: '{s}'")))?,
    };
    let mut definition = CheckDefinition::default();
    if let Some(d) = f.take(&["Definition"]) {
        let mut d = Fields::new(&d, "HealthCheckDefinition")?;
        let nanos = |x: Duration| u64::try_from(x.as_nanos()).unwrap_or(u64::MAX);
        definition.http = d.string(&["HTTP"])?.unwrap_or_default();
        definition.tcp = d.string(&["TCP"])?.unwrap_or_default();
        definition.interval_ns = nanos(d.duration(&["Interval"])?);
        definition.timeout_ns = nanos(d.duration(&["Timeout"])?);
        definition.ttl_ns = nanos(d.duration(&["TTL"])?);
        definition.deregister_critical_service_after_ns =
            nanos(d.duration(&["DeregisterCriticalServiceAfter"])?);
        d.ignore(&[
            "TLSServerName",
            "TLSSkipVerify",
            "Header",
            "Method",
            "Body",
            "DisableRedirects",
            "TCPUseTLS",
            "UDP",
            "H2PING",
            "H2PingUseTLS",
            "OSService",
            "OutputMaxSize",
            "ScriptArgs",
            "DockerContainerID",
            "Shell",
            "GRPC",
            "GRPCUseTLS",
            "AliasNode",
            "AliasService",
        ]);
        d.finish()?;
    }
    let check = Check {
        node: check_node,
        check_id: f.string(&["CheckID"])?.unwrap_or_default(),
        name: f.string(&["Name"])?.unwrap_or_default(),
        status,
        notes: f.string(&["Notes"])?.unwrap_or_default(),
        output: f.string(&["Output"])?.unwrap_or_default(),
        service_id: f.string(&["ServiceID"])?.unwrap_or_default(),
        service_name: f.string(&["ServiceName"])?.unwrap_or_default(),
        service_tags: f.strings(&["ServiceTags"])?,
        check_type: f.string(&["Type"])?.unwrap_or_default(),
        definition,
        create_index: 0,
        modify_index: 0,
    };
    f.ignore(IGNORED_REQUEST_FIELDS);
    f.ignore(&["Interval", "Timeout", "ExposedPort", "CreateIndex", "ModifyIndex"]);
    f.finish()?;
    Ok(check)
}

/// Decodes a `PUT /v1/catalog/register` body into a registration for datacenter `dc`.
///
/// Decode errors are 400; rule violations are Consul RPC errors (500).
pub fn decode_catalog_register(v: &Value, dc: &str) -> Result<Registration, ApiError> {
    let mut f = Fields::new(v, "RegisterRequest")?;
    let name = f.string(&["Node"])?.unwrap_or_default();
    let datacenter = f.string(&["Datacenter"])?.filter(|d| !d.is_empty()).unwrap_or_else(|| dc.to_owned());
    if !datacenter.eq_ignore_ascii_case(dc) {
        return Err(rpc("No path to datacenter"));
    }
    let node = Node {
        id: f.string(&["ID"])?.unwrap_or_default(),
        name: name.clone(),
        address: f.string(&["Address"])?.unwrap_or_default(),
        datacenter: dc.to_owned(),
        tagged_addresses: f.string_map(&["TaggedAddresses"])?,
        meta: f.string_map(&["NodeMeta"])?,
        create_index: 0,
        modify_index: 0,
    };
    let skip_node_update = f.bool(&["SkipNodeUpdate"])?.unwrap_or(false);
    let service = f.take(&["Service"]).map(|s| decode_service(&s, &name)).transpose()?;
    let mut checks = Vec::new();
    if let Some(c) = f.take(&["Check"]) {
        checks.push(decode_check(&c, &name)?);
    }
    match f.take(&["Checks"]) {
        None => {}
        Some(Value::Array(items)) => {
            for c in &items {
                checks.push(decode_check(c, &name)?);
            }
        }
        Some(_) => {
            return Err(DefinitionError::Decode(
                "json: cannot unmarshal object into Go struct field RegisterRequest.Checks of type structs.HealthChecks"
                    .into(),
            )
            .into());
        }
    }
    f.ignore(IGNORED_REQUEST_FIELDS);
    f.ignore(&["Partition", "CreateIndex", "ModifyIndex"]);
    f.finish()?;
    if name.is_empty() {
        return Err(rpc("Must provide node"));
    }
    if !skip_node_update && node.address.is_empty() {
        return Err(rpc("Must provide address if SkipNodeUpdate is not set"));
    }
    if let Some(s) = &service
        && s.name.is_empty()
    {
        return Err(rpc("Must provide service name"));
    }
    for c in &checks {
        if c.check_id.is_empty() && c.name.is_empty() {
            return Err(rpc("Must provide check ID or name"));
        }
    }
    // Consul defaults a missing CheckID to the check name.
    for c in &mut checks {
        if c.check_id.is_empty() {
            c.check_id.clone_from(&c.name);
        }
    }
    Ok(Registration { node, skip_node_update, service, checks })
}

/// Decodes a `PUT /v1/catalog/deregister` body.
pub fn decode_catalog_deregister(v: &Value, dc: &str) -> Result<Deregistration, ApiError> {
    let mut f = Fields::new(v, "DeregisterRequest")?;
    let node = f.string(&["Node"])?.unwrap_or_default();
    let datacenter = f.string(&["Datacenter"])?.unwrap_or_default();
    let service_id = f.string(&["ServiceID"])?.filter(|s| !s.is_empty());
    let check_id = f.string(&["CheckID"])?.filter(|s| !s.is_empty());
    f.ignore(IGNORED_REQUEST_FIELDS);
    f.finish()?;
    if !datacenter.is_empty() && !datacenter.eq_ignore_ascii_case(dc) {
        return Err(rpc("No path to datacenter"));
    }
    if node.is_empty() {
        return Err(rpc("Must provide node"));
    }
    Ok(Deregistration { node, service_id, check_id })
}

/// `{"Status","Output"}` of `PUT /v1/agent/check/update/:id`.
pub fn decode_check_update(v: &Value) -> Result<(HealthStatus, String), ApiError> {
    let mut f = Fields::new(v, "checkUpdate")?;
    let status = f.string(&["Status"])?.unwrap_or_default();
    let output = f.string(&["Output"])?.unwrap_or_default();
    f.finish()?;
    let status = HealthStatus::parse(&status)
        .ok_or_else(|| ApiError::BadRequest(format!("Invalid check status: '{status}'")))?;
    Ok((status, output))
}

/// Decodes a `POST /v1/query` (`creating`) or `PUT /v1/query/:id` body into a query with ID
/// `id`. A create must not carry an ID; an update takes the path's ID, whatever the body says.
///
/// Decode errors are 400; Consul's `parseQuery` rules are RPC errors (500). Templates are
/// refused (400): they are not supported.
pub fn decode_prepared_query(v: &Value, id: &str, creating: bool) -> Result<PreparedQuery, ApiError> {
    let mut f = Fields::new(v, "PreparedQuery")?;
    let name = f.string(&["Name"])?.unwrap_or_default();
    let session = f.string(&["Session"])?.unwrap_or_default();
    let token = f.string(&["Token"])?.unwrap_or_default();
    let body_id = f.string(&["ID"])?.unwrap_or_default();
    if let Some(t) = f.take(&["Template"]) {
        let mut t = Fields::new(&t, "QueryTemplateOptions")?;
        let kind = t.string(&["Type"])?.unwrap_or_default();
        t.ignore(&["Regexp", "RemoveEmptyTags"]);
        t.finish()?;
        if !kind.is_empty() {
            return Err(ApiError::BadRequest("Prepared query templates are not supported".into()));
        }
    }
    let service = match f.take(&["Service"]) {
        Some(sv) => decode_query_service(&sv)?,
        None => QueryService::default(),
    };
    let mut dns_ttl = String::new();
    if let Some(d) = f.take(&["DNS"]) {
        let mut d = Fields::new(&d, "QueryDNSOptions")?;
        dns_ttl = d.string(&["TTL"])?.unwrap_or_default();
        d.finish()?;
    }
    f.ignore(&["CreateIndex", "ModifyIndex", "RaftIndex", "Namespace", "Partition"]);
    f.finish()?;
    if creating && !body_id.is_empty() {
        return Err(rpc("ID must be empty when creating a new prepared query"));
    }
    if service.service.is_empty() {
        return Err(rpc("Must provide a Service name to query"));
    }
    if !dns_ttl.is_empty() {
        parse_go_duration(&dns_ttl).map_err(|e| rpc(format!("Bad DNS TTL '{dns_ttl}': {e}")))?;
    }
    Ok(PreparedQuery {
        id: id.to_owned(),
        name,
        session,
        token,
        service,
        dns_ttl,
        create_index: 0,
        modify_index: 0,
    })
}

fn decode_query_service(v: &Value) -> Result<QueryService, ApiError> {
    let mut f = Fields::new(v, "ServiceQuery")?;
    let mut failover = QueryFailover::default();
    if let Some(fo) = f.take(&["Failover"]) {
        let mut fo = Fields::new(&fo, "QueryFailoverOptions")?;
        failover.nearest_n = fo.int(&["NearestN"])?.unwrap_or(0);
        failover.datacenters = fo.strings(&["Datacenters"])?;
        fo.ignore(&["Targets"]);
        fo.finish()?;
    }
    let service = QueryService {
        service: f.string(&["Service"])?.unwrap_or_default(),
        failover,
        only_passing: f.bool(&["OnlyPassing"])?.unwrap_or(false),
        ignore_check_ids: f.strings(&["IgnoreCheckIDs"])?,
        near: f.string(&["Near"])?.unwrap_or_default(),
        tags: f.strings(&["Tags"])?,
        node_meta: f.string_map(&["NodeMeta"])?,
        service_meta: f.string_map(&["ServiceMeta"])?,
    };
    f.ignore(&["Connect", "Peer", "SamenessGroup", "Namespace", "Partition"]);
    f.finish()?;
    Ok(service)
}

/// One server of `GET /v1/operator/raft/configuration`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RaftServerJson {
    /// The server's node ID (its Raft id when its node is not in the catalog yet).
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name (empty when not in the catalog yet).
    pub node: String,
    /// Raft RPC address.
    pub address: String,
    /// Whether it leads.
    pub leader: bool,
    /// Raft protocol version (Consul speaks "3").
    pub protocol_version: String,
    /// Voter or non-voter (learner).
    pub voter: bool,
}

/// `GET /v1/operator/raft/configuration`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RaftConfigurationJson {
    /// The servers.
    pub servers: Vec<RaftServerJson>,
    /// Log index of the configuration.
    pub index: u64,
}

/// One member of `GET /v1/agent/members` (Serf's member with Consul's tags).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct MemberJson {
    /// Node name.
    pub name: String,
    /// Gossip IP.
    pub addr: String,
    /// Gossip port.
    pub port: u16,
    /// Consul's serf tags (`role`, `dc`, `port`, `id`, `build`, `vsn`, `raft_vsn`).
    pub tags: BTreeMap<String, String>,
    /// Serf status: 1 alive, 3 left, 4 failed.
    pub status: u8,
    /// Gossip protocol versions (Consul's fixed values).
    pub protocol_min: u8,
    /// See `protocol_min`.
    pub protocol_max: u8,
    /// See `protocol_min`.
    pub protocol_cur: u8,
    /// Delegate protocol versions (Consul's fixed values).
    pub delegate_min: u8,
    /// See `delegate_min`.
    pub delegate_max: u8,
    /// See `delegate_min`.
    pub delegate_cur: u8,
}

impl MemberJson {
    /// Consul's view of a gossip member.
    pub fn from_member(m: &crate::gossip::Member) -> Self {
        let mut tags = BTreeMap::new();
        if let Some(meta) = &m.meta {
            let server = meta.role == crate::gossip::Role::Server;
            tags.insert("role".into(), if server { "consul" } else { "node" }.into());
            tags.insert("dc".into(), meta.dc.clone());
            tags.insert("build".into(), meta.version.clone());
            tags.insert("vsn".into(), "2".into());
            if server {
                let port = meta.raft_addr.rsplit_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default();
                tags.insert("port".into(), port);
                tags.insert("raft_vsn".into(), "3".into());
                tags.insert("id".into(), meta.raft_id.to_string());
            }
        }
        let status = match m.status {
            crate::gossip::MemberStatus::Alive => 1,
            crate::gossip::MemberStatus::Left => 3,
            crate::gossip::MemberStatus::Failed => 4,
        };
        Self {
            name: m.name.clone(),
            addr: m.addr.ip().to_string(),
            port: m.addr.port(),
            tags,
            status,
            protocol_min: 1,
            protocol_max: 5,
            protocol_cur: 2,
            delegate_min: 2,
            delegate_max: 5,
            delegate_cur: 4,
        }
    }
}
