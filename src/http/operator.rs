//! `/v1/operator/raft/configuration`: the servers in the Raft configuration;
//! `DELETE /v1/operator/raft/peer?id=|address=`: removes one of them. `routes` also mounts
//! autopilot (`http::autopilot`), coordinates (`http::coordinate`) and user events
//! (`http::event`).
//!
//! Input: `Consensus::servers` and the catalog (node names and IDs of the servers, matched by
//! their `consul` service's address and port) → output: Consul's JSON shape. Invariant: the
//! configuration needs no leader; a server whose node is not registered yet shows its Raft id
//! and an empty name, and may be named by that id (or by its node ID) to remove it.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::wire::{RaftConfigurationJson, RaftServerJson};
use super::{ApiState, autopilot, coordinate, event, json};
use crate::catalog::{CatalogState, Node};

/// The operator's Raft peer removal and autopilot, coordinates and user events.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/operator/raft/peer", delete(remove_peer))
        .route(
            "/v1/operator/autopilot/configuration",
            get(autopilot::get_configuration).put(autopilot::set_configuration),
        )
        .route("/v1/operator/autopilot/health", get(autopilot::health))
        .route("/v1/coordinate/datacenters", get(coordinate::datacenters))
        .route("/v1/coordinate/nodes", get(coordinate::nodes))
        .route("/v1/coordinate/node/{node}", get(coordinate::node))
        .route("/v1/coordinate/update", put(coordinate::update))
        .route("/v1/event/fire/", put(event::fire_unnamed))
        .route("/v1/event/fire/{*name}", put(event::fire))
        .route("/v1/event/list", get(event::list))
}

/// The catalog node of the server whose Raft RPC address is `addr` (its `consul` service's
/// address and port), if registered.
pub(super) fn server_node<'a>(cat: &'a CatalogState, addr: &str) -> Option<&'a std::sync::Arc<Node>> {
    cat.services()
        .find(|svc| {
            svc.name == "consul"
                && cat.node(&svc.node).is_some_and(|n| format!("{}:{}", n.address, svc.port) == addr)
        })
        .and_then(|svc| cat.node(&svc.node))
}

pub(super) async fn raft_configuration(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.operator_read())?;
    let q = Query::parse(q.as_deref());
    let snap = st.snapshots.load_full();
    let servers = st
        .consensus
        .servers()
        .into_iter()
        .map(|s| {
            let node = server_node(&snap.catalog, &s.addr);
            RaftServerJson {
                id: node.map_or_else(|| s.id.to_string(), |n| n.id.clone()),
                node: node.map(|n| n.name.clone()).unwrap_or_default(),
                address: s.addr,
                leader: s.leader,
                protocol_version: "3".into(),
                voter: s.voter,
            }
        })
        .collect();
    Ok(json(&RaftConfigurationJson { servers, index: st.consensus.membership_index() }, q.has("pretty")))
}

/// `DELETE /v1/operator/raft/peer?id=ID|address=IP:PORT`: removes that server from the Raft
/// configuration through the leader (`Consensus::remove_server`, the `force-leave` path).
/// `id` is the server's node ID (as `raft/configuration` shows it) or its Raft id.
pub(super) async fn remove_peer(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.operator_write())?;
    let q = Query::parse(q.as_deref());
    let snap = st.snapshots.load_full();
    let servers = st.consensus.servers();
    let raft_id = match (q.get("id").filter(|v| !v.is_empty()), q.get("address").filter(|v| !v.is_empty())) {
        (Some(id), _) => servers
            .iter()
            .find(|s| {
                s.id.to_string() == id
                    || server_node(&snap.catalog, &s.addr).is_some_and(|n| n.id.eq_ignore_ascii_case(id))
            })
            .map(|s| s.id)
            .ok_or_else(|| {
                ApiError::Internal(format!("id {id:?} was not found in the Raft configuration"))
            })?,
        (None, Some(addr)) => servers.iter().find(|s| s.addr == addr).map(|s| s.id).ok_or_else(|| {
            ApiError::Internal(format!("address {addr:?} was not found in the Raft configuration"))
        })?,
        (None, None) => {
            return Err(ApiError::BadRequest(
                "Bad request: Must specify either ?id with the server's ID or ?address with IP:port of peer to remove"
                    .into(),
            ));
        }
    };
    st.consensus.remove_server(raft_id).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(().into_response())
}
