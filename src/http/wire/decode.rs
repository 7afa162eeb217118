//! Catalog request decoders: `PUT /v1/catalog/register`, `PUT /v1/catalog/deregister` and
//! the agent's `PUT /v1/agent/check/update/:id` bodies.
//!
//! Stage: HTTP writes, before the proposal. Input: request JSON → output: a `raft`
//! `Registration`/`Deregistration`, or a check status and output.
//! Invariants: request field names match case-insensitively and an unknown field is an error
//! naming it (400); Consul's rule violations (`catalog::validate`) are RPC errors (500) with
//! Consul's texts; a missing `CheckID` defaults to the check name.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::rpc;
use crate::agent::{DefinitionError, Fields, decode_connect, decode_ports, decode_proxy, service_ports};
use crate::catalog::mesh::{mesh_errors, multi_error};
use crate::catalog::validate;
use crate::catalog::{Check, CheckDefinition, HealthStatus, Mesh, Node, Service, ServiceAddress, Weights};
use crate::catalog::{Deregistration, Registration};
use crate::http::error::ApiError;

fn port(p: i64) -> Result<u16, ApiError> {
    u16::try_from(p).map_err(|_| ApiError::Decode(format!("json: invalid port {p}")))
}

const IGNORED_REQUEST_FIELDS: &[&str] =
    &["Token", "WriteRequest", "Namespace", "Partition", "PeerName", "Locality", "EnterpriseMeta"];

/// Weights as Consul's catalog stores them: kept when `Passing` is 1..=65535 and `Warning`
/// 0..=65535, otherwise the default 1/1 (live on 1.8.7: the Go client's `AgentWeights` is not
/// a pointer, so every `Catalog().Register()` sends zeros, which Consul takes as "unset").
fn catalog_weights(passing: i64, warning: i64) -> Weights {
    let valid = |w: i64, min: i64| (min..=65_535).contains(&w);
    match (u32::try_from(passing), u32::try_from(warning)) {
        (Ok(p), Ok(w)) if valid(passing, 1) && valid(warning, 0) => Weights { passing: p, warning: w },
        _ => Weights::default(),
    }
}

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
            catalog_weights(passing, warning)
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
        mesh: Mesh::default(),
        create_index: 0,
        modify_index: 0,
    };
    let mut service = service;
    service.mesh.kind = f.string(&["Kind"])?.unwrap_or_default();
    if let Some(p) = f.take(&["Proxy"]) {
        service.mesh.proxy = decode_proxy(&p)?;
    }
    // `Connect.SidecarService` is checked by Consul's rules but not kept: only an agent
    // registers a sidecar from it.
    let connect = match f.take(&["Connect"]) {
        Some(c) => decode_connect(&c)?,
        None => Default::default(),
    };
    service.mesh.native = connect.native;
    f.ignore(IGNORED_REQUEST_FIELDS);
    f.ignore(&["SocketPath", "CreateIndex", "ModifyIndex", "LocallyRegisteredAsSidecar"]);
    f.finish()?;
    if let Some(msg) = multi_error(&mesh_errors(&service, connect.sidecar_ask())) {
        return Err(rpc(msg));
    }
    validate::service(&service)?;
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
        // Consul 1.8.7 derives an unset `Type` from the definition (live: TCP -> "tcp", HTTP ->
        // "http", none -> ""); a given one is kept.
        check_type: f.string(&["Type"])?.filter(|t| !t.is_empty()).unwrap_or_else(|| {
            let kind = if !definition.http.is_empty() {
                "http"
            } else if !definition.tcp.is_empty() {
                "tcp"
            } else {
                ""
            };
            kind.to_owned()
        }),
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
pub(crate) fn decode_catalog_register(v: &Value, dc: &str) -> Result<Registration, ApiError> {
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
    // Consul defaults a missing CheckID to the check name (an empty one then means neither).
    for c in &mut checks {
        if c.check_id.is_empty() {
            c.check_id.clone_from(&c.name);
        }
    }
    let reg = Registration { node, skip_node_update, service, checks };
    validate::registration(&reg)?;
    Ok(reg)
}

/// Decodes the `Service` of a transaction's service operation on `node` (Consul's
/// `NodeService`, with the catalog's rules).
pub(crate) fn decode_txn_service(v: &Value, node: &str) -> Result<Service, ApiError> {
    decode_service(v, node)
}

/// Decodes a `PUT /v1/catalog/deregister` body.
pub(crate) fn decode_catalog_deregister(v: &Value, dc: &str) -> Result<Deregistration, ApiError> {
    let mut f = Fields::new(v, "DeregisterRequest")?;
    let node = f.string(&["Node"])?.unwrap_or_default();
    let datacenter = f.string(&["Datacenter"])?.unwrap_or_default();
    let service_id = f.string(&["ServiceID"])?.filter(|s| !s.is_empty());
    let check_id = f.string(&["CheckID"])?.filter(|s| !s.is_empty());
    f.ignore(IGNORED_REQUEST_FIELDS);
    // Consul 1.8.7 accepts (and ignores) the node's `Address` here; the Go client's
    // `CatalogDeregistration` has the field [live].
    f.ignore(&["Address"]);
    f.finish()?;
    if !datacenter.is_empty() && !datacenter.eq_ignore_ascii_case(dc) {
        return Err(rpc("No path to datacenter"));
    }
    let d = Deregistration { node, service_id, check_id };
    validate::deregistration(&d)?;
    Ok(d)
}

/// `{"Status","Output"}` of `PUT /v1/agent/check/update/:id`.
pub(crate) fn decode_check_update(v: &Value) -> Result<(HealthStatus, String), ApiError> {
    let mut f = Fields::new(v, "checkUpdate")?;
    let status = f.string(&["Status"])?.unwrap_or_default();
    let output = f.string(&["Output"])?.unwrap_or_default();
    f.finish()?;
    let status = HealthStatus::parse(&status)
        .ok_or_else(|| ApiError::BadRequest(format!("Invalid check status: '{status}'")))?;
    Ok((status, output))
}
