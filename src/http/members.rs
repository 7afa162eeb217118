//! Gossip endpoints: `GET /v1/agent/members`, `PUT /v1/agent/join/{addr}`, `PUT /v1/agent/leave`,
//! `PUT /v1/agent/force-leave/{node}`.
//!
//! Input: the agent's `Membership` → output: Consul's member JSON. Joining and leaving are
//! gossip operations; force-leave deregisters a failed node through Raft (never a direct write).

use std::net::SocketAddr;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::wire::MemberJson;
use super::{ApiState, json};
use crate::catalog::{Command, Deregistration};
use crate::gossip::{MemberStatus, Membership};

/// Default LAN gossip port when a join address has none.
const SERF_LAN_PORT: u16 = 8301;

pub(super) async fn members(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(q.as_deref());
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

fn parse_addr(s: &str) -> Result<SocketAddr, ApiError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, SERF_LAN_PORT))
        .map_err(|_| ApiError::BadRequest(format!("invalid join address {s:?}: expected ip or ip:port")))
}

pub(super) async fn join(
    State(st): State<ApiState>,
    acl: Acl,
    Path(addr): Path<String>,
) -> Result<Response, ApiError> {
    require(acl.agent_write(&st.config.node_name))?;
    let gossip = st.gossip.as_ref().ok_or_else(|| ApiError::Internal("gossip is not running".into()))?;
    let addr = parse_addr(&addr)?;
    gossip.join(&[addr]).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(().into_response())
}

pub(super) async fn leave(State(st): State<ApiState>, acl: Acl) -> Result<Response, ApiError> {
    require(acl.agent_write(&st.config.node_name))?;
    let gossip = st.gossip.as_ref().ok_or_else(|| ApiError::Internal("gossip is not running".into()))?;
    // A server first leaves the Raft configuration (a leader removes itself and steps down).
    st.consensus.leave_cluster().await?;
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
