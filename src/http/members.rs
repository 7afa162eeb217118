//! Gossip endpoints: `GET /v1/agent/members`, `PUT /v1/agent/join/{addr}`, `PUT /v1/agent/leave`,
//! `PUT /v1/agent/force-leave/{node}`.
//!
//! Input: the agent's `Membership` → output: Consul's member JSON. Joining and leaving are
//! gossip operations; force-leave deregisters a failed node through Raft (never a direct write).
//!
//! `?wan` (any non-empty value, even `0`: Consul's quirk) selects a server's WAN pool: its
//! members are `<node>.<dc>`; a client (or a server with `ports.serf_wan = -1`) lists `null`,
//! and a WAN join there is Consul's 500 (`Must be a server to join WAN cluster`, `WAN
//! Federation is disabled`). A failed join is Consul's multi-error text
//! (`Failed to join <ip>: <why>`).

use std::net::SocketAddr;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::wire::MemberJson;
use super::{ApiState, json};
use crate::catalog::{Command, Deregistration};
use crate::gossip::{GossipError, MemberStatus, Membership};

/// Default LAN gossip port when a join address has none.
const SERF_LAN_PORT: u16 = 8301;
/// Default WAN gossip port when a join address has none.
const SERF_WAN_PORT: u16 = 8302;

/// Whether `?wan` asks for the WAN pool: any non-empty value (Consul's test).
fn wants_wan(q: &Query) -> bool {
    q.get("wan").is_some_and(|v| !v.is_empty())
}

pub(super) async fn members(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
    if wants_wan(&q) {
        // The Go client always sends `segment`, empty unless one is asked for.
        if q.get("segment").is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::BadRequest("Cannot provide a segment with wan=true".into()));
        }
        let Some(wan) = st.wan.as_ref() else { return Ok(json(&(), q.has("pretty"))) };
        let list: Vec<MemberJson> = wan
            .members()
            .await
            .iter()
            .filter(|m| acl.node_read(&m.name))
            .map(MemberJson::from_wan_member)
            .collect();
        return Ok(json(&list, q.has("pretty")));
    }
    let gossip = st.gossip.as_ref().ok_or_else(|| ApiError::Internal("gossip is not running".into()))?;
    let list: Vec<MemberJson> = gossip
        .members()
        .await
        .iter()
        .filter(|m| acl.node_read(&m.name))
        .map(MemberJson::from_member)
        .collect();
    Ok(json(&list, q.has("pretty")))
}

fn parse_addr(s: &str, default_port: u16) -> Result<SocketAddr, ApiError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| ApiError::BadRequest(format!("invalid join address {s:?}: expected ip or ip:port")))
}

pub(super) async fn join(
    State(st): State<ApiState>,
    acl: Acl,
    Path(addr): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.agent_write(&st.config.node_name))?;
    let q = Query::parse(q.as_deref());
    let (pool, addr) = if wants_wan(&q) {
        if !st.config.server {
            return Err(ApiError::Internal("Must be a server to join WAN cluster".into()));
        }
        let wan = st.wan.as_ref().ok_or_else(|| ApiError::Internal("WAN Federation is disabled".into()))?;
        (wan, parse_addr(&addr, SERF_WAN_PORT)?)
    } else {
        let gossip = st.gossip.as_ref().ok_or_else(|| ApiError::Internal("gossip is not running".into()))?;
        (gossip, parse_addr(&addr, SERF_LAN_PORT)?)
    };
    pool.join(&[addr]).await.map_err(|e| match e {
        GossipError::Join { msg, .. } => {
            ApiError::Internal(format!("1 error occurred:\n\t* Failed to join {}: {msg}\n\n", addr.ip()))
        }
        other => ApiError::Internal(other.to_string()),
    })?;
    Ok(().into_response())
}

pub(super) async fn leave(State(st): State<ApiState>, acl: Acl) -> Result<Response, ApiError> {
    require(acl.agent_write(&st.config.node_name))?;
    let gossip = st.gossip.as_ref().ok_or_else(|| ApiError::Internal("gossip is not running".into()))?;
    // A server first leaves the Raft configuration (a leader removes itself and steps down).
    st.consensus.leave_cluster().await?;
    // As Consul's server: the WAN pool first, so other datacenters see `left`, not `failed`.
    if let Some(wan) = &st.wan {
        wan.leave().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    gossip.leave().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    // Like Consul, a graceful leave stops the agent.
    st.shutdown.cancel();
    Ok(().into_response())
}

pub(super) async fn force_leave(
    State(st): State<ApiState>,
    acl: Acl,
    Path(node): Path<String>,
) -> Result<Response, ApiError> {
    require(acl.operator_write())?;
    let gossip = st.gossip.as_ref().ok_or_else(|| ApiError::Internal("gossip is not running".into()))?;
    let members = gossip.members().await;
    let Some(m) = members.iter().find(|m| m.name == node) else {
        return Err(ApiError::NotFound(format!("agent: No node found with name '{node}'")));
    };
    if m.status != MemberStatus::Failed {
        return Ok(().into_response());
    }
    // A failed server also leaves the Raft configuration, so it no longer counts toward
    // quorum (Consul's manual way to drop a dead server).
    if let Some(meta) = m.meta.as_ref().filter(|meta| meta.role == crate::gossip::Role::Server) {
        st.consensus.remove_server(meta.raft_id).await.map_err(|e| match e {
            crate::rpc::Remote::NoLeader => ApiError::from(crate::consensus::ProposeError::NoLeader),
            other @ (crate::rpc::Remote::Failed(_)
            | crate::rpc::Remote::Invalid(_)
            | crate::rpc::Remote::Denied(_)) => {
                ApiError::Internal(format!("removing {node} from Raft: {other}"))
            }
        })?;
    }
    if st.snapshots.load().catalog.node(&node).is_some() {
        let cmd = Command::Deregister(Deregistration { node, service_id: None, check_id: None });
        // The agent's own write, once the caller proved `operator:write`.
        st.propose(crate::consensus::Authority::Agent, cmd).await?;
    }
    Ok(().into_response())
}
