//! `/v1/agent/*`: this agent's services and checks.
//!
//! Input: path/query/body → output: agent JSON views, or 200 with an empty body for writes.
//! Invariants: the agent's views are what was registered on this agent (its local state,
//! `local`), as Consul's agent lists them: not the `consul` service nor `serfHealth` its node
//! has in the catalog, and a check's latest status and output even before the catalog has
//! them; registrations and deregistrations go through the local state, which records them
//! (persisted) and proposes `Command::Register`/`Deregister` for that node (keeping its
//! catalog meta and tagged addresses), reporting the proposal's error; TTL timers are armed
//! once committed; TTL updates go through `health::TtlChecks`, which proposes only real
//! changes; deregistering an unknown ID is Consul's no-op (a 500 with ACLs on).
//! `/v1/agent/service/:id` carries Consul's `ContentHash` (`agent_hash`) and blocks on
//! `?hash=`; `/v1/agent/self` is `agent_self`, `/v1/agent/host` `agent_host`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use tokio::time::{Instant, sleep_until};

use super::error::ApiError;
use super::filter::{self, ItemFilter};
use super::query::Query;
use super::token::{Acl, require, require_on};
use super::wire::{self, HealthCheckJson, ServiceJson};
use super::{ApiState, connect, json, parse_body, rest};
use super::{agent_hash, blocking};
use crate::agent::{
    SCRIPTS_DISABLED_REMOTE, decode_check_definition, decode_service_definition, keep_check_state,
};
use crate::catalog::{Check, HealthStatus, Registration, Service, key};
use crate::local::Source;

/// `/v1/agent/services` body: the services registered on this agent (`local`), as Consul's
/// agent lists them (not the `consul` service a server's node has in the catalog).
pub(crate) fn agent_services(services: &[Service], dc: &str) -> BTreeMap<String, ServiceJson> {
    services.iter().map(|s| (s.id.clone(), ServiceJson::agent(s, dc))).collect()
}

/// `/v1/agent/checks` body: the checks registered on this agent, with the status and output
/// it last recorded (not the node's `serfHealth`).
pub(crate) fn agent_checks(checks: &[Check]) -> BTreeMap<String, HealthCheckJson> {
    checks.iter().map(|c| (c.check_id.clone(), HealthCheckJson::from(c))).collect()
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

pub(super) async fn services(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let mut body = agent_services(&st.local.services(), &st.config.datacenter);
    body.retain(|_, s| acl.service_read(&s.service));
    let body = ItemFilter::from_query(&q, filter::AGENT_SERVICE)?.retain_map(body)?;
    Ok(json(&body, q.has("pretty")))
}

/// `/v1/agent/service/:id` body: the agent view and its hash, last as in Consul.
#[derive(serde::Serialize)]
struct HashedService {
    #[serde(flatten)]
    service: ServiceJson,
    #[serde(rename = "ContentHash")]
    content_hash: String,
}

/// `GET /v1/agent/service/:id`, with Consul's `ContentHash` (body and `X-Consul-ContentHash`).
/// With `?hash=H` equal to the current hash it blocks until the service changes or `?wait`
/// (default 5 min, capped at 10, plus jitter) runs out, as Consul's `LocalBlockingQuery`; it
/// wakes only on a published snapshot (every local service change is proposed and published),
/// so a watcher costs one request per change or per wait, never a spin.
pub(super) async fn service(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = rest(&id);
    let q = Query::parse(q.as_deref());
    let hash = q.get("hash").unwrap_or_default().to_owned();
    let wait = blocking::with_jitter(blocking::parse_read_options(&q)?.wait);
    let deadline = Instant::now() + wait;
    let mut published = st.snapshots.subscribe();
    loop {
        let Some(s) = st.local.service(id) else {
            return Err(ApiError::NotFound(format!("unknown service ID: {id}")));
        };
        require(acl.service_read(&s.name))?;
        let current = agent_hash::content_hash(&s);
        if hash.is_empty() || hash != current || Instant::now() >= deadline {
            let body = HashedService {
                service: ServiceJson::agent(&s, &st.config.datacenter),
                content_hash: current.clone(),
            };
            let mut resp = json(&body, q.has("pretty"));
            if let Ok(v) = HeaderValue::from_str(&current) {
                resp.headers_mut().insert("X-Consul-ContentHash", v);
            }
            return Ok(resp);
        }
        tokio::select! {
            r = published.changed() => {
                if r.is_err() {
                    return Err(ApiError::Internal("agent is shutting down".into()));
                }
            }
            () = sleep_until(deadline) => {}
        }
    }
}

pub(super) async fn checks(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let filter = ItemFilter::deferred_from_query(&q, filter::HEALTH_CHECK)?;
    let mut body = agent_checks(&st.local.checks());
    body.retain(|_, c| check_readable(&acl, &c.node, &c.service_name));
    Ok(json(&filter.retain_map(body)?, q.has("pretty")))
}

/// `PUT /v1/agent/service/register`; with `?replace-existing-checks` (empty or `true`, as
/// Consul reads it) the service's local checks the new definition leaves out are removed.
pub(super) async fn register_service(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let replace = q.has("replace-existing-checks")
        && matches!(q.get("replace-existing-checks").unwrap_or_default(), "" | "true");
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
        register_instance(&st, &acl, reg, &ttls, replace).await?;
    }
    Ok(empty())
}

/// Registers one instance (a service or its sidecar) on this agent, after its ACL checks.
async fn register_instance(
    st: &ApiState,
    acl: &Acl,
    mut reg: Registration,
    ttls: &[crate::agent::TtlSpec],
    replace: bool,
) -> Result<(), ApiError> {
    if let Some(s) = &reg.service {
        require_on(acl.service_write(&s.name), "service:write", &s.name)?;
        // Re-registering an ID under another name needs write on the name it had.
        if let Some(old) = st.local.service(&s.id).filter(|old| old.name != s.name) {
            require_on(acl.service_write(&old.name), "service:write", &old.name)?;
        }
    }
    keep_check_state(&mut reg.checks, &st.snapshots.load().catalog);
    let service_id = reg.service.as_ref().map(|s| s.id.clone()).unwrap_or_default();
    let kept: Vec<String> = reg.checks.iter().map(|c| key(&c.check_id)).collect();
    st.local.register(reg, Source::Api).await?;
    for t in ttls {
        st.ttl.arm(t);
    }
    if replace {
        let stale = st
            .local
            .checks()
            .into_iter()
            .filter(|c| key(&c.service_id) == key(&service_id) && !kept.contains(&key(&c.check_id)));
        for c in stale {
            st.local.deregister_check(&c.check_id).await?;
        }
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
        // The spec's 404 (consul-compat §4.5, the conformance suite's contract; later Consul
        // versions answer it). Consul 1.8.7 answered 200 and only logged a warning [live].
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
        // As for services: the spec's 404 (Consul 1.8.7: 200).
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
