//! `/v1/operator/raft/configuration`: the servers in the Raft configuration.
//!
//! Input: `Consensus::servers` and the catalog (node names and IDs of the servers, matched by
//! their `consul` service's address and port) → output: Consul's JSON shape. Invariant: needs
//! no leader; a server whose node is not registered yet shows its Raft id and an empty name.

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::wire::{RaftConfigurationJson, RaftServerJson};
use super::{ApiState, json};

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
            let node = snap
                .catalog
                .services()
                .find(|svc| {
                    svc.name == "consul"
                        && snap
                            .catalog
                            .node(&svc.node)
                            .is_some_and(|n| format!("{}:{}", n.address, svc.port) == s.addr)
                })
                .and_then(|svc| snap.catalog.node(&svc.node));
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
