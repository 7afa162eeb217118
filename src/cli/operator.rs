//! `cairn operator raft list-peers`: the servers in the Raft configuration, as Consul prints
//! them (`GET /v1/operator/raft/configuration`).

use serde::Deserialize;

use super::api::{Api, ApiError};
use super::table;

/// One server as the agent reports it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Server {
    #[serde(rename = "ID")]
    id: String,
    node: String,
    address: String,
    leader: bool,
    protocol_version: String,
    voter: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Configuration {
    servers: Vec<Server>,
}

/// Fetches the Raft configuration and renders Consul's table.
pub async fn raft_list_peers(api: &Api) -> Result<String, ApiError> {
    let conf: Configuration = api.get("/v1/operator/raft/configuration").await?.json()?;
    let mut rows = vec![["Node", "ID", "Address", "State", "Voter", "RaftProtocol"].map(str::to_owned)];
    for s in conf.servers {
        let state = if s.leader { "leader" } else { "follower" };
        rows.push([s.node, s.id, s.address, state.to_owned(), s.voter.to_string(), s.protocol_version]);
    }
    Ok(table(&rows))
}
