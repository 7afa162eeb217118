//! Service definitions: Consul's service definition format, decoded and converted.
//!
//! Stage: agent definitions (HTTP `/v1/agent/service/register`, config-file `service` blocks).
//! Input: a JSON object -> `ServiceDefinition` (`decode_service_definition`, decoded, not
//! validated) -> `ServiceDefinition::into_registration` -> a `catalog::Registration` of the
//! instance and its checks, plus the TTL timers to arm.
//! Invariants: field names match case-insensitively (`Fields`); an unknown field is an error
//! naming it; validation uses Consul's messages (`Missing service name`, `Invalid Weights: …`);
//! defaults: service ID = name, check ID `service:<ID>` (or `service:<ID>:<n>`, 1-based, when
//! there are several), check name `Service '<Name>' check`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::check::decode_check_definition;
use super::mesh::{
    ConnectDefinition, decode_connect, decode_proxy, resolve_upstream_types, sidecar_definition, sidecar_id,
    sidecar_port,
};
use super::{CheckSpec, DefinitionError, Fields, TtlSpec, invalid};
use crate::catalog::mesh::{mesh_errors, multi_error};
use crate::catalog::{
    CatalogState, Mesh, Node, Proxy, Registration, Service, ServiceAddress, ServicePort, Weights,
};

/// Consul's service definition, decoded but not validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDefinition {
    /// `ID` (empty: the name).
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `Tags`.
    pub tags: Vec<String>,
    /// `Address`.
    pub address: String,
    /// `TaggedAddresses`.
    pub tagged_addresses: BTreeMap<String, (String, i64)>,
    /// `Meta`.
    pub meta: BTreeMap<String, String>,
    /// `Port`.
    pub port: i64,
    /// `Ports[]` as (Name, Port, Default).
    pub ports: Vec<(String, i64, bool)>,
    /// `Kind` (empty: typical; stored as given, as Consul 1.8 does).
    pub kind: String,
    /// `Proxy` (proxies and gateways).
    pub proxy: Proxy,
    /// `Connect` (`Native`, `SidecarService`).
    pub connect: ConnectDefinition,
    /// Derived from a parent's `Connect.SidecarService` (never decoded).
    pub registered_as_sidecar: bool,
    /// `Weights` as (Passing, Warning), when given.
    pub weights: Option<(i64, i64)>,
    /// `EnableTagOverride`.
    pub enable_tag_override: bool,
    /// `Check` followed by `Checks`.
    pub checks: Vec<CheckSpec>,
}

/// Fields of a service definition the appliance accepts and ignores.
const IGNORED_SERVICE_FIELDS: &[&str] =
    &["Token", "Namespace", "Partition", "SocketPath", "Locality", "EnterpriseMeta"];

/// Decodes a service definition (`Name`, `ID`, `Tags`, …, `Check`, `Checks`).
pub(crate) fn decode_service_definition(v: &Value) -> Result<ServiceDefinition, DefinitionError> {
    let mut f = Fields::new(v, "ServiceDefinition")?;
    let mut def = ServiceDefinition {
        id: f.string(&["ID"])?.unwrap_or_default(),
        name: f.string(&["Name"])?.unwrap_or_default(),
        tags: f.strings(&["Tags"])?,
        address: f.string(&["Address"])?.unwrap_or_default(),
        meta: f.string_map(&["Meta"])?,
        port: f.int(&["Port"])?.unwrap_or(0),
        kind: f.string(&["Kind"])?.unwrap_or_default(),
        enable_tag_override: f.bool(&["EnableTagOverride"])?.unwrap_or(false),
        ..ServiceDefinition::default()
    };
    for (name, addr) in f.object_map(&["TaggedAddresses"])? {
        let mut a = Fields::new(&addr, "ServiceAddress")?;
        let address = a.string(&["Address"])?.unwrap_or_default();
        let port = a.int(&["Port"])?.unwrap_or(0);
        a.finish()?;
        def.tagged_addresses.insert(name, (address, port));
    }
    if let Some(ports) = f.take(&["Ports"]) {
        def.ports = decode_ports(&ports)?;
    }
    if let Some(w) = f.take(&["Weights"]) {
        let mut w = Fields::new(&w, "Weights")?;
        let passing = w.int(&["Passing"])?.unwrap_or(0);
        let warning = w.int(&["Warning"])?.unwrap_or(0);
        w.finish()?;
        def.weights = Some((passing, warning));
    }
    if let Some(p) = f.take(&["Proxy"]) {
        def.proxy = decode_proxy(&p)?;
    }
    if let Some(c) = f.take(&["Connect"]) {
        def.connect = decode_connect(&c)?;
    }
    if let Some(c) = f.take(&["Check"]) {
        def.checks.push(decode_check_definition(&c)?);
    }
    match f.take(&["Checks"]) {
        None => {}
        Some(Value::Array(items)) => {
            for c in &items {
                def.checks.push(decode_check_definition(c)?);
            }
        }
        Some(other) => {
            return Err(DefinitionError::Decode(format!(
                "json: cannot unmarshal {} into Go struct field ServiceDefinition.Checks of type structs.CheckTypes",
                if other.is_object() { "object" } else { "value" }
            )));
        }
    }
    f.ignore(IGNORED_SERVICE_FIELDS);
    f.finish()?;
    Ok(def)
}

/// Consul's "0.0.0.0 / :: are not addresses" rule for service addresses.
fn is_ip_any(addr: &str) -> bool {
    let trimmed = addr.trim_start_matches('[').trim_end_matches(']');
    trimmed.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// Decodes `Ports[]` (`[{"Name","Port","Default"}]`) as (Name, Port, Default) triples.
pub(crate) fn decode_ports(v: &Value) -> Result<Vec<(String, i64, bool)>, DefinitionError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(DefinitionError::Decode(
                "json: cannot unmarshal value into Go struct field ServiceDefinition.Ports".to_owned(),
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for p in items {
        let mut p = Fields::new(p, "ServicePort")?;
        let name = p.string(&["Name"])?.unwrap_or_default();
        let number = p.int(&["Port"])?.unwrap_or(0);
        let default = p.bool(&["Default"])?.unwrap_or(false);
        p.finish()?;
        out.push((name, number, default));
    }
    Ok(out)
}

/// Validates `Port` / `Ports[]`: they exclude each other; port names are non-empty and
/// unique (case-insensitively, as DNS compares them); at most one is the default, and without
/// one the first is. Returns the service's `Port` (the default named port) and the ports.
pub(crate) fn service_ports(
    single: i64,
    named: &[(String, i64, bool)],
) -> Result<(u16, Vec<ServicePort>), DefinitionError> {
    if named.is_empty() {
        return Ok((port(single)?, Vec::new()));
    }
    if single != 0 {
        return Err(invalid("Cannot specify both Port and Ports"));
    }
    let mut ports: Vec<ServicePort> = Vec::with_capacity(named.len());
    for (name, number, default) in named {
        if name.is_empty() {
            return Err(invalid("Invalid Ports: every port needs a Name"));
        }
        if ports.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
            return Err(invalid(format!("Invalid Ports: duplicate port name {name:?}")));
        }
        ports.push(ServicePort { name: name.clone(), port: port(*number)?, default: *default });
    }
    match ports.iter().filter(|p| p.default).count() {
        0 => {
            if let Some(first) = ports.first_mut() {
                first.default = true;
            }
        }
        1 => {}
        _ => return Err(invalid("Invalid Ports: only one port may be the default")),
    }
    let default = ports.iter().find(|p| p.default).map_or(0, |p| p.port);
    Ok((default, ports))
}

fn port(p: i64) -> Result<u16, DefinitionError> {
    u16::try_from(p).map_err(|_| invalid(format!("Invalid port: {p}")))
}

/// Consul's `ValidateServiceMetadata` (without the reserved-key exemptions).
fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    if meta.len() > 64 {
        return Err("Node metadata cannot contain more than 64 key/value pairs".into());
    }
    for (k, v) in meta {
        if k.is_empty() {
            return Err("Key cannot be blank".into());
        }
        if !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("Key contains invalid characters: {k}"));
        }
        if k.len() > 128 {
            return Err(format!("Key is too long (limit: 128 characters): {k}"));
        }
        if k.starts_with("consul-") {
            return Err(format!("Key prefix 'consul-' is reserved for internal use: {k}"));
        }
        if v.len() > 512 {
            return Err(format!("Value is too long (limit: 512 characters): {k}"));
        }
    }
    Ok(())
}

/// Consul's agent (1.8, live on 1.8.7) tags a service's own IP address: `lan_ipv4` and
/// `wan_ipv4` (or `lan_ipv6` and `wan_ipv6`) with the service's port, unless the definition
/// already names them; a hostname or an empty address adds nothing.
fn derive_tagged_addresses(tagged: &mut BTreeMap<String, ServiceAddress>, address: &str, port: u16) {
    let family = match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => "ipv4",
        Ok(IpAddr::V6(_)) => "ipv6",
        Err(_) => return,
    };
    for scope in ["lan", "wan"] {
        tagged
            .entry(format!("{scope}_{family}"))
            .or_insert_with(|| ServiceAddress { address: address.to_owned(), port });
    }
}

impl ServiceDefinition {
    /// The instance ID: `ID`, or the name when empty.
    pub fn service_id(&self) -> &str {
        if self.id.is_empty() { &self.name } else { &self.id }
    }

    /// The sidecar `Connect.SidecarService` asks for, with Consul's defaults, on this agent's
    /// `node` in `cat`; a sidecar without a port gets one (`sidecar_port`, avoiding `taken`).
    /// `None` without a `SidecarService`.
    pub fn sidecar_for(
        &self,
        cat: &CatalogState,
        node: &str,
        taken: &[u16],
    ) -> Result<Option<Self>, DefinitionError> {
        let Some(given) = self.connect.sidecar_service.as_deref() else { return Ok(None) };
        let port =
            if given.port < 1 { sidecar_port(cat, node, &sidecar_id(self.service_id()), taken)? } else { 0 };
        let mut s = sidecar_definition(self, self.service_id(), given, port);
        s.registered_as_sidecar = true;
        Ok(Some(s))
    }

    /// Validates the definition and builds the catalog registration of the service (and its
    /// checks) on `node`, plus the TTL timers to arm.
    pub fn into_registration(self, node: &Node) -> Result<(Registration, Vec<TtlSpec>), DefinitionError> {
        if self.name.is_empty() {
            return Err(invalid("Missing service name"));
        }
        if is_ip_any(&self.address) {
            return Err(invalid("Invalid service address"));
        }
        let mut tagged_addresses = BTreeMap::new();
        for (k, (addr, p)) in &self.tagged_addresses {
            if is_ip_any(addr) {
                return Err(invalid(format!("Invalid service address for tagged address {k:?}")));
            }
            tagged_addresses.insert(k.clone(), ServiceAddress { address: addr.clone(), port: port(*p)? });
        }
        let weights = match self.weights {
            None => Weights::default(),
            Some((passing, warning)) => {
                if passing < 1 {
                    return Err(invalid("Invalid Weights: Passing must be greater than 0"));
                }
                if warning < 0 {
                    return Err(invalid("Invalid Weights: Warning must be greater or equal than 0"));
                }
                let cap = |w: i64| u32::try_from(w).map_err(|_| invalid("Invalid Weights: weight too large"));
                Weights { passing: cap(passing)?, warning: cap(warning)? }
            }
        };
        validate_meta(&self.meta).map_err(|e| invalid(format!("Invalid Service Meta: {e}")))?;
        let (port_number, ports) = service_ports(self.port, &self.ports)?;
        derive_tagged_addresses(&mut tagged_addresses, &self.address, port_number);
        let id = self.service_id().to_owned();
        let service = Service {
            node: node.name.clone(),
            id: id.clone(),
            name: self.name.clone(),
            tags: self.tags.clone(),
            address: self.address.clone(),
            port: port_number,
            ports,
            meta: self.meta.clone(),
            tagged_addresses,
            weights,
            enable_tag_override: self.enable_tag_override,
            mesh: Mesh {
                kind: self.kind.clone(),
                proxy: {
                    let mut p = self.proxy.clone();
                    resolve_upstream_types(&mut p);
                    p
                },
                native: self.connect.native,
                sidecar: self.registered_as_sidecar,
            },
            create_index: 0,
            modify_index: 0,
        };
        if let Some(msg) = multi_error(&mesh_errors(&service, self.connect.sidecar_ask())) {
            return Err(invalid(msg));
        }
        let several = self.checks.len() > 1;
        let default_name = format!("Service '{}' check", self.name);
        let mut checks = Vec::with_capacity(self.checks.len());
        let mut ttls = Vec::new();
        for (i, spec) in self.checks.into_iter().enumerate() {
            let default_id =
                if several { format!("service:{id}:{}", i + 1) } else { format!("service:{id}") };
            let (check, ttl) = spec.into_check(
                &node.name,
                Some((&id, &service.name, &service.tags)),
                &default_id,
                &default_name,
            )?;
            checks.push(check);
            ttls.extend(ttl);
        }
        let registration =
            Registration { node: node.clone(), skip_node_update: false, service: Some(service), checks };
        Ok((registration, ttls))
    }
}
