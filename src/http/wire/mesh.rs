//! Connect response shapes: the `Proxy` block (`ConnectProxyConfig` with its `Upstreams`,
//! `MeshGateway` and `Expose`) and the `Connect` block, as Consul 1.8.7 prints them.
//!
//! Stage: HTTP reads, after the snapshot is loaded. Input: a `catalog::Mesh` -> output: serde
//! structs with Consul's field names.
//! Invariants [live on Consul 1.8.7]: on catalog and health views `Proxy` is always printed,
//! `{"MeshGateway":{},"Expose":{}}` for a typical service, and `Connect` is `{}` unless the
//! instance is native (`{"Native":true}`); on agent views `Proxy` is printed only for proxies
//! and gateways and `Connect` only when native; empty strings, zero ports and empty maps and
//! lists are omitted (Go's `omitempty`), but an upstream's `DestinationName`, its
//! `MeshGateway` and an exposed path's `ParsedFromCheck` are always printed, and on catalog
//! views also an upstream's `DestinationType`, `Datacenter` and `Config` (`null` when empty).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::catalog::{Expose, ExposePath, Mesh, Proxy, Upstream};

/// `{"Mode"}` (omitted when empty: `{}`).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MeshGatewayJson {
    /// Mode.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
}

/// One exposed path.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExposePathJson {
    /// Listener port.
    #[serde(skip_serializing_if = "is_zero")]
    pub listener_port: u16,
    /// Path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Local path port.
    #[serde(skip_serializing_if = "is_zero")]
    pub local_path_port: u16,
    /// Protocol.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Derived from a check.
    pub parsed_from_check: bool,
}

/// `Expose`.
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExposeJson {
    /// Expose check paths.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub checks: bool,
    /// Paths.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<ExposePathJson>,
}

/// One upstream. The catalog views print `DestinationType`, `Datacenter` and `Config` (`null`
/// when empty) always; the agent views omit them when empty (`Some` = printed).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpstreamJson {
    /// `service` or `prepared_query`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_type: Option<String>,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination_namespace: String,
    /// Name (always printed).
    pub destination_name: String,
    /// Datacenter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Local bind address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub local_bind_address: String,
    /// Local bind port.
    #[serde(skip_serializing_if = "is_zero")]
    pub local_bind_port: u16,
    /// Opaque configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Mesh gateway mode (always printed).
    pub mesh_gateway: MeshGatewayJson,
}

/// `Proxy` (`ConnectProxyConfig`).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProxyJson {
    /// Destination service name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination_service_name: String,
    /// Destination instance ID.
    #[serde(rename = "DestinationServiceID", skip_serializing_if = "String::is_empty")]
    pub destination_service_id: String,
    /// Local service address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub local_service_address: String,
    /// Local service port.
    #[serde(skip_serializing_if = "is_zero")]
    pub local_service_port: u16,
    /// Opaque configuration.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, Value>,
    /// Upstreams.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<UpstreamJson>,
    /// Mesh gateway mode (always printed).
    pub mesh_gateway: MeshGatewayJson,
    /// Expose (always printed).
    pub expose: ExposeJson,
}

/// `Connect` (`{}` or `{"Native":true}`).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ConnectJson {
    /// Connect-native.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub native: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u16) -> bool {
    *n == 0
}

fn gateway(mode: &str) -> MeshGatewayJson {
    MeshGatewayJson { mode: mode.to_owned() }
}

impl UpstreamJson {
    /// The catalog view (`catalog`) or the agent view of an upstream.
    fn new(u: &Upstream, catalog: bool) -> Self {
        let text = |s: &str| (catalog || !s.is_empty()).then(|| s.to_owned());
        let config = if u.config.is_empty() {
            catalog.then_some(Value::Null)
        } else {
            Some(Value::Object(u.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
        };
        Self {
            destination_type: text(&u.destination_type),
            destination_namespace: u.destination_namespace.clone(),
            destination_name: u.destination_name.clone(),
            datacenter: text(&u.datacenter),
            local_bind_address: u.local_bind_address.clone(),
            local_bind_port: u.local_bind_port,
            config,
            mesh_gateway: gateway(&u.mesh_gateway_mode),
        }
    }
}

impl From<&ExposePath> for ExposePathJson {
    fn from(p: &ExposePath) -> Self {
        Self {
            listener_port: p.listener_port,
            path: p.path.clone(),
            local_path_port: p.local_path_port,
            protocol: p.protocol.clone(),
            parsed_from_check: p.parsed_from_check,
        }
    }
}

impl From<&Expose> for ExposeJson {
    fn from(e: &Expose) -> Self {
        Self { checks: e.checks, paths: e.paths.iter().map(ExposePathJson::from).collect() }
    }
}

impl ProxyJson {
    /// The catalog view (`catalog`) or the agent view of a proxy block.
    pub(crate) fn new(p: &Proxy, catalog: bool) -> Self {
        Self {
            destination_service_name: p.destination_service_name.clone(),
            destination_service_id: p.destination_service_id.clone(),
            local_service_address: p.local_service_address.clone(),
            local_service_port: p.local_service_port,
            config: p.config.clone(),
            upstreams: p.upstreams.iter().map(|u| UpstreamJson::new(u, catalog)).collect(),
            mesh_gateway: gateway(&p.mesh_gateway_mode),
            expose: (&p.expose).into(),
        }
    }
}

/// The agent view's `Proxy`: printed for proxies and gateways only.
pub(crate) fn agent_proxy(m: &Mesh) -> Option<ProxyJson> {
    (m.is_proxy() || m.is_gateway()).then(|| ProxyJson::new(&m.proxy, false))
}

/// The agent view's `Connect`: printed for native instances only.
pub(crate) fn agent_connect(m: &Mesh) -> Option<ConnectJson> {
    m.native.then_some(ConnectJson { native: true })
}
