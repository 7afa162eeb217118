//! `/v1/agent/*`: this agent's node, services and checks.
//!
//! Input: path/query/body → output: agent JSON views, or 200 with an empty body for writes.
//! Invariants: the agent's views are the services and checks on the agent's own node in the
//! snapshot; registrations and deregistrations go through the agent's local state (`local`),
//! which records them (persisted) and proposes `Command::Register`/`Deregister` for that node
//! (keeping its catalog meta and tagged addresses), reporting the proposal's error; TTL timers
//! are armed once committed; TTL updates go through `health::TtlChecks`, which proposes only
//! real changes; unknown IDs are 404 with Consul's text.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::json as js;

use super::error::ApiError;
use super::filter::{self, ItemFilter};
use super::query::Query;
use super::token::{Acl, require, require_on};
use super::wire::{self, HealthCheckJson, ServiceJson};
use super::{ApiState, connect, json, parse_body, rest};
use crate::agent::{
    SCRIPTS_DISABLED_REMOTE, decode_check_definition, decode_service_definition, keep_check_state,
};
use crate::catalog::Registration;
use crate::catalog::{CatalogState, HealthStatus};
use crate::local::Source;

/// Consul version the API reports, for clients that gate features on it.
pub(crate) const CONSUL_COMPAT_VERSION: &str = "1.21.0";

/// `/v1/agent/services` body.
pub(crate) fn agent_services(cat: &CatalogState, node: &str, dc: &str) -> BTreeMap<String, ServiceJson> {
    cat.node_services(node).map(|s| (s.id.clone(), ServiceJson::agent(s, dc))).collect()
}

/// `/v1/agent/checks` body.
pub(crate) fn agent_checks(cat: &CatalogState, node: &str) -> BTreeMap<String, HealthCheckJson> {
    cat.node_checks(node).map(|c| (c.check_id.clone(), HealthCheckJson::from(&**c))).collect()
}

/// Script checks from the HTTP API need `enable_script_checks` (Consul's text, a 500 as
/// Consul's agent returns it); every refusal is logged, since it may be a probe for remote
/// code execution.
fn refuse_remote_script(st: &ApiState) -> Result<(), ApiError> {
    if st.config.checks.enable_script_checks {
        return Ok(());
    }
    tracing::warn!("refused a script check registered through the HTTP API: enable_script_checks is off");
    Err(ApiError::Internal(SCRIPTS_DISABLED_REMOTE.into()))
}

/// `node:write` on this agent's node, with Consul's detailed 403 text.
fn require_node_write(st: &ApiState, acl: &Acl) -> Result<(), ApiError> {
    let node = &st.config.node_name;
    require_on(acl.node_write(node), "node:write", node)
}

/// A check may be seen with `service:read` on its service, or `node:read` for a node check.
fn check_readable(acl: &Acl, node: &str, service_name: &str) -> bool {
    if service_name.is_empty() { acl.node_read(node) } else { acl.service_read(service_name) }
}

/// Changing a check needs `service:write` on its service, or `node:write` for a node check.
fn vet_check_write(st: &ApiState, acl: &Acl, service_name: &str) -> Result<(), ApiError> {
    if service_name.is_empty() {
        require_node_write(st, acl)
    } else {
        require_on(acl.service_write(service_name), "service:write", service_name)
    }
}

/// `vet_check_write` for a TTL update of check `id`. An unknown check is, with ACLs on,
/// Consul's 500 `Unknown check "x"` [live on 1.8.7]; with ACLs off it is left to the update's
/// own 404.
fn vet_check_update(st: &ApiState, acl: &Acl, id: &str) -> Result<(), ApiError> {
    let known = st
        .local
        .check(id)
        .or_else(|| st.snapshots.load().catalog.check(&st.config.node_name, id).map(|c| (**c).clone()));
    match known {
        Some(c) => vet_check_write(st, acl, &c.service_name),
        None if st.acl.enabled() => Err(ApiError::Internal(format!("Unknown check {id:?}"))),
        None => Ok(()),
    }
}

fn empty() -> Response {
    ().into_response()
}

/// `PUT /v1/agent/reload`: asks the agent to reload its configuration as SIGHUP does (DNS
/// settings, zones); the reload runs asynchronously, its outcome is logged.
pub(super) async fn reload(State(st): State<ApiState>, acl: Acl) -> Result<Response, ApiError> {
    require(acl.agent_write(&st.config.node_name))?;
    st.reload.notify_one();
    Ok(empty())
}

pub(super) async fn self_info(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.agent_read(&st.config.node_name))?;
    let q = Query::parse(q.as_deref());
    let snap = st.snapshots.load_full();
    let mut body = js!({
        "Config": self_config(&st),
        "DebugConfig": {},
        "Coord": null,
        "Member": self_member(&st),
        "Stats": {
            "agent": agent_stats(&st, &snap.catalog),
            "consul": consul_stats(&st),
            "raft": raft_stats(&st),
        },
        "Meta": { "consul-network-segment": "" },
        "xDS": null,
    });
    if let Some(replica) = replica_stats(&st, snap.index) {
        body["Stats"]["replica"] = replica;
    }
    Ok(json(&body, q.has("pretty")))
}

/// `Config` of `/v1/agent/self`.
fn self_config(st: &ApiState) -> serde_json::Value {
    let c = &st.config;
    js!({
        "Datacenter": c.datacenter,
        "PrimaryDatacenter": c.datacenter,
        "NodeName": c.node_name,
        "NodeID": c.node_id,
        "Server": c.server,
        "Revision": concat!("cairn-", env!("CARGO_PKG_VERSION")),
        "Version": CONSUL_COMPAT_VERSION,
        "BuildDate": "",
    })
}

/// `Member` of `/v1/agent/self`: this agent as Serf lists it.
fn self_member(st: &ApiState) -> serde_json::Value {
    let c = &st.config;
    let role = if c.server { "consul" } else { "node" };
    js!({
        "Name": c.node_name,
        "Addr": c.bind_addr.to_string(),
        "Port": c.ports.serf_lan,
        "Tags": {
            "dc": c.datacenter,
            "id": c.node_id,
            "role": role,
            "port": c.ports.server.to_string(),
            "build": CONSUL_COMPAT_VERSION,
            "vsn": "2",
            "vsn_min": "2",
            "vsn_max": "3",
        },
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}

/// `Stats.agent` of `/v1/agent/self`: this node's checks and services, the check runners.
fn agent_stats(st: &ApiState, cat: &CatalogState) -> serde_json::Value {
    let c = &st.config;
    js!({
        "check_monitors": cat.node_checks(&c.node_name).filter(|ch| ch.check_type == "script").count().to_string(),
        "check_runners": st.checks.stats().running.load(std::sync::atomic::Ordering::Relaxed).to_string(),
        "check_probes": st.checks.stats().probes.load(std::sync::atomic::Ordering::Relaxed).to_string(),
        "check_updates": st.checks.stats().updates.load(std::sync::atomic::Ordering::Relaxed).to_string(),
        "check_ttls": cat.node_checks(&c.node_name).filter(|ch| ch.definition.ttl_ns > 0).count().to_string(),
        "checks": cat.node_checks(&c.node_name).count().to_string(),
        "services": cat.node_services(&c.node_name).count().to_string(),
    })
}

/// `Stats.consul` of `/v1/agent/self`: role, leader and known servers.
fn consul_stats(st: &ApiState) -> serde_json::Value {
    js!({
        "server": st.config.server.to_string(),
        "leader": st.consensus.is_leader().to_string(),
        "leader_addr": st.consensus.leader_addr().unwrap_or_default(),
        "known_servers": st.consensus.peer_addrs().len().to_string(),
        "known_datacenters": "1",
    })
}

/// `Stats.raft` of `/v1/agent/self`.
fn raft_stats(st: &ApiState) -> serde_json::Value {
    js!({
        "applied_index": st.consensus.applied_index().to_string(),
        "last_contact": st.consensus.last_contact_ms().to_string(),
        "num_peers": st.consensus.peer_addrs().len().saturating_sub(1).to_string(),
    })
}

/// `Stats.replica` of `/v1/agent/self`, on a client agent only: the server its replica stream
/// follows and how it went (`applied_index` is the published snapshot's index).
fn replica_stats(st: &ApiState, applied_index: u64) -> Option<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let client = st.replica.as_ref()?;
    let stream = client.stream_status();
    let stats = client.stats();
    Some(serde_json::json!({
        "server": stream.server.unwrap_or_default(),
        "applied_index": applied_index.to_string(),
        "lag_index": client.lag_index().to_string(),
        "last_contact": client.last_contact_ms().to_string(),
        "dumps": stats.dumps.load(Relaxed).to_string(),
        "resumes": stats.resumes.load(Relaxed).to_string(),
        "connects": stats.connects.load(Relaxed).to_string(),
    }))
}

pub(super) async fn services(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let snap = st.snapshots.load_full();
    let mut body = agent_services(&snap.catalog, &st.config.node_name, &st.config.datacenter);
    body.retain(|_, s| acl.service_read(&s.service));
    let body = ItemFilter::from_query(&q, filter::AGENT_SERVICE)?.retain_map(body)?;
    Ok(json(&body, q.has("pretty")))
}

pub(super) async fn service(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = rest(&id);
    let q = Query::parse(q.as_deref());
    let snap = st.snapshots.load_full();
    let s = snap
        .catalog
        .service(&st.config.node_name, id)
        .ok_or_else(|| ApiError::NotFound(format!("unknown service ID: {id}")))?;
    require(acl.service_read(&s.name))?;
    Ok(json(&ServiceJson::agent(s, &st.config.datacenter), q.has("pretty")))
}

pub(super) async fn checks(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let filter = ItemFilter::deferred_from_query(&q, filter::HEALTH_CHECK)?;
    let snap = st.snapshots.load_full();
    let mut body = agent_checks(&snap.catalog, &st.config.node_name);
    body.retain(|_, c| check_readable(&acl, &c.node, &c.service_name));
    Ok(json(&filter.retain_map(body)?, q.has("pretty")))
}

pub(super) async fn register_service(
    State(st): State<ApiState>,
    acl: Acl,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = parse_body(&body)?;
    let def = decode_service_definition(&v)?;
    if def.checks.iter().any(|c| c.kind() == "script") {
        refuse_remote_script(&st)?;
        require_node_write(&st, &acl)?;
    }
    let node = st.agent_node();
    let sidecar = connect::sidecar_of(&st, &def)?;
    let parent = def.into_registration(&node)?;
    let sidecar = sidecar.map(|d| d.into_registration(&node)).transpose()?;
    for (reg, ttls) in std::iter::once(parent).chain(sidecar) {
        register_instance(&st, &acl, reg, &ttls).await?;
    }
    Ok(empty())
}

/// Registers one instance (a service or its sidecar) on this agent, after its ACL checks.
async fn register_instance(
    st: &ApiState,
    acl: &Acl,
    mut reg: Registration,
    ttls: &[crate::agent::TtlSpec],
) -> Result<(), ApiError> {
    if let Some(s) = &reg.service {
        require_on(acl.service_write(&s.name), "service:write", &s.name)?;
        // Re-registering an ID under another name needs write on the name it had.
        if let Some(old) = st.local.service(&s.id).filter(|old| old.name != s.name) {
            require_on(acl.service_write(&old.name), "service:write", &old.name)?;
        }
    }
    keep_check_state(&mut reg.checks, &st.snapshots.load().catalog);
    st.local.register(reg, Source::Api).await?;
    for t in ttls {
        st.ttl.arm(t);
    }
    Ok(())
}

pub(super) async fn deregister_service(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = rest(&id);
    let node = &st.config.node_name;
    let known =
        st.local.service(id).or_else(|| st.snapshots.load().catalog.service(node, id).map(|s| (**s).clone()));
    let Some(s) = known else {
        return Err(ApiError::NotFound(format!(
            "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
        )));
    };
    require_on(acl.service_write(&s.name), "service:write", &s.name)?;
    st.local.deregister_service(&s.id).await?;
    // Consul removes the sidecar registered from the service's `Connect.SidecarService`.
    if let Some(sidecar) = st.local.service(&connect::sidecar_id(&s.id)).filter(|c| c.mesh.sidecar) {
        st.local.deregister_service(&sidecar.id).await?;
    }
    Ok(empty())
}

pub(super) async fn register_check(
    State(st): State<ApiState>,
    acl: Acl,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = parse_body(&body)?;
    let spec = decode_check_definition(&v)?;
    if spec.name.is_empty() {
        return Err(ApiError::BadRequest("Missing check name".into()));
    }
    if !spec.status.is_empty() && HealthStatus::parse(&spec.status).is_none() {
        return Err(ApiError::BadRequest("Bad check status".into()));
    }
    if spec.kind() == "script" {
        refuse_remote_script(&st)?;
        require_node_write(&st, &acl)?;
    }
    let node = st.agent_node();
    let snap = st.snapshots.load_full();
    let service = if spec.service_id.is_empty() {
        None
    } else {
        let s = snap
            .catalog
            .service(&node.name, &spec.service_id)
            .map(|s| (**s).clone())
            .or_else(|| st.local.service(&spec.service_id))
            .ok_or_else(|| ApiError::NotFound(format!("ServiceID {:?} does not exist", spec.service_id)))?;
        Some(s)
    };
    match &service {
        Some(s) => require_on(acl.service_write(&s.name), "service:write", &s.name)?,
        None => require_node_write(&st, &acl)?,
    }
    let default_id = spec.name.clone();
    let (mut check, ttl) = spec.into_check(
        &node.name,
        service.as_ref().map(|s| (s.id.as_str(), s.name.as_str(), s.tags.as_slice())),
        &default_id,
        &default_id,
    )?;
    keep_check_state(std::slice::from_mut(&mut check), &snap.catalog);
    let reg = Registration { node, skip_node_update: false, service: None, checks: vec![check] };
    st.local.register(reg, Source::Api).await?;
    if let Some(t) = ttl {
        st.ttl.arm(&t);
    }
    Ok(empty())
}

pub(super) async fn deregister_check(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = rest(&id);
    let node = &st.config.node_name;
    let known =
        st.local.check(id).or_else(|| st.snapshots.load().catalog.check(node, id).map(|c| (**c).clone()));
    let Some(c) = known else {
        return Err(ApiError::NotFound(format!(
            "Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."
        )));
    };
    vet_check_write(&st, &acl, &c.service_name)?;
    st.local.deregister_check(&c.check_id).await?;
    Ok(empty())
}

async fn ttl_update(
    st: &ApiState,
    acl: &Acl,
    id: &str,
    status: HealthStatus,
    q: Option<String>,
) -> Result<Response, ApiError> {
    vet_check_update(st, acl, rest(id))?;
    let q = Query::parse(q.as_deref());
    let note = q.get("note").unwrap_or_default().to_owned();
    st.ttl.update(rest(id), status, note).await?;
    Ok(empty())
}

pub(super) async fn check_pass(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    ttl_update(&st, &acl, &id, HealthStatus::Passing, q).await
}

pub(super) async fn check_warn(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    ttl_update(&st, &acl, &id, HealthStatus::Warning, q).await
}

pub(super) async fn check_fail(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    ttl_update(&st, &acl, &id, HealthStatus::Critical, q).await
}

pub(super) async fn check_update(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    vet_check_update(&st, &acl, rest(&id))?;
    let v = parse_body(&body)?;
    let (status, output) = wire::decode_check_update(&v)?;
    st.ttl.update(rest(&id), status, output).await?;
    Ok(empty())
}
