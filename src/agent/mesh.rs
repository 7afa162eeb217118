//! Connect blocks of a service definition: `Proxy` (with `Upstreams`, `MeshGateway`, `Expose`)
//! and `Connect` (`Native`, `SidecarService`), decoded into the catalog's `Proxy`, and the
//! sidecar Consul derives from `Connect.SidecarService`.
//!
//! Stage: agent definitions, decoding (shared by `/v1/agent/service/register`, config-file
//! services and `PUT /v1/catalog/register`). Input: the JSON of a `Proxy` block -> a
//! `catalog::Proxy`; a parent instance and its `SidecarService` definition -> the sidecar's
//! definition with Consul's defaults (`sidecar_definition`).
//! Invariants: field names match as everywhere in `agent` (case-insensitive, snake_case
//! aliases, unknown field = Go's error; Consul 1.8 has no `TransparentProxy`, so it is
//! unknown); an upstream's `DestinationType` is kept as given here, and an agent definition
//! resolves an empty one to `service` (`resolve_upstream_types`), as Consul's agent does (its
//! catalog endpoint stores it empty); a port outside 0..=65535 is refused when decoded (cairn
//! stores `u16`).
//! Sidecar defaults [live on Consul 1.8.7]: ID `<id>-sidecar-proxy`, name
//! `<name>-sidecar-proxy`, kind `connect-proxy`, tags, meta and address inherited when not
//! given, `Proxy.DestinationServiceName`/`ID` the parent's, `LocalServiceAddress` 127.0.0.1,
//! `LocalServicePort` the parent's port, and, when it defines no check, the two checks
//! "Connect Sidecar Listening" (TCP on its address, 127.0.0.1 when empty, every 10 s) and
//! "Connect Sidecar Aliasing <parent id>" (alias of the parent).

use serde_json::Value;

use super::check::CheckSpec;
use super::service::{ServiceDefinition, decode_service_definition};
use super::{DefinitionError, Fields};
use crate::catalog::mesh::{KIND_CONNECT_PROXY, SidecarAsk};
use crate::catalog::{CatalogState, Expose, ExposePath, Proxy, Upstream};

/// Consul's sidecar port range (`ports.sidecar_min_port`, `ports.sidecar_max_port`).
pub(crate) const SIDECAR_PORTS: std::ops::RangeInclusive<u16> = 21000..=21255;

/// The ID of the sidecar of instance `id` (Consul's `<id>-sidecar-proxy`).
pub(crate) fn sidecar_id(id: &str) -> String {
    format!("{id}-sidecar-proxy")
}

/// The port for sidecar `id` on `node` when its definition names none: the port it already
/// has, else the lowest port of Consul's range that no connect-proxy on the node and no port
/// in `taken` uses.
pub(crate) fn sidecar_port(
    cat: &CatalogState,
    node: &str,
    id: &str,
    taken: &[u16],
) -> Result<u16, DefinitionError> {
    if let Some(s) = cat.service(node, id).filter(|s| s.port > 0) {
        return Ok(s.port);
    }
    let used: Vec<u16> = cat.node_services(node).filter(|s| s.mesh.is_proxy()).map(|s| s.port).collect();
    SIDECAR_PORTS.clone().find(|p| !used.contains(p) && !taken.contains(p)).ok_or_else(|| {
        DefinitionError::Invalid(format!(
            "Invalid SidecarService: no port provided for sidecar_service and none left in the configured range [{}, {}]",
            SIDECAR_PORTS.start(),
            SIDECAR_PORTS.end()
        ))
    })
}

fn port16(v: Option<i64>, what: &str) -> Result<u16, DefinitionError> {
    let p = v.unwrap_or(0);
    u16::try_from(p).map_err(|_| DefinitionError::Invalid(format!("{what}: invalid port: {p}")))
}

fn config_map(
    f: &mut Fields,
    names: &[&str],
) -> Result<std::collections::BTreeMap<String, Value>, DefinitionError> {
    Ok(f.object_map(names)?.into_iter().collect())
}

fn mesh_gateway_mode(f: &mut Fields) -> Result<String, DefinitionError> {
    let Some(v) = f.take(&["MeshGateway"]) else { return Ok(String::new()) };
    let mut g = Fields::new(&v, "MeshGatewayConfig")?;
    let mode = g.string(&["Mode"])?.unwrap_or_default();
    g.finish()?;
    Ok(mode)
}

/// Decodes a `Proxy` block (`null` or absent: the empty proxy).
pub(crate) fn decode_proxy(v: &Value) -> Result<Proxy, DefinitionError> {
    if v.is_null() {
        return Ok(Proxy::default());
    }
    let mut f = Fields::new(v, "ConnectProxyConfig")?;
    let mut p = Proxy {
        destination_service_name: f.string(&["DestinationServiceName"])?.unwrap_or_default(),
        destination_service_id: f.string(&["DestinationServiceID"])?.unwrap_or_default(),
        local_service_address: f.string(&["LocalServiceAddress"])?.unwrap_or_default(),
        local_service_port: port16(f.int(&["LocalServicePort"])?, "Proxy.LocalServicePort")?,
        config: config_map(&mut f, &["Config"])?,
        mesh_gateway_mode: mesh_gateway_mode(&mut f)?,
        ..Proxy::default()
    };
    match f.take(&["Upstreams"]) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for u in &items {
                p.upstreams.push(decode_upstream(u)?);
            }
        }
        Some(_) => return Err(unmarshal("ConnectProxyConfig.Upstreams", "structs.Upstreams")),
    }
    if let Some(e) = f.take(&["Expose"]) {
        p.expose = decode_expose(&e)?;
    }
    f.finish()?;
    Ok(p)
}

fn unmarshal(field: &str, ty: &str) -> DefinitionError {
    DefinitionError::Decode(format!("json: cannot unmarshal value into Go struct field {field} of type {ty}"))
}

fn decode_upstream(v: &Value) -> Result<Upstream, DefinitionError> {
    let mut f = Fields::new(v, "Upstream")?;
    let u = Upstream {
        destination_type: f.string(&["DestinationType"])?.unwrap_or_default(),
        destination_namespace: f.string(&["DestinationNamespace"])?.unwrap_or_default(),
        destination_name: f.string(&["DestinationName"])?.unwrap_or_default(),
        datacenter: f.string(&["Datacenter"])?.unwrap_or_default(),
        local_bind_address: f.string(&["LocalBindAddress"])?.unwrap_or_default(),
        local_bind_port: port16(f.int(&["LocalBindPort"])?, "upstream local bind port")?,
        config: config_map(&mut f, &["Config"])?,
        mesh_gateway_mode: mesh_gateway_mode(&mut f)?,
    };
    f.ignore(&["CentrallyConfigured"]);
    f.finish()?;
    Ok(u)
}

fn decode_expose(v: &Value) -> Result<Expose, DefinitionError> {
    if v.is_null() {
        return Ok(Expose::default());
    }
    let mut f = Fields::new(v, "ExposeConfig")?;
    let mut e = Expose { checks: f.bool(&["Checks"])?.unwrap_or(false), paths: Vec::new() };
    match f.take(&["Paths"]) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for p in &items {
                let mut pf = Fields::new(p, "ExposePath")?;
                let listener = pf.int(&["ListenerPort"])?.unwrap_or(0);
                let listener_port = u16::try_from(listener).map_err(|_| {
                    DefinitionError::Invalid(format!("expose.paths: invalid listener port: {listener}"))
                })?;
                e.paths.push(ExposePath {
                    listener_port,
                    path: pf.string(&["Path"])?.unwrap_or_default(),
                    local_path_port: port16(pf.int(&["LocalPathPort"])?, "expose.paths")?,
                    protocol: pf.string(&["Protocol"])?.unwrap_or_default(),
                    parsed_from_check: pf.bool(&["ParsedFromCheck"])?.unwrap_or(false),
                });
                pf.finish()?;
            }
        }
        Some(_) => return Err(unmarshal("ExposeConfig.Paths", "[]structs.ExposePath")),
    }
    f.finish()?;
    Ok(e)
}

/// An agent definition's upstreams without a `DestinationType` get `service` (Consul's
/// `ServiceDefinition.NodeService`).
pub(crate) fn resolve_upstream_types(p: &mut Proxy) {
    for u in &mut p.upstreams {
        if u.destination_type.is_empty() {
            u.destination_type = "service".to_owned();
        }
    }
}

/// The `Connect` block of a service definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectDefinition {
    /// `Native`.
    pub native: bool,
    /// `SidecarService`, decoded as a service definition of its own.
    pub sidecar_service: Option<Box<ServiceDefinition>>,
}

/// Decodes a `Connect` block (`null`: none).
pub(crate) fn decode_connect(v: &Value) -> Result<ConnectDefinition, DefinitionError> {
    if v.is_null() {
        return Ok(ConnectDefinition::default());
    }
    let mut f = Fields::new(v, "ServiceConnect")?;
    let native = f.bool(&["Native"])?.unwrap_or(false);
    let sidecar_service = match f.take(&["SidecarService"]) {
        None | Some(Value::Null) => None,
        Some(s) => Some(Box::new(decode_service_definition(&s)?)),
    };
    f.ignore(&["Proxy"]);
    f.finish()?;
    Ok(ConnectDefinition { native, sidecar_service })
}

impl ConnectDefinition {
    /// What `SidecarService` asks, for Consul's rules on it.
    pub(crate) fn sidecar_ask(&self) -> SidecarAsk {
        match &self.sidecar_service {
            None => SidecarAsk::default(),
            Some(s) => SidecarAsk {
                present: true,
                id_given: !s.id.is_empty(),
                nested: s.connect.sidecar_service.is_some(),
            },
        }
    }
}

/// The sidecar definition for parent instance `parent` (ID `parent_id`) with Consul's
/// defaults filled in; `port` is the sidecar's port when the definition gives none.
pub(crate) fn sidecar_definition(
    parent: &ServiceDefinition,
    parent_id: &str,
    given: &ServiceDefinition,
    port: u16,
) -> ServiceDefinition {
    let mut s = given.clone();
    s.id = sidecar_id(parent_id);
    if s.name.is_empty() {
        s.name = format!("{}-sidecar-proxy", parent.name);
    }
    s.kind = KIND_CONNECT_PROXY.to_owned();
    if s.tags.is_empty() {
        s.tags.clone_from(&parent.tags);
    }
    if s.meta.is_empty() {
        s.meta.clone_from(&parent.meta);
    }
    if s.address.is_empty() {
        s.address.clone_from(&parent.address);
    }
    if s.port < 1 {
        s.port = i64::from(port);
    }
    let p = &mut s.proxy;
    if p.destination_service_name.is_empty() {
        p.destination_service_name.clone_from(&parent.name);
    }
    if p.destination_service_id.is_empty() {
        p.destination_service_id = parent_id.to_owned();
    }
    if p.local_service_address.is_empty() {
        p.local_service_address = "127.0.0.1".to_owned();
    }
    if p.local_service_port == 0 {
        p.local_service_port = u16::try_from(parent.port).unwrap_or(0);
    }
    s.connect = ConnectDefinition::default();
    if s.checks.is_empty() {
        let host = if s.address.is_empty() { "127.0.0.1" } else { s.address.as_str() };
        let tcp =
            if host.contains(':') { format!("[{host}]:{}", s.port) } else { format!("{host}:{}", s.port) };
        s.checks = vec![
            CheckSpec {
                name: "Connect Sidecar Listening".into(),
                tcp,
                interval: std::time::Duration::from_secs(10),
                ..CheckSpec::default()
            },
            CheckSpec {
                name: format!("Connect Sidecar Aliasing {parent_id}"),
                alias_service: parent_id.to_owned(),
                ..CheckSpec::default()
            },
        ];
    }
    s
}
