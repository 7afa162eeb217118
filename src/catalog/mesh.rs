//! Connect's catalog side: a service's kind, its proxy block and Connect-native flag, as the
//! catalog stores them, and Consul's rules for them (`NodeService.Validate`'s mesh part).
//!
//! Stage: catalog domain (pure data). Input: a decoded `Service` (its `mesh`) -> output: the
//! list of Consul's validation messages, in Consul's order, that the HTTP layer joins as Go's
//! multierror text (`multi_error`).
//! Invariants: a typical service has `Mesh::default()`, which is not serialised, so rows,
//! snapshots and log entries written before Connect decode unchanged and typical services keep
//! their bytes; every field has a serde default (fields are only added); the kind is stored as
//! given (Consul 1.8 accepts an unknown kind and treats it as typical); `config` maps are
//! opaque JSON values kept verbatim (`serde_json::Value` as data: the encoding stays `codec`'s).
//! No data plane and no CA: nothing here routes traffic or issues certificates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Service;

/// `connect-proxy`: a proxy in front of one service instance.
pub(crate) const KIND_CONNECT_PROXY: &str = "connect-proxy";
/// `mesh-gateway`.
pub(crate) const KIND_MESH_GATEWAY: &str = "mesh-gateway";
/// `terminating-gateway`.
pub(crate) const KIND_TERMINATING_GATEWAY: &str = "terminating-gateway";
/// `ingress-gateway`.
pub(crate) const KIND_INGRESS_GATEWAY: &str = "ingress-gateway";

/// Connect fields of a service instance; the default is a typical, non-Connect service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mesh {
    /// Consul's `Kind` (empty: typical).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The `Proxy` block (proxies and gateways).
    #[serde(default, skip_serializing_if = "Proxy::is_empty")]
    pub proxy: Proxy,
    /// `Connect.Native`: the instance speaks Connect itself.
    #[serde(default, skip_serializing_if = "is_false")]
    pub native: bool,
    /// Registered on this agent from its parent's `Connect.SidecarService` (Consul's
    /// `LocallyRegisteredAsSidecar`): deregistering the parent removes it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sidecar: bool,
}

/// Consul's `ConnectProxyConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxy {
    /// The service the proxy stands for (connect-proxy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub destination_service_name: String,
    /// The instance the proxy stands for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub destination_service_id: String,
    /// Where the proxied instance listens.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_service_address: String,
    /// The proxied instance's port (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub local_service_port: u16,
    /// Opaque proxy configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, Value>,
    /// Upstreams the proxy exposes locally.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<Upstream>,
    /// `MeshGateway.Mode` (empty: default).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mesh_gateway_mode: String,
    /// `Expose`.
    #[serde(default, skip_serializing_if = "Expose::is_empty")]
    pub expose: Expose,
}

/// One upstream of a proxy (Consul's `Upstream`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// `service`, `prepared_query`, or empty (`service`; the catalog endpoint keeps it empty).
    #[serde(default)]
    pub destination_type: String,
    /// Namespace (enterprise; kept as given).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub destination_namespace: String,
    /// Service or query name.
    #[serde(default)]
    pub destination_name: String,
    /// Datacenter (empty: local).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub datacenter: String,
    /// Local bind address (empty: 127.0.0.1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_bind_address: String,
    /// Local bind port.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub local_bind_port: u16,
    /// Opaque upstream configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, Value>,
    /// `MeshGateway.Mode`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mesh_gateway_mode: String,
}

/// `Expose`: HTTP paths a proxy exposes outside the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expose {
    /// Expose every HTTP and gRPC check path.
    #[serde(default, skip_serializing_if = "is_false")]
    pub checks: bool,
    /// The exposed paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<ExposePath>,
}

/// One exposed path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposePath {
    /// The proxy's listener port for the path.
    #[serde(default)]
    pub listener_port: u16,
    /// The path (`/metrics`).
    #[serde(default)]
    pub path: String,
    /// The port the service serves the path on.
    #[serde(default)]
    pub local_path_port: u16,
    /// `http` or `http2` (empty: http).
    #[serde(default)]
    pub protocol: String,
    /// Derived from a registered check.
    #[serde(default)]
    pub parsed_from_check: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u16) -> bool {
    *n == 0
}

impl Mesh {
    /// Whether this is a typical service with no Connect fields (stored as absent).
    pub fn is_typical(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the kind is one of the three gateways.
    pub fn is_gateway(&self) -> bool {
        matches!(self.kind.as_str(), KIND_MESH_GATEWAY | KIND_TERMINATING_GATEWAY | KIND_INGRESS_GATEWAY)
    }

    /// Whether the kind is `connect-proxy`.
    pub fn is_proxy(&self) -> bool {
        self.kind == KIND_CONNECT_PROXY
    }

    /// The service name whose Connect lookups (`/v1/catalog/connect/:s`, `s.connect.consul`)
    /// return this instance: a proxy's destination, a native instance's own name.
    pub fn connect_target<'a>(&'a self, own_name: &'a str) -> Option<&'a str> {
        if self.is_proxy() && !self.proxy.destination_service_name.is_empty() {
            Some(&self.proxy.destination_service_name)
        } else if self.native && self.kind.is_empty() {
            Some(own_name)
        } else {
            None
        }
    }
}

impl Proxy {
    /// Whether every field is empty.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Expose {
    /// Whether nothing is exposed.
    pub fn is_empty(&self) -> bool {
        !self.checks && self.paths.is_empty()
    }
}

/// What a registration asked of `Connect.SidecarService`, for the rules that concern it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SidecarAsk {
    /// A `SidecarService` was given.
    pub present: bool,
    /// It gave an `ID`.
    pub id_given: bool,
    /// It has a `SidecarService` of its own.
    pub nested: bool,
}

/// Consul's mesh rules for a service (`NodeService.Validate`), every broken one in Consul's
/// order and words; empty when the service is valid.
pub(crate) fn mesh_errors(s: &Service, sidecar: SidecarAsk) -> Vec<String> {
    let m = &s.mesh;
    let mut errs = Vec::new();
    if m.is_proxy() {
        proxy_errors(s, &mut errs);
    }
    if m.is_gateway() {
        let kind = &m.kind;
        if s.port == 0 && kind != KIND_INGRESS_GATEWAY {
            errs.push(format!("Port must be non-zero for a {kind}"));
        }
        if sidecar.present {
            errs.push(format!("A {kind} cannot have a sidecar service defined"));
        }
        let p = &m.proxy;
        let fields = [
            ("DestinationServiceName", !p.destination_service_name.is_empty()),
            ("DestinationServiceID", !p.destination_service_id.is_empty()),
            ("LocalServiceAddress", !p.local_service_address.is_empty()),
            ("LocalServicePort", p.local_service_port != 0),
            ("Upstreams", !p.upstreams.is_empty()),
        ];
        for (field, set) in fields {
            if set {
                errs.push(format!("The Proxy.{field} configuration is invalid for a {kind}"));
            }
        }
    }
    if sidecar.id_given {
        errs.push("A SidecarService cannot specify an ID as this is managed by the agent".into());
    }
    if sidecar.nested {
        errs.push("A SidecarService cannot have a nested SidecarService".into());
    }
    errs
}

fn proxy_errors(s: &Service, errs: &mut Vec<String>) {
    let p = &s.mesh.proxy;
    if p.destination_service_name.trim().is_empty() {
        errs.push("Proxy.DestinationServiceName must be non-empty for Connect proxy services".into());
    }
    if s.port == 0 {
        errs.push("Port must be set for a Connect proxy".into());
    }
    if s.mesh.native {
        errs.push("A Proxy cannot also be Connect Native, only typical services".into());
    }
    let mut binds: Vec<String> = Vec::new();
    for u in &p.upstreams {
        if let Some(e) = upstream_error(u) {
            errs.push(e);
        }
        let host = if u.local_bind_address.is_empty() { "127.0.0.1" } else { &u.local_bind_address };
        let addr = if host.contains(':') {
            format!("[{host}]:{}", u.local_bind_port)
        } else {
            format!("{host}:{}", u.local_bind_port)
        };
        if binds.contains(&addr) {
            errs.push(format!(
                "upstreams cannot contain duplicates by local bind address and port; {addr:?} is specified twice"
            ));
            continue;
        }
        binds.push(addr);
    }
    let mut listeners: Vec<u16> = Vec::new();
    for path in &p.expose.paths {
        if path.path.is_empty() {
            errs.push("expose.paths: empty path exposed".into());
        }
        if listeners.contains(&path.listener_port) {
            errs.push("expose.paths: duplicate listener ports exposed".into());
        }
        listeners.push(path.listener_port);
        if path.listener_port == 0 {
            errs.push(format!("expose.paths: invalid listener port: {}", path.listener_port));
        }
        let protocol = path.protocol.to_ascii_lowercase();
        if !protocol.is_empty() && protocol != "http" && protocol != "http2" {
            errs.push(format!(
                "protocol '{}' not supported for path: {}, must be in: [http http2]",
                protocol, path.path
            ));
        }
    }
}

/// Consul's `Upstream.Validate`: the first broken rule (an empty type is `service`).
fn upstream_error(u: &Upstream) -> Option<String> {
    if !matches!(u.destination_type.as_str(), "" | "service" | "prepared_query") {
        return Some(format!("unknown upstream destination type: {:?}", u.destination_type));
    }
    if u.destination_name.is_empty() {
        return Some("upstream destination name cannot be empty".into());
    }
    if u.local_bind_port == 0 {
        return Some("upstream local bind port cannot be zero".into());
    }
    None
}

/// Go's `hashicorp/go-multierror` text for a list of errors (`None` when empty).
pub(crate) fn multi_error(errs: &[String]) -> Option<String> {
    match errs {
        [] => None,
        [one] => Some(format!("1 error occurred:\n\t* {one}\n\n")),
        many => Some(format!("{} errors occurred:\n\t* {}\n\n", many.len(), many.join("\n\t* "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_error_prints_gos_multierror_text() {
        assert_eq!(multi_error(&[]), None);
        assert_eq!(multi_error(&["a".into()]).unwrap(), "1 error occurred:\n\t* a\n\n");
        assert_eq!(multi_error(&["a".into(), "b".into()]).unwrap(), "2 errors occurred:\n\t* a\n\t* b\n\n");
    }

    #[test]
    fn connect_targets_are_a_proxys_destination_or_a_native_instances_own_name() {
        let mut s = Service::new("n", "p1", "web-proxy", 1);
        assert_eq!(s.mesh.connect_target(&s.name), None);
        s.mesh.kind = KIND_CONNECT_PROXY.into();
        s.mesh.proxy.destination_service_name = "web".into();
        assert_eq!(s.mesh.connect_target(&s.name), Some("web"));
        let mut n = Service::new("n", "w1", "web", 1);
        n.mesh.native = true;
        assert_eq!(n.mesh.connect_target(&n.name), Some("web"));
        n.mesh.kind = KIND_MESH_GATEWAY.into();
        assert_eq!(n.mesh.connect_target(&n.name), None);
    }

    #[test]
    fn a_typical_service_stores_no_mesh_fields() {
        assert!(Mesh::default().is_typical());
        let s = Service::new("n", "w1", "web", 1);
        assert!(s.mesh.is_typical());
    }
}
