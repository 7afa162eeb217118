//! `cairn members`, `cairn join ADDR`, `cairn leave`: the LAN gossip pool as the agent sees it
//! (`/v1/agent/members`, `/v1/agent/join/{addr}`, `/v1/agent/leave`), printed as Consul does.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::api::{Api, ApiError};
use super::table;

/// One member as the agent reports it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Member {
    name: String,
    addr: String,
    port: u16,
    tags: BTreeMap<String, String>,
    status: u8,
    protocol_cur: u8,
}

fn status(code: u8) -> &'static str {
    match code {
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "none",
    }
}

/// `cairn members [-wan]`: Node, Address, Status, Type, Build, Protocol, DC. With `wan` the
/// servers of every datacenter (`<node>.<dc>`); a client agent has no WAN pool and lists
/// nothing, which Consul reports with exit code 2 and no output.
pub async fn members(api: &Api, wan: bool) -> Result<Option<String>, ApiError> {
    let path = if wan { "/v1/agent/members?wan=1" } else { "/v1/agent/members" };
    let list: Option<Vec<Member>> = api.get(path).await?.json()?;
    let mut list = list.unwrap_or_default();
    if list.is_empty() {
        return Ok(None);
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let header = ["Node", "Address", "Status", "Type", "Build", "Protocol", "DC"].map(str::to_owned);
    let mut rows = vec![header];
    for m in list {
        let kind = if m.tags.get("role").is_some_and(|r| r == "consul") { "server" } else { "client" };
        let tag = |k: &str| m.tags.get(k).cloned().unwrap_or_default();
        rows.push([
            m.name.clone(),
            format!("{}:{}", m.addr, m.port),
            status(m.status).to_owned(),
            kind.to_owned(),
            // Consul's CLI shows the version part of `version:revision`.
            tag("build").split(':').next().unwrap_or_default().to_owned(),
            m.protocol_cur.to_string(),
            tag("dc"),
        ]);
    }
    Ok(Some(table(&rows)))
}

/// `cairn join [-wan] ADDR`: asks the agent to join the pool through `addr` (`ip[:port]`, port
/// 8301, or 8302 for the WAN pool).
pub async fn join(api: &Api, addr: &str, wan: bool) -> Result<String, ApiError> {
    let query = if wan { "?wan=1" } else { "" };
    api.put(&format!("/v1/agent/join/{addr}{query}"), Vec::new()).await?;
    Ok("Successfully joined cluster by contacting 1 nodes.\n".to_owned())
}

/// `cairn leave`: the agent leaves the pool gracefully and stops.
pub async fn leave(api: &Api) -> Result<String, ApiError> {
    api.put("/v1/agent/leave", Vec::new()).await?;
    Ok("Graceful leave complete\n".to_owned())
}

/// `cairn force-leave [-prune] NODE`: marks a failed member as left
/// (`PUT /v1/agent/force-leave/:node`, `?prune=1` with `-prune`); prints nothing on success.
pub async fn force_leave(api: &Api, nodes: &[String], prune: bool) -> Result<String, super::ConsulMessage> {
    let [node] = nodes else {
        return Err(super::ConsulMessage("A single node name must be specified to force leave.".into()));
    };
    let path = format!("/v1/agent/force-leave/{}", super::event::segment(node));
    let path = if prune { format!("{path}?prune=1") } else { path };
    api.put(&path, Vec::new())
        .await
        .map_err(|e| super::ConsulMessage(format!("Error force leaving: {e}")))?;
    Ok(String::new())
}
