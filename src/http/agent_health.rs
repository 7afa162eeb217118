//! `/v1/agent/health/service/{id,name}/…` (local service health as a status code) and
//! `/v1/agent/maintenance`, `/v1/agent/service/maintenance/…` (maintenance checks).
//!
//! Input: path/query → output: Consul's `AgentServiceChecksInfo` JSON (or the bare status
//! with `?format=text`) under 200 passing / 429 warning / 503 critical or maintenance / 404;
//! maintenance writes register or deregister Consul's `_node_maintenance` and
//! `_service_maintenance:<id>` critical checks through the agent's local state (so they
//! persist and anti-entropy keeps them).
//! Invariants: health is read from the published snapshot (this agent's node only);
//! maintenance checks are ordinary catalog checks of type `maintenance`, so DNS drops the
//! node's (or the service's) instances while they exist; enabling twice is a no-op.

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json as js;

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require, require_on};
use super::wire::{HealthCheckJson, ServiceJson};
use super::{ApiState, rest};
use crate::catalog::Registration;
use crate::catalog::{CatalogState, Check, HealthStatus, Service};
use crate::local::Source;

/// Consul's node maintenance check ID.
pub(crate) const NODE_MAINT_CHECK_ID: &str = "_node_maintenance";
/// Prefix of Consul's service maintenance check IDs.
pub(crate) const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";
const DEFAULT_NODE_MAINT_REASON: &str =
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";
const DEFAULT_SERVICE_MAINT_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

fn is_maintenance(c: &Check) -> bool {
    c.check_id == NODE_MAINT_CHECK_ID || c.check_id.starts_with(SERVICE_MAINT_PREFIX)
}

/// Consul's `AggregatedStatus` of an instance's checks and its HTTP code.
fn aggregate(checks: &[&Check]) -> (&'static str, StatusCode) {
    if checks.iter().any(|c| is_maintenance(c)) {
        return ("maintenance", StatusCode::SERVICE_UNAVAILABLE);
    }
    match checks.iter().map(|c| c.status).max().unwrap_or(HealthStatus::Passing) {
        HealthStatus::Passing => ("passing", StatusCode::OK),
        HealthStatus::Warning => ("warning", StatusCode::TOO_MANY_REQUESTS),
        HealthStatus::Critical => ("critical", StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// One `AgentServiceChecksInfo`, its status text and code.
fn service_info(cat: &CatalogState, s: &Service, dc: &str) -> (serde_json::Value, &'static str, StatusCode) {
    let checks: Vec<&Check> = cat.instance_checks(&s.node, &s.id).map(|c| &**c).collect();
    let (status, code) = aggregate(&checks);
    let json_checks: Vec<HealthCheckJson> = checks.iter().map(|c| HealthCheckJson::from(*c)).collect();
    let body = js!({
        "AggregatedStatus": status,
        "Service": ServiceJson::agent(s, dc),
        "Checks": json_checks,
    });
    (body, status, code)
}

fn reply(code: StatusCode, text: &str, body: &serde_json::Value, as_text: bool) -> Response {
    if as_text {
        return (code, [(header::CONTENT_TYPE, "text/plain")], text.to_owned()).into_response();
    }
    match serde_json::to_vec(body) {
        Ok(b) => (code, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => ApiError::Internal(format!("failed to encode response: {e}")).into_response(),
    }
}

fn wants_text(q: &Query) -> bool {
    q.get("format") == Some("text")
}

pub(super) async fn service_health_by_id(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = rest(&id);
    if id.is_empty() {
        return Err(ApiError::BadRequest("Missing serviceID".into()));
    }
    let q = Query::parse(q.as_deref());
    let snap = st.snapshots.load_full();
    match snap.catalog.service(&st.config.node_name, id) {
        Some(s) => {
            require(acl.service_read(&s.name))?;
            let (body, status, code) = service_info(&snap.catalog, s, &st.config.datacenter);
            Ok(reply(code, status, &body, wants_text(&q)))
        }
        None => {
            let reason = format!("ServiceId {id} not found");
            let body = js!({"AggregatedStatus": "critical", "Service": null, "Checks": null});
            Ok(reply(StatusCode::NOT_FOUND, &reason, &body, wants_text(&q)))
        }
    }
}

pub(super) async fn service_health_by_name(
    State(st): State<ApiState>,
    acl: Acl,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let name = rest(&name);
    if name.is_empty() {
        return Err(ApiError::BadRequest("Missing service Name".into()));
    }
    require(acl.service_read(name))?;
    let q = Query::parse(q.as_deref());
    let snap = st.snapshots.load_full();
    let mut code = StatusCode::NOT_FOUND;
    let mut status = format!("ServiceName {name} Not Found");
    let mut result = Vec::new();
    for s in snap.catalog.node_services(&st.config.node_name).filter(|s| s.name == name) {
        let (body, sstatus, scode) = service_info(&snap.catalog, s, &st.config.datacenter);
        result.push(body);
        // The worst wins: 200 < 429 < 503.
        if code == StatusCode::NOT_FOUND || code < scode {
            code = scode;
            status = sstatus.to_owned();
        }
    }
    Ok(reply(code, &status, &serde_json::Value::Array(result), wants_text(&q)))
}

/// `?enable=` (required, Go's `ParseBool`) and `?reason=`.
fn maintenance_params(q: &Query) -> Result<(bool, String), ApiError> {
    let enable = match q.get("enable") {
        None => return Err(ApiError::BadRequest("Missing value for enable".into())),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
        Some(other) => return Err(ApiError::BadRequest(format!("Invalid value for enable: {other:?}"))),
    };
    Ok((enable, q.get("reason").unwrap_or_default().to_owned()))
}

pub(super) async fn node_maintenance(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    let (enable, reason) = maintenance_params(&q)?;
    let node = st.config.node_name.clone();
    require(acl.node_write(&node))?;
    let exists = st.local.check(NODE_MAINT_CHECK_ID).is_some()
        || st.snapshots.load().catalog.check(&node, NODE_MAINT_CHECK_ID).is_some();
    if enable && !exists {
        let check = Check {
            name: "Node Maintenance Mode".into(),
            notes: if reason.is_empty() { DEFAULT_NODE_MAINT_REASON.into() } else { reason },
            check_type: "maintenance".into(),
            ..Check::new(&node, NODE_MAINT_CHECK_ID, "", HealthStatus::Critical)
        };
        let reg = Registration {
            node: st.agent_node(),
            skip_node_update: false,
            service: None,
            checks: vec![check],
        };
        st.local.register(reg, Source::Api).await?;
        tracing::info!("node entered maintenance mode");
    } else if !enable && exists {
        st.local.deregister_check(NODE_MAINT_CHECK_ID).await?;
        tracing::info!("node left maintenance mode");
    }
    Ok(().into_response())
}

pub(super) async fn service_maintenance(
    State(st): State<ApiState>,
    acl: Acl,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let id = rest(&id);
    if id.is_empty() {
        return Err(ApiError::BadRequest("Missing service ID".into()));
    }
    let q = Query::parse(q.as_deref());
    let (enable, reason) = maintenance_params(&q)?;
    let node = st.config.node_name.clone();
    let snap = st.snapshots.load_full();
    let Some(service) = snap.catalog.service(&node, id) else {
        return Err(ApiError::NotFound(format!("No service registered with ID {id:?}")));
    };
    require_on(acl.service_write(&service.name), "service:write", &service.name)?;
    let check_id = format!("{SERVICE_MAINT_PREFIX}{}", service.id);
    let exists = st.local.check(&check_id).is_some() || snap.catalog.check(&node, &check_id).is_some();
    if enable && !exists {
        let check = Check {
            name: "Service Maintenance Mode".into(),
            notes: if reason.is_empty() { DEFAULT_SERVICE_MAINT_REASON.into() } else { reason },
            check_type: "maintenance".into(),
            ..Check::new(&node, &check_id, &service.id, HealthStatus::Critical)
        };
        let reg = Registration {
            node: st.agent_node(),
            skip_node_update: false,
            service: None,
            checks: vec![check],
        };
        st.local.register(reg, Source::Api).await?;
        tracing::info!(service = %service.id, "service entered maintenance mode");
    } else if !enable && exists {
        st.local.deregister_check(&check_id).await?;
        tracing::info!(service = %service.id, "service left maintenance mode");
    }
    Ok(().into_response())
}
