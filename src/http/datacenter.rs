//! DATACENTER GATE: `?dc=` naming another datacenter is Consul's 500 `No path to datacenter`.
//!
//! Input: every request, before its handler. Output: the request passed on unchanged, or the
//! 500 when its `?dc=` names a datacenter other than this agent's on an endpoint Consul 1.8.7
//! forwards by `?dc=`.
//!
//! cairn has one datacenter and no WAN federation yet, so a request for another datacenter has
//! nowhere to go; answering it from the local datacenter (what happened before) returned the
//! wrong datacenter's data and landed a KV write meant for `dc2` in `dc1`. Consul answers such a
//! request with 500 `No path to datacenter` (checked live on 1.8.7, spec §5 W3); so does this
//! gate, until the multi-datacenter issue forwards them. The name is compared as given (Consul:
//! `?dc=DC1` on `dc1` is the same 500); an empty `?dc=` is the local datacenter.
//!
//! Endpoints that ignore `?dc=` in Consul 1.8.7 (checked live) pass through: `/v1/agent/*`
//! (local to the agent), `/v1/catalog/datacenters`, `/v1/catalog/register` and `deregister`
//! (their body's `Datacenter` decides), `/v1/event/*`, `/v1/operator/keyring`, and the ACL
//! endpoints (answered by the primary, which is this datacenter).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::query::Query;

/// Consul's error text for a datacenter it has no route to.
pub(crate) const NO_PATH: &str = "No path to datacenter";

/// Paths whose `?dc=` Consul 1.8.7 forwards (prefixes).
const FORWARDED: &[&str] = &[
    "/v1/catalog/",
    "/v1/health/",
    "/v1/kv/",
    "/v1/session/",
    "/v1/query",
    "/v1/txn",
    "/v1/status/",
    "/v1/operator/raft/",
    "/v1/operator/autopilot/",
    "/v1/snapshot",
    "/v1/coordinate/",
];

/// Paths under `FORWARDED` that ignore `?dc=`.
const LOCAL: &[&str] = &["/v1/catalog/datacenters", "/v1/catalog/register", "/v1/catalog/deregister"];

/// Whether `path` with `?dc=` `dc` must be refused by an agent of datacenter `local`.
pub(crate) fn refused(path: &str, dc: Option<&str>, local: &str) -> bool {
    let Some(dc) = dc.filter(|d| !d.is_empty()) else { return false };
    dc != local && FORWARDED.iter().any(|p| path.starts_with(p)) && !LOCAL.contains(&path)
}

/// The middleware: the 500 for another datacenter, else the handler's answer.
pub(crate) async fn gate(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let q = Query::parse(req.uri().query());
    if refused(req.uri().path(), q.get("dc"), &st.config.datacenter) {
        return (StatusCode::INTERNAL_SERVER_ERROR, NO_PATH).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_forwarded_endpoints_naming_another_datacenter_are_refused() {
        for path in ["/v1/catalog/services", "/v1/kv/a/b", "/v1/status/leader", "/v1/txn", "/v1/snapshot"] {
            assert!(refused(path, Some("dc2"), "dc1"), "{path}");
            assert!(refused(path, Some("DC1"), "dc1"), "{path}: names are compared as given");
            assert!(!refused(path, Some("dc1"), "dc1"), "{path}");
            assert!(!refused(path, Some(""), "dc1"), "{path}");
            assert!(!refused(path, None, "dc1"), "{path}");
        }
        for path in ["/v1/agent/self", "/v1/catalog/datacenters", "/v1/catalog/register", "/v1/event/list"] {
            assert!(!refused(path, Some("dc2"), "dc1"), "{path}");
        }
    }
}
