//! AGENT CACHE: `?cached` reads (Consul's agent cache, `X-Cache` and `Age`).
//!
//! Input: every request, before its handler. Output: for a `GET ?cached` on an endpoint Consul
//! 1.8.7 serves from its agent cache, the handler's answer stored per request, or a stored
//! answer replayed; `X-Cache: HIT` and `Age: 0` on an answer the cache held current,
//! `X-Cache: MISS` on a new one. Every other request passes through untouched.
//!
//! Endpoints (checked live on 1.8.7, which answers `X-Cache` on exactly these):
//! `/v1/catalog/services`, `/v1/catalog/service/:s`, `/v1/catalog/datacenters`,
//! `/v1/catalog/connect/:s`, `/v1/health/service/:s`, `/v1/health/connect/:s`,
//! `/v1/health/ingress/:s` and `/v1/query/:id/execute`. `?cached&consistent` is Consul's 400.
//!
//! What HIT and MISS mean here: Consul's cache keeps each entry current with a background
//! blocking query, so its `HIT` answers hold the latest data and say `Age: 0`. cairn renders
//! every read from the latest published catalog snapshot, so an answer rendered at snapshot
//! index `i` is exactly what the handler would render again while the snapshot is still `i`.
//! An entry is therefore stored with the snapshot index read *before* the handler ran and
//! replayed only while the published index is still that one (so it is never older than what
//! a fresh read would show, and `Age: 0` is true); any write in between makes the next request
//! a render. That render is a HIT when it equals the stored answer (same body and
//! `X-Consul-Index`: the entry was still current, which Consul's background refresh reports
//! as a HIT too), else a MISS, and is stored at the new index. The key is the path, the query string without
//! `cached`, and the presented token (answers are filtered by ACLs). A blocking `?index=` read
//! waits in its handler as without `?cached` (a MISS). Only 200 answers are stored, at most
//! `MAX_ENTRIES` of them, each at most `MAX_BODY` bytes; the replayed answer's
//! `X-Consul-KnownLeader` and `X-Consul-LastContact` are set anew.
//!
//! Differences from Consul, by design: Consul keys `/v1/health/service/:s` without `?passing`
//! (it filters after the cache, so a first `?passing` read can be a HIT), cairn with it; and
//! Consul's non-refreshing `catalog/datacenters` entry reports its real age, cairn's is
//! re-rendered when the catalog changes, so it is always `Age: 0`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::query::Query;

/// Most answers kept at once.
const MAX_ENTRIES: usize = 512;

/// Largest answer body kept, in bytes.
const MAX_BODY: usize = 1 << 20;

/// Consul's 400 text for `?cached` with `?consistent`.
const CONFLICT: &str = "Cannot specify ?cached with ?consistent, conflicting semantics.";

/// One stored answer.
struct Entry {
    /// Snapshot index published when the handler started.
    index: u64,
    headers: HeaderMap,
    body: Bytes,
}

/// The agent's store of `?cached` answers.
#[derive(Default)]
pub(crate) struct AgentCache {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Whether Consul 1.8.7 serves `path` from its agent cache.
pub(crate) fn cacheable(path: &str) -> bool {
    const EXACT: &[&str] = &["/v1/catalog/services", "/v1/catalog/datacenters"];
    const UNDER: &[&str] = &[
        "/v1/catalog/service/",
        "/v1/catalog/connect/",
        "/v1/health/service/",
        "/v1/health/connect/",
        "/v1/health/ingress/",
    ];
    EXACT.contains(&path)
        || UNDER.iter().any(|p| path.len() > p.len() && path.starts_with(p))
        || path
            .strip_prefix("/v1/query/")
            .is_some_and(|r| r.ends_with("/execute") && r.len() > "/execute".len())
}

/// The cache key: path, query without `cached`, presented token.
fn key(req: &Request) -> String {
    let query: Vec<String> = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k != "cached")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    format!(
        "{}?{}\n{}\n{}",
        req.uri().path(),
        query.join("&"),
        header("x-consul-token"),
        header("authorization")
    )
}

impl AgentCache {
    /// The stored answer for `key` if it was rendered at `index`.
    fn replay(&self, key: &str, index: u64) -> Option<(HeaderMap, Bytes)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|e| e.index == index).map(|e| (e.headers.clone(), e.body.clone()))
    }

    /// Whether the stored answer for `key` equals a fresh one (body and `X-Consul-Index`).
    fn unchanged(&self, key: &str, headers: &HeaderMap, body: &Bytes) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).is_some_and(|e| {
            e.body == *body && e.headers.get("X-Consul-Index") == headers.get("X-Consul-Index")
        })
    }

    /// Stores an answer rendered at `index`, making room by dropping outdated entries first.
    fn store(&self, key: String, index: u64, headers: HeaderMap, body: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, e| e.index == index);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { index, headers, body });
    }
}

/// The middleware (state: the API state and the cache).
pub(crate) async fn serve(
    State((st, cache)): State<(ApiState, Arc<AgentCache>)>,
    req: Request,
    next: Next,
) -> Response {
    let q = Query::parse(req.uri().query());
    if req.method() != Method::GET || !q.has("cached") || !cacheable(req.uri().path()) {
        return next.run(req).await;
    }
    if q.has("consistent") {
        return (StatusCode::BAD_REQUEST, CONFLICT).into_response();
    }
    let key = key(&req);
    let index = st.snapshots.load().index;
    if !q.has("index")
        && let Some((mut headers, body)) = cache.replay(&key, index)
    {
        headers
            .insert("X-Consul-KnownLeader", HeaderValue::from_static(bool_text(st.consensus.known_leader())));
        headers.insert("X-Consul-LastContact", HeaderValue::from(st.consensus.last_contact_ms()));
        headers.insert("Age", HeaderValue::from_static("0"));
        headers.insert("X-Cache", HeaderValue::from_static("HIT"));
        let mut resp = Response::new(Body::from(body));
        *resp.headers_mut() = headers;
        return resp;
    }
    let resp = next.run(req).await;
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response too large to cache").into_response();
    };
    // An entry from an older snapshot whose answer is still the same (same body, same
    // X-Consul-Index) was current: what Consul's background refresh reports as a HIT.
    let still = cache.unchanged(&key, &parts.headers, &bytes);
    cache.store(key, index, parts.headers.clone(), bytes.clone());
    if still {
        parts.headers.insert("Age", HeaderValue::from_static("0"));
    }
    parts.headers.insert("X-Cache", HeaderValue::from_static(if still { "HIT" } else { "MISS" }));
    Response::from_parts(parts, Body::from(bytes))
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cacheable_paths_are_consuls() {
        for p in [
            "/v1/catalog/services",
            "/v1/catalog/service/web",
            "/v1/catalog/datacenters",
            "/v1/health/service/web",
            "/v1/health/connect/web",
            "/v1/health/ingress/web",
            "/v1/catalog/connect/web",
            "/v1/query/abc/execute",
        ] {
            assert!(cacheable(p), "{p}");
        }
        for p in [
            "/v1/catalog/nodes",
            "/v1/health/node/n",
            "/v1/kv/a",
            "/v1/query/abc",
            "/v1/query//execute",
            "/v1/agent/services",
        ] {
            assert!(!cacheable(p), "{p}");
        }
    }

    #[test]
    fn entries_replay_only_at_their_index() {
        let c = AgentCache::default();
        c.store("k".into(), 5, HeaderMap::new(), Bytes::from_static(b"x"));
        assert!(c.replay("k", 5).is_some());
        assert!(c.replay("k", 6).is_none());
        assert!(c.replay("other", 5).is_none());
    }
}
