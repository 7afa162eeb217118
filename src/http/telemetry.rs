//! HTTP TELEMETRY: Consul's per-request metric names, counted around every handler.
//!
//! Input: a request and the answer its handler gave. Output: the answer unchanged; counted:
//! - `consul.http.<METHOD>.<path>`: the time to serve it, the path being the route with its
//!   first variable segment and everything after it as `_` (`consul.http.GET.v1.kv._`,
//!   `consul.http.GET.v1.query._` for `/v1/query/:id/execute`), as Consul 1.8 names its
//!   handler patterns;
//! - `consul.client.api.<endpoint>` for each catalog request, `consul.client.api.success.<…>`
//!   when it succeeds (2xx), `consul.client.rpc.error.<…>` when it fails on the server side
//!   (5xx), each labelled with this agent's `node`;
//! - `consul.catalog.service.query` / `consul.health.service.query` (label `service`),
//!   `…query-tags` (one per `?tag`, labels `service`, `tag`) and `…not-found` when the answer
//!   lists no instance (its body is `[]`).
//!
//! Routes that matched nothing (404s of unknown paths) are not timed, as in Consul.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::query::Query;
use crate::metrics::{count, measure};

/// Largest answer body read to tell an empty service list (`not-found`).
const MAX_LIST_BODY: usize = 64 << 20;

/// `consul.http.<METHOD>.<path>` of a route pattern (`/v1/kv/{*key}` → `v1.kv._`).
pub(crate) fn http_name(method: &Method, route: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in route.trim_start_matches('/').split('/') {
        if seg.is_empty() || seg.starts_with('{') {
            parts.push("_");
            break;
        }
        parts.push(seg);
    }
    format!("consul.http.{method}.{}", parts.join("."))
}

/// Consul's `client.api` endpoint name of a catalog request.
fn catalog_endpoint(method: &Method, route: &str) -> Option<&'static str> {
    Some(match (method.as_str(), route) {
        ("PUT", "/v1/catalog/register") => "catalog_register",
        ("PUT", "/v1/catalog/deregister") => "catalog_deregister",
        ("GET", "/v1/catalog/datacenters") => "catalog_datacenters",
        ("GET", "/v1/catalog/nodes") => "catalog_nodes",
        ("GET", "/v1/catalog/services") => "catalog_services",
        ("GET", "/v1/catalog/service/{*name}") => "catalog_service_nodes",
        ("GET", "/v1/catalog/node/{node}") => "catalog_node_services",
        _ => return None,
    })
}

/// The service query family (`catalog` or `health`) and service name of a request.
fn service_query(method: &Method, path: &str) -> Option<(&'static str, String)> {
    if method != Method::GET {
        return None;
    }
    let (family, name) = if let Some(n) = path.strip_prefix("/v1/catalog/service/") {
        ("catalog", n)
    } else {
        ("health", path.strip_prefix("/v1/health/service/")?)
    };
    Some((family, name.to_owned()))
}

/// The middleware (state: the API state, for the node name).
pub(crate) async fn observe(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    let node = || vec![("node", st.config.node_name.clone())];
    let endpoint = catalog_endpoint(&method, &route);
    if let Some(e) = endpoint {
        count(format!("consul.client.api.{e}"), node());
    }
    let query = service_query(&method, req.uri().path());
    let tags: Vec<String> =
        Query::parse(req.uri().query()).all("tag").into_iter().map(str::to_owned).collect();
    let started = Instant::now();
    let mut resp = next.run(req).await;
    measure(http_name(&method, &route), Vec::new(), started.elapsed());
    if let Some(e) = endpoint {
        if resp.status().is_success() {
            count(format!("consul.client.api.success.{e}"), node());
        } else if resp.status().is_server_error() {
            count(format!("consul.client.rpc.error.{e}"), node());
        }
    }
    if let Some((family, service)) = query
        && resp.status().is_success()
    {
        count(format!("consul.{family}.service.query"), vec![("service", service.clone())]);
        for tag in tags {
            count(
                format!("consul.{family}.service.query-tags"),
                vec![("service", service.clone()), ("tag", tag)],
            );
        }
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_LIST_BODY).await else {
            return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "answer too large").into_response();
        };
        if bytes.iter().filter(|b| !b.is_ascii_whitespace()).eq(b"[]".iter()) {
            count(format!("consul.{family}.service.not-found"), vec![("service", service)]);
        }
        resp = Response::from_parts(parts, Body::from(bytes));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_names_are_consuls() {
        assert_eq!(http_name(&Method::GET, "/v1/kv/{*key}"), "consul.http.GET.v1.kv._");
        assert_eq!(http_name(&Method::PUT, "/v1/kv/"), "consul.http.PUT.v1.kv._");
        assert_eq!(http_name(&Method::GET, "/v1/query/{id}/execute"), "consul.http.GET.v1.query._");
        assert_eq!(http_name(&Method::GET, "/v1/agent/metrics"), "consul.http.GET.v1.agent.metrics");
        assert_eq!(http_name(&Method::PUT, "/v1/catalog/register"), "consul.http.PUT.v1.catalog.register");
    }
}
