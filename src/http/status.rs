//! `/v1/status/leader` and `/v1/status/peers`: Raft's view of the cluster.
//!
//! Input: `Consensus` → output: the leader's Raft address as a JSON string (`""` when none)
//! and the voters' addresses as a JSON array. Invariant: neither needs a leader.

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::query::Query;
use super::{ApiState, json};

pub(super) async fn leader(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let q = Query::parse(q.as_deref());
    json(&st.consensus.leader_addr().unwrap_or_default(), q.has("pretty"))
}

pub(super) async fn peers(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let q = Query::parse(q.as_deref());
    json(&st.consensus.peer_addrs(), q.has("pretty"))
}
