//! SERVER DISCOVERY: finding other servers before this one is part of a cluster.
//!
//! Input: addresses to ask (`retry_join`, or the servers gossip knows). Output: the
//! `ServerInfo` each server answers to `Request::Hello`, and the gossip addresses a
//! `retry_join` entry stands for.
//! Invariant: an address that does not answer is left out, never reported as a server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Pool, Request, Response, ServerInfo};

/// How long a discovery hello may take.
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

/// Finds other servers before this one is part of a cluster.
pub(crate) trait Discovery: Send + Sync + 'static {
    /// The servers reachable now (may include this one; callers filter it out).
    fn servers(&self) -> impl Future<Output = Vec<ServerInfo>> + Send;
}

/// Discovery through the `retry_join` addresses, asked over the server RPC.
#[derive(Debug, Clone)]
pub(crate) struct RetryJoin {
    addrs: Vec<String>,
    pool: Arc<Pool>,
}

/// Consul's default LAN gossip port, tried for a `retry_join` host given without a port.
const SERF_LAN_PORT: u16 = 8301;

impl RetryJoin {
    /// Asks `addrs` (`host:port` of the server RPC).
    pub(crate) fn new(addrs: Vec<String>, pool: Arc<Pool>) -> Self {
        Self { addrs, pool }
    }

    /// Whether no address is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The LAN gossip addresses to join the pool through. `retry_join` names gossip addresses,
    /// as in Consul; a server's RPC address (cairn's earlier form) works too: a server that
    /// answers `Hello` there names its gossip address. Any other address is a gossip address
    /// itself, and one on the default RPC port (a bare `host`) also that host on 8301.
    pub(crate) async fn gossip_addrs(&self) -> Vec<SocketAddr> {
        let mut calls = tokio::task::JoinSet::new();
        for addr in &self.addrs {
            let (pool, addr) = (self.pool.clone(), addr.clone());
            calls.spawn(async move {
                if let Ok(Response::Hello(info)) = pool.call(&addr, &Request::Hello, HELLO_TIMEOUT).await {
                    return info.serf_addr.into_iter().collect();
                }
                let resolved: Vec<SocketAddr> =
                    tokio::net::lookup_host(addr.as_str()).await.map(Iterator::collect).unwrap_or_default();
                gossip_candidates(&resolved)
            });
        }
        let mut out = Vec::new();
        while let Some(done) = calls.join_next().await {
            for a in done.unwrap_or_default() {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

/// The gossip addresses a `retry_join` entry that is no server's RPC address may stand for.
fn gossip_candidates(resolved: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = resolved.to_vec();
    for a in resolved.iter().filter(|a| a.port() == super::DEFAULT_PORT) {
        out.push(SocketAddr::new(a.ip(), SERF_LAN_PORT));
    }
    out
}

impl Discovery for RetryJoin {
    async fn servers(&self) -> Vec<ServerInfo> {
        let mut calls = tokio::task::JoinSet::new();
        for addr in &self.addrs {
            let (pool, addr) = (self.pool.clone(), addr.clone());
            calls.spawn(async move { pool.call(&addr, &Request::Hello, HELLO_TIMEOUT).await });
        }
        let mut out = Vec::new();
        while let Some(done) = calls.join_next().await {
            if let Ok(Ok(Response::Hello(info))) = done {
                out.push(info);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_join_address_that_is_no_server_is_a_gossip_address() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(gossip_candidates(&[a("10.0.0.1:8301")]), [a("10.0.0.1:8301")]);
        assert_eq!(gossip_candidates(&[a("10.0.0.1:7301")]), [a("10.0.0.1:7301")]);
        // A bare host (parsed with the RPC port) stands for its gossip port too.
        assert_eq!(gossip_candidates(&[a("10.0.0.1:8300")]), [a("10.0.0.1:8300"), a("10.0.0.1:8301")]);
        assert!(gossip_candidates(&[]).is_empty());
    }
}
