//! HTTP API FRONT DOOR: Consul-compatible `/v1/agent`, `/v1/catalog`, `/v1/health`, `/v1/query`,
//! `/v1/kv`, `/v1/session`, `/v1/txn`, `/v1/status`.
//!
//! READ   GET  → parse query (`query`, `blocking`) → wait for a snapshot whose endpoint index
//!             exceeds `?index` → map to Consul JSON (`wire` for shared shapes, an endpoint's
//!             own shapes beside its handler) → headers (`X-Consul-Index`, …).
//! WRITE  PUT  → decode body (case-insensitive, unknown field → 400) → validate →
//!             `Consensus::propose(Command)` → 200 (empty body, or `true` for catalog writes).
//! Invariants: reads never lock the catalog (they load an immutable snapshot); every read
//! reply carries `X-Consul-Index` ≥ 1, `X-Consul-KnownLeader`, `X-Consul-LastContact` and
//! `X-Consul-Effective-Consistency`; bodies over 512 KiB are refused with 413; errors are
//! `text/plain` (`error::ApiError`).
//! ACLs: every handler but `/v1/status/*` and `/v1/catalog/datacenters` takes `token::Acl`
//! (the presented token resolved through `ApiState::acl`) and checks it before acting: writes
//! and single-object reads answer 403, lists are filtered after any blocking wait (`enforce`).
//!
//! Around every route (`layers`): Consul's metric names (`telemetry`), the `?cached` agent
//! cache (`cache`), the datacenter gate and gzip when the client accepts it.
//!
//! Served over plain HTTP by `axum::serve` (`app`) and over TLS by `serve_tls` (HTTPS, with
//! HTTP/2 through ALPN): the same router on both.

mod acl;
mod acl_fields;
mod acl_legacy;
mod acl_policy;
mod acl_time;
mod acl_token;
mod agent;
mod agent_hash;
mod agent_health;
mod agent_host;
mod agent_self;
mod autopilot;
mod blocking;
mod cache;
mod catalog;
mod config_entry;
mod config_entry_kind;
mod connect;
mod coordinate;
mod datacenter;
mod debug;
mod enforce;
mod error;
mod event;
mod filter;
mod gateway;
mod health;
mod keyring;
mod kv;
mod members;
mod metrics;
mod monitor;
mod operator;
mod prepared_query;
mod query;
mod serve_tls;
mod session;
mod snapshot;
mod status;
mod telemetry;
mod token;
mod txn;
pub(crate) mod wire;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_acl;

use std::sync::Arc;
use tower_http::compression::Predicate as _;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Serialize;

pub(crate) use error::ApiError;
pub(crate) use serve_tls::serve_https;

use self::blocking::{Consistency, ReadOptions};
use self::query::Query;
use crate::catalog::Command;
use crate::catalog::Node;
use crate::consensus::Consensus;
use crate::snapshot::SnapshotHandle;

/// Largest accepted request body (Consul's 512 KiB limit for these endpoints).
pub(crate) const MAX_BODY_BYTES: usize = 512 * 1024;

/// Everything the handlers need.
#[derive(Clone)]
pub(crate) struct ApiState {
    /// Agent configuration.
    pub config: Arc<crate::config::Config>,
    /// Published catalog snapshots.
    pub snapshots: Arc<SnapshotHandle>,
    /// Proposals and the cluster's view (a Raft server or a client agent's forwarder).
    pub consensus: Consensus,
    /// A client agent's replica stream (its lag and counters are reported); `None` on a server.
    pub replica: Option<Arc<crate::replica::Client>>,
    /// This agent's own services and checks (agent endpoints write through it).
    pub local: Arc<crate::local::LocalState>,
    /// TTL timers of this agent's checks.
    pub ttl: Arc<crate::health::TtlChecks>,
    /// Runners of this agent's probed and alias checks.
    pub checks: Arc<crate::health::CheckRunner>,
    /// The leader's session TTL timers.
    pub sessions: Arc<crate::session::SessionTimers>,
    /// The LAN gossip pool (`None` when gossip is not running, e.g. unit tests).
    pub gossip: Option<Arc<crate::gossip::Lan>>,
    /// A server's WAN gossip pool (`None` on a client agent, or with `ports.serf_wan = -1`).
    pub wan: Option<Arc<crate::gossip::Wan>>,
    /// Stops the agent (`PUT /v1/agent/leave`).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Signalled by `PUT /v1/agent/reload`; the agent reloads as on SIGHUP.
    pub reload: Arc<tokio::sync::Notify>,
    /// Resolves the token a request presents to what it may do (`acl::Disabled` with ACLs off).
    pub acl: Arc<dyn crate::acl::Resolve>,
    /// `acl.enable_key_list_policy`: recursive KV reads need `key:list` on the prefix (403
    /// without it) instead of only filtering per entry.
    pub enable_key_list_policy: bool,
    /// When this agent first saw each server in its current autopilot health.
    pub stability: Arc<autopilot::Stability>,
}

/// The Consul-compatible HTTP API.
pub(crate) fn router(state: ApiState) -> Router {
    let routes = Router::new()
        // agent
        .route("/v1/agent/self", get(agent_self::self_info))
        .route("/v1/agent/host", get(agent_host::host))
        .route("/v1/agent/monitor", get(monitor::monitor))
        .route("/v1/agent/reload", put(agent::reload))
        .route("/v1/agent/metrics", get(metrics::metrics))
        .route(
            "/v1/snapshot",
            get(snapshot::save)
                .put(snapshot::restore)
                .layer(DefaultBodyLimit::max(snapshot::MAX_SNAPSHOT_BYTES)),
        )
        .route("/v1/agent/services", get(agent::services))
        .route("/v1/agent/maintenance", put(agent_health::node_maintenance))
        .route("/v1/agent/service/maintenance/{*id}", put(agent_health::service_maintenance))
        .route("/v1/agent/health/service/id/{*id}", get(agent_health::service_health_by_id))
        .route("/v1/agent/health/service/name/{*name}", get(agent_health::service_health_by_name))
        .route("/v1/agent/service/register", put(agent::register_service))
        .route("/v1/agent/service/deregister/{*id}", put(agent::deregister_service))
        .route("/v1/agent/service/{*id}", get(agent::service))
        .route("/v1/agent/checks", get(agent::checks))
        .route("/v1/agent/check/register", put(agent::register_check))
        .route("/v1/agent/check/deregister/{*id}", put(agent::deregister_check))
        .route("/v1/agent/check/pass/{*id}", put(agent::check_pass))
        .route("/v1/agent/check/warn/{*id}", put(agent::check_warn))
        .route("/v1/agent/check/fail/{*id}", put(agent::check_fail))
        .route("/v1/agent/check/update/{*id}", put(agent::check_update))
        .route("/v1/agent/members", get(members::members))
        .route("/v1/agent/join/{addr}", put(members::join))
        .route("/v1/agent/leave", put(members::leave))
        .route("/v1/agent/force-leave/{node}", put(members::force_leave))
        // catalog
        .route("/v1/catalog/register", put(catalog::register))
        .route("/v1/catalog/deregister", put(catalog::deregister))
        .route("/v1/catalog/datacenters", get(catalog::datacenters))
        .route("/v1/catalog/nodes", get(catalog::nodes))
        .route("/v1/catalog/services", get(catalog::services))
        .route("/v1/catalog/service/{*name}", get(catalog::service))
        .route("/v1/catalog/node/{node}", get(catalog::node))
        .route("/v1/catalog/node-services/", get(catalog::missing_node))
        .route("/v1/catalog/node-services/{*node}", get(catalog::node_service_list))
        // health
        .route("/v1/health/service/{*name}", get(health::service))
        .route("/v1/health/checks/{*name}", get(health::checks))
        .route("/v1/health/node/{node}", get(health::node))
        .route("/v1/health/state/{state}", get(health::state))
        // prepared queries
        .route("/v1/query", get(prepared_query::list).post(prepared_query::create))
        .route(
            "/v1/query/{id}",
            get(prepared_query::get).put(prepared_query::update).delete(prepared_query::delete),
        )
        .route("/v1/query/{id}/execute", get(prepared_query::execute))
        // kv, sessions, transactions
        .route("/v1/kv/", get(kv::get_root).put(kv::put_root).delete(kv::delete_root))
        .route("/v1/kv/{*key}", get(kv::get).put(kv::put).delete(kv::delete))
        .route("/v1/session/create", put(session::create))
        .route("/v1/session/destroy/{id}", put(session::destroy))
        .route("/v1/session/renew/{id}", put(session::renew))
        .route("/v1/session/info/{id}", get(session::info))
        .route("/v1/session/node/{node}", get(session::node))
        .route("/v1/session/list", get(session::list))
        .route("/v1/txn", put(txn::txn))
        // status
        .route("/v1/status/leader", get(status::leader))
        .route("/v1/status/peers", get(status::peers))
        // operator
        .route("/v1/operator/raft/configuration", get(operator::raft_configuration))
        .route(
            "/v1/operator/keyring",
            get(keyring::list).post(keyring::install).put(keyring::use_key).delete(keyring::remove),
        )
        .merge(acl::routes())
        .merge(operator::routes())
        .merge(connect::routes())
        .merge(config_entry::routes());
    layers(routes.merge(debug::routes(&state)), &state).with_state(state)
}

/// The layers around every route, innermost first: Consul's metric names, the body limit, the
/// `?cached` agent cache, the datacenter gate and, outermost on the finished answer, gzip
/// (Consul's gziphandler, live on 1.8.7: every non-empty answer, errors included, when the
/// client accepts it).
fn layers(routes: Router<ApiState>, state: &ApiState) -> Router<ApiState> {
    routes
        .layer(axum::middleware::from_fn_with_state(state.clone(), telemetry::observe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state((state.clone(), Arc::default()), cache::serve))
        .layer(axum::middleware::from_fn_with_state(state.clone(), datacenter::gate))
        .layer(
            tower_http::compression::CompressionLayer::new().compress_when(
                tower_http::compression::predicate::SizeAbove::new(1)
                    .and(not_streamed as fn(_, _, &_, &_) -> bool),
            ),
        )
}

/// Whether gzip may buffer this answer: not a stream of lines a client reads as they come
/// (`/v1/agent/monitor`), which a compressor would hold back until its buffer fills.
fn not_streamed(
    _: axum::http::StatusCode,
    _: axum::http::Version,
    _: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> bool {
    extensions.get::<monitor::Streamed>().is_none()
}

/// A wildcard path capture without its leading slash.
pub(crate) fn rest(p: &str) -> &str {
    p.strip_prefix('/').unwrap_or(p)
}

/// A JSON body, indented for `?pretty`.
pub(crate) fn json<T: Serialize>(value: &T, pretty: bool) -> Response {
    let body = if pretty { serde_json::to_vec_pretty(value) } else { serde_json::to_vec(value) };
    match body {
        Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => ApiError::Internal(format!("failed to encode response: {e}")).into_response(),
    }
}

/// Parses a request body as JSON (`Request decode failed: EOF` when empty).
pub(crate) fn parse_body(body: &Bytes) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Decode("EOF".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::Decode(e.to_string()))
}

impl ApiState {
    /// Read options for catalog and health reads; default and consistent reads need a leader.
    pub(crate) fn read_options(&self, q: &Query) -> Result<ReadOptions, ApiError> {
        let opts = blocking::parse_read_options(q)?;
        if opts.consistency != Consistency::Stale && !self.consensus.known_leader() {
            return Err(ApiError::NoLeader);
        }
        Ok(opts)
    }

    /// A read reply with Consul's metadata headers.
    pub(crate) fn reply<T: Serialize>(
        &self,
        value: &T,
        index: u64,
        opts: &ReadOptions,
        q: &Query,
    ) -> Response {
        let mut resp = json(value, q.has("pretty"));
        self.set_read_headers(&mut resp, index, opts);
        resp
    }

    /// Sets Consul's read metadata headers on `resp`.
    pub(crate) fn set_read_headers(&self, resp: &mut Response, index: u64, opts: &ReadOptions) {
        let h = resp.headers_mut();
        h.insert("X-Consul-Index", HeaderValue::from(index.max(1)));
        h.insert(
            "X-Consul-KnownLeader",
            HeaderValue::from_static(if self.consensus.known_leader() { "true" } else { "false" }),
        );
        h.insert("X-Consul-LastContact", HeaderValue::from(self.consensus.last_contact_ms()));
        // On a client agent: how many Raft indexes its replica is behind its server.
        if let Some(client) = &self.replica {
            h.insert("X-Cairn-Replica-Lag", HeaderValue::from(client.lag_index()));
        }
        h.insert("X-Consul-Effective-Consistency", HeaderValue::from_static(opts.consistency.as_str()));
    }

    /// A whole read: parses the consistency and blocking options, waits until the index
    /// `index_of` reports passes `?index` (or the wait ends), and replies with `body` of that
    /// snapshot's catalog and Consul's headers.
    pub(crate) async fn read<T, I, B>(&self, q: &Query, index_of: I, body: B) -> Result<Response, ApiError>
    where
        T: Serialize,
        I: Fn(&crate::snapshot::CatalogSnapshot) -> u64,
        B: FnOnce(&crate::catalog::CatalogState) -> T,
    {
        self.try_read(q, index_of, |cat| Ok(body(cat))).await
    }

    /// `read` with a body that can fail (a `?filter=` that cannot evaluate an item).
    pub(crate) async fn try_read<T, I, B>(
        &self,
        q: &Query,
        index_of: I,
        body: B,
    ) -> Result<Response, ApiError>
    where
        T: Serialize,
        I: Fn(&crate::snapshot::CatalogSnapshot) -> u64,
        B: FnOnce(&crate::catalog::CatalogState) -> Result<T, ApiError>,
    {
        let opts = self.read_options(q)?;
        if opts.consistency == Consistency::Consistent {
            self.consensus.read_barrier().await?;
        }
        let snap = self.snapshot(&opts, &index_of).await;
        let value = body(&snap.catalog)?;
        Ok(self.reply(&value, index_of(&snap), &opts, q))
    }

    /// Waits per `opts` and returns the snapshot to answer from.
    pub(crate) async fn snapshot<F>(
        &self,
        opts: &ReadOptions,
        index_of: F,
    ) -> Arc<crate::snapshot::CatalogSnapshot>
    where
        F: Fn(&crate::snapshot::CatalogSnapshot) -> u64,
    {
        let wait = blocking::with_jitter(opts.wait);
        blocking::wait_for(&self.snapshots, opts.min_index, wait, index_of).await
    }

    /// This agent's node: identity and `node_meta` from the config, tagged addresses and meta
    /// kept from the catalog when the node is already registered.
    pub(crate) fn agent_node(&self) -> Node {
        let c = &self.config;
        let mut node = crate::agent::agent_node(&c.node_id, &c.node_name, &c.datacenter, c.bind_addr);
        node.meta.extend(c.node_meta.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(n) = self.snapshots.load().catalog.node(&self.config.node_name) {
            node.tagged_addresses.clone_from(&n.tagged_addresses);
            node.meta.clone_from(&n.meta);
        }
        node
    }

    /// Validates and proposes a command on `who`'s authority (the caller's token, which a
    /// server the write is forwarded to checks again); an invalid one gets its class's status,
    /// `Rejected` a 500, both with Consul's text.
    pub(crate) async fn propose(
        &self,
        who: crate::consensus::Authority<'_>,
        cmd: Command,
    ) -> Result<(), ApiError> {
        cmd.validate()?;
        Ok(self.consensus.propose_as(who, cmd).await?)
    }
}
