//! Operator and membership shapes: `GET /v1/operator/raft/configuration` and
//! `GET /v1/agent/members`.
//!
//! Stage: HTTP reads of the Raft configuration and the gossip member list.
//! Input: Raft servers (joined with their catalog nodes) and `gossip::Member`s → output: serde
//! structs with Consul's exact PascalCase field names.
//! Invariants: a member's serf tags and protocol versions are Consul's fixed values (so
//! Consul's tools read them); status is Serf's number (1 alive, 3 left, 4 failed).

use std::collections::BTreeMap;

use serde::Serialize;

/// One server of `GET /v1/operator/raft/configuration`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RaftServerJson {
    /// The server's node ID (its Raft id when its node is not in the catalog yet).
    #[serde(rename = "ID")]
    pub id: String,
    /// Node name (empty when not in the catalog yet).
    pub node: String,
    /// Raft RPC address.
    pub address: String,
    /// Whether it leads.
    pub leader: bool,
    /// Raft protocol version (Consul speaks "3").
    pub protocol_version: String,
    /// Voter or non-voter (learner).
    pub voter: bool,
}

/// `GET /v1/operator/raft/configuration`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RaftConfigurationJson {
    /// The servers.
    pub servers: Vec<RaftServerJson>,
    /// Log index of the configuration.
    pub index: u64,
}

/// One member of `GET /v1/agent/members` (Serf's member with Consul's tags).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MemberJson {
    /// Node name.
    pub name: String,
    /// Gossip IP.
    pub addr: String,
    /// Gossip port.
    pub port: u16,
    /// Consul's serf tags (`role`, `dc`, `port`, `id` (the node ID), `build`, `vsn`, `raft_vsn`).
    pub tags: BTreeMap<String, String>,
    /// Serf status: 1 alive, 3 left, 4 failed.
    pub status: u8,
    /// Gossip protocol versions (Consul's fixed values).
    pub protocol_min: u8,
    /// See `protocol_min`.
    pub protocol_max: u8,
    /// See `protocol_min`.
    pub protocol_cur: u8,
    /// Delegate protocol versions (Consul's fixed values).
    pub delegate_min: u8,
    /// See `delegate_min`.
    pub delegate_max: u8,
    /// See `delegate_min`.
    pub delegate_cur: u8,
}

impl MemberJson {
    /// Consul's view of a WAN gossip member: the LAN view without `wan_join_port` (a LAN tag).
    pub(crate) fn from_wan_member(m: &crate::gossip::Member) -> Self {
        let mut this = Self::from_member(m);
        this.tags.remove("wan_join_port");
        this
    }

    /// Consul's view of a gossip member.
    pub(crate) fn from_member(m: &crate::gossip::Member) -> Self {
        let mut tags = BTreeMap::new();
        if let Some(meta) = &m.meta {
            let server = meta.role == crate::gossip::Role::Server;
            tags.insert("role".into(), if server { "consul" } else { "node" }.into());
            tags.insert("dc".into(), meta.dc.clone());
            tags.insert("build".into(), meta.version.clone());
            tags.insert("vsn".into(), "2".into());
            tags.insert("vsn_min".into(), "2".into());
            tags.insert("vsn_max".into(), "3".into());
            tags.insert("segment".into(), String::new());
            if !meta.node_id.is_empty() {
                tags.insert("id".into(), meta.node_id.clone());
            }
            if server {
                let port = meta.raft_addr.rsplit_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default();
                tags.insert("port".into(), port);
                tags.insert("raft_vsn".into(), "3".into());
                if meta.wan_join_port != 0 {
                    tags.insert("wan_join_port".into(), meta.wan_join_port.to_string());
                }
            }
        }
        let status = match m.status {
            crate::gossip::MemberStatus::Alive => 1,
            crate::gossip::MemberStatus::Left => 3,
            crate::gossip::MemberStatus::Failed => 4,
        };
        Self {
            name: m.name.clone(),
            addr: m.addr.ip().to_string(),
            port: m.addr.port(),
            tags,
            status,
            protocol_min: 1,
            protocol_max: 5,
            protocol_cur: 2,
            delegate_min: 2,
            delegate_max: 5,
            delegate_cur: 4,
        }
    }
}
