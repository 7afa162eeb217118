//! Start-up, the cluster side: this agent's identity, its half of the consensus (a Raft
//! server on the server RPC port, or a client agent's replica), and the LAN gossip pool.
//!
//! Input: `Config` (ports 0 are replaced by what was bound). Output: `Consensus` with the
//! server or the replica behind it, the server RPC listener, the gossip pool; at run time the
//! join of the gossip pool through `retry_join`.
//! Invariants: a server's Raft node ID derives from its node UUID (stable across restarts);
//! a client agent opens no Raft, no LMDB and binds no server RPC port.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::consensus::Consensus;
use crate::raft::RaftOptions;

/// This agent's half of the consensus.
pub(super) struct Side {
    /// Proposals and the cluster's view, whichever side this agent is.
    pub(super) consensus: Consensus,
    /// The Raft node; none on a client agent.
    pub(super) server: Option<Arc<crate::raft::Server>>,
    /// The replica stream and forwarder; none on a server.
    pub(super) replica: Option<Arc<crate::replica::Client>>,
    /// The server RPC listener; none on a client agent.
    pub(super) rpc: Option<TcpListener>,
    /// What every server-RPC connection proves (dialled and, on a server, accepted).
    pub(super) rpc_auth: crate::rpc::Auth,
    /// The gossip keyring at start, and its live view the RPC challenge reads.
    pub(super) gossip_keys: crate::gossip::keyring::GossipKeys,
}

/// A server binds the server RPC and opens Raft (restoring the catalog); a client agent does
/// neither: its replica is fed by a server and its writes are forwarded (`replica`). Every
/// server-RPC connection, dialled or accepted, runs TLS as `tls`'s current settings say.
/// Sets `ports.server` to the bound port.
pub(super) async fn open_consensus(config: &mut Config, tls: &Arc<crate::tls::Tls>) -> anyhow::Result<Side> {
    // The keyring (file, else `encrypt`) keys gossip and the server RPC's challenge alike; the
    // RPC reads it live, so a rotation reaches both.
    let mut gossip_keys = crate::gossip::keyring::GossipKeys::load(
        config.encrypt.as_deref(),
        &config.data_dir,
        config.disable_keyring_file,
    )?;
    let (incoming, outgoing) = (config.encrypt_verify_incoming, config.encrypt_verify_outgoing);
    gossip_keys.verify = crate::gossip::keyring::Verify { incoming, outgoing };
    let rpc_auth = if gossip_keys.keys.is_empty() {
        crate::rpc::Auth::open()
    } else {
        crate::rpc::Auth::keyed(Arc::new(gossip_keys.view.clone())).with_rollout(incoming, outgoing)
    }
    .with_tls(tls.clone());
    if !config.server {
        let client = crate::replica::Client::new(join_addrs(config), rpc_auth.clone());
        let consensus = Consensus::new(client.clone());
        return Ok(Side { consensus, server: None, replica: Some(client), rpc: None, rpc_auth, gossip_keys });
    }
    let rpc_addr = SocketAddr::new(config.bind_addr, config.ports.server);
    crate::rpc::auth::check_exposure(rpc_addr, &rpc_auth, config.insecure_rpc).map_err(anyhow::Error::msg)?;
    let rpc =
        TcpListener::bind(rpc_addr).await.with_context(|| format!("binding server RPC on {rpc_addr}"))?;
    let raft_addr = rpc.local_addr()?;
    config.ports.server = raft_addr.port();
    let server = crate::raft::open(RaftOptions {
        data_dir: config.data_dir.clone(),
        node_id: raft_node_id(&config.node_id)?,
        raft_addr,
        bootstrap_expect: config.bootstrap_expect,
        snapshot_threshold: config.raft_snapshot_threshold,
        trailing_logs: config.raft_trailing_logs,
        rpc_auth: rpc_auth.clone(),
    })
    .await
    .context("opening the Raft store")?;
    Ok(Side {
        consensus: Consensus::new(server.clone()),
        server: Some(server),
        replica: None,
        rpc: Some(rpc),
        rpc_auth,
        gossip_keys,
    })
}

/// Starts LAN gossip with this agent's meta (role, datacenter, Raft address and ID); sets
/// `ports.serf_lan` to the bound port and hands the pool to a client's replica. A server
/// also starts its WAN pool (`app::wan`).
pub(super) async fn start_gossip(
    config: &mut Config,
    side: &Side,
) -> anyhow::Result<(Arc<crate::gossip::Lan>, Option<Arc<crate::gossip::Wan>>)> {
    let raft_addr = match &side.rpc {
        Some(rpc) => rpc.local_addr()?.to_string(),
        None => String::new(),
    };
    let mut meta = crate::gossip::NodeMeta {
        role: if config.server { crate::gossip::Role::Server } else { crate::gossip::Role::Client },
        dc: config.datacenter.clone(),
        raft_addr,
        raft_id: side.consensus.node_id(),
        version: crate::build_tag(),
        leaving: false,
        node_id: config.node_id.clone(),
        wan_join_port: 0,
    };
    let serf_bind = SocketAddr::new(config.bind_addr, config.ports.serf_lan);
    let snapshots = side.consensus.snapshots();
    // The WAN pool first, so the LAN meta can carry its port (`wan_join_port`).
    let wan = super::wan::start(config, meta.clone(), snapshots.clone()).await?;
    meta.wan_join_port = wan.as_deref().map_or(0, |w| crate::gossip::Membership::local_addr(w).port());
    let keys = side.gossip_keys.clone();
    let lan = crate::gossip::pool::Pool::Lan;
    let gossip = crate::gossip::Lan::start(
        &config.node_name,
        serf_bind,
        meta.clone(),
        keys,
        snapshots.clone(),
        lan,
        None,
    )
    .await
    .with_context(|| format!("starting LAN gossip on {serf_bind}"))?;
    config.ports.serf_lan = crate::gossip::Membership::local_addr(&*gossip).port();
    if let Some(client) = &side.replica {
        client.set_gossip(gossip.clone());
    }
    Ok((gossip, wan))
}

/// Reads the node ID kept in the data dir, or creates one (Consul keeps `node-id` there too).
pub(super) fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if uuid::Uuid::parse_str(s.trim()).is_ok() => return Ok(s.trim().to_owned()),
        Ok(_) => anyhow::bail!("{}: not a UUID", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = data_dir.join("node-id.tmp");
    std::fs::write(&tmp, &id).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// Raft node ID derived from the node UUID, so it is stable across restarts and unique.
fn raft_node_id(node_id: &str) -> anyhow::Result<u64> {
    let u = uuid::Uuid::parse_str(node_id).with_context(|| format!("node_id {node_id:?} is not a UUID"))?;
    // The low 64 bits of a random UUID are random enough to tell servers apart.
    Ok((u.as_u128() as u64).max(1))
}

/// The `retry_join` addresses as server RPC addresses (`host:port`).
pub(super) fn join_addrs(config: &Config) -> Vec<String> {
    config.retry_join.iter().filter_map(|a| crate::rpc::join_addr(a).ok()).collect()
}

/// Joins the LAN gossip pool through the `retry_join` addresses (gossip addresses, or servers'
/// RPC addresses whose `Hello` names their gossip address); retries until one join succeeds or
/// nothing is configured.
pub(super) async fn join_gossip(
    gossip: Arc<crate::gossip::Lan>,
    discovery: crate::rpc::discovery::RetryJoin,
    stop: CancellationToken,
) {
    use crate::gossip::Membership as _;
    if discovery.is_empty() {
        return;
    }
    let me = gossip.local_addr();
    loop {
        let addrs: Vec<SocketAddr> =
            discovery.gossip_addrs().await.into_iter().filter(|a| *a != me).collect();
        if !addrs.is_empty() {
            match gossip.join(&addrs).await {
                Ok(n) => {
                    tracing::info!(contacted = n, "joined the LAN gossip pool");
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "gossip join failed; retrying"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
