//! Server discovery through gossip: the servers of this datacenter that the LAN pool knows
//! (their `NodeMeta::raft_addr`), plus the `retry_join` addresses that are not gossip
//! addresses of known members (a server's RPC address, cairn's earlier form), asked over the
//! server RPC.
//!
//! Input: the pool's alive members. Output: `ServerInfo`s for `raft::cluster::form`, so
//! servers joined only by `cairn join` find each other, bootstrap at `bootstrap_expect`, or
//! join an existing cluster.

use std::sync::Arc;

use super::{Lan, Membership};
use crate::rpc::discovery::{Discovery, RetryJoin};
use crate::rpc::{Pool, ServerInfo};

/// Gossip members with the server role, then the configured addresses.
pub(crate) struct GossipDiscovery {
    gossip: Arc<Lan>,
    retry_join: Vec<String>,
    pool: Arc<Pool>,
}

impl GossipDiscovery {
    /// Discovers through `gossip` and the `retry_join` RPC addresses.
    pub(crate) fn new(gossip: Arc<Lan>, retry_join: Vec<String>, pool: Arc<Pool>) -> Self {
        Self { gossip, retry_join, pool }
    }
}

impl Discovery for GossipDiscovery {
    async fn servers(&self) -> Vec<ServerInfo> {
        let dc = self.gossip.local_meta().dc.clone();
        let members = self.gossip.members().await;
        // `retry_join` names gossip addresses (Consul) or server RPC addresses (cairn's earlier
        // form): only the ones no member gossips on may be a server's RPC address.
        let mut addrs: Vec<String> = self
            .retry_join
            .iter()
            .filter(|a| !members.iter().any(|m| m.addr.to_string() == **a))
            .cloned()
            .collect();
        for m in &members {
            if let Some(rpc) = m.alive_server_rpc(&dc).filter(|a| !addrs.iter().any(|x| x == a)) {
                addrs.push(rpc.to_owned());
            }
        }
        RetryJoin::new(addrs, self.pool.clone()).servers().await
    }
}
