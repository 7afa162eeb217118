//! Start-up, the WAN side: a server's WAN gossip pool (`gossip::pool::Pool::Wan`), its joins
//! through `retry_join_wan` / `start_join_wan`, and Consul's flood join: every server joins
//! the other servers of its datacenter (seen in the LAN pool, with their `wan_join_port`) into
//! its WAN pool, so joining one server of a datacenter to the WAN joins them all.
//!
//! Input: `Config` (`ports.serf_wan`, `config.wan`: bind, advertise, joins; the keyring). Output:
//! the pool, named `<node>.<dc>` with the same meta as the LAN pool; `ports.serf_wan` set to
//! the bound port. Invariants: client agents and `ports.serf_wan = -1` start no WAN pool; the
//! WAN ring starts from `encrypt` unless `serf/remote.keyring` exists (Consul's rule).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, WanConfig};
use crate::gossip::keyring::{GossipKeys, Verify, WAN_KEYRING_FILE};
use crate::gossip::pool::{Pool, wan_name};
use crate::gossip::{Membership as _, NodeMeta, Wan};

/// The WAN gossip port a join address without one is tried on (Consul's default).
pub(crate) const SERF_WAN_PORT: u16 = 8302;
/// How often the flood join looks again when no LAN event arrived.
const FLOOD_INTERVAL: Duration = Duration::from_secs(5);

/// Starts a server's WAN pool on `ports.serf_wan` (none on a client or with -1).
pub(super) async fn start(
    config: &mut Config,
    meta: NodeMeta,
    snapshots: Arc<crate::snapshot::SnapshotHandle>,
) -> anyhow::Result<Option<Arc<Wan>>> {
    let Ok(port) = u16::try_from(config.ports.serf_wan) else { return Ok(None) };
    if !config.server {
        return Ok(None);
    }
    let mut keys = GossipKeys::load_pool(
        config.encrypt.as_deref(),
        &config.data_dir,
        config.disable_keyring_file,
        WAN_KEYRING_FILE,
    )?;
    keys.verify =
        Verify { incoming: config.encrypt_verify_incoming, outgoing: config.encrypt_verify_outgoing };
    let bind = SocketAddr::new(config.wan.bind.unwrap_or(config.bind_addr), port);
    // A free port (0) is not known before the bind; the advertised address then keeps it.
    let advertise = config.wan.advertise.filter(|_| port != 0).map(|ip| SocketAddr::new(ip, port));
    let name = wan_name(&config.node_name, &config.datacenter);
    let wan = Wan::start(&name, bind, meta, keys, snapshots, Pool::Wan, advertise)
        .await
        .with_context(|| format!("starting WAN gossip on {bind}"))?;
    config.ports.serf_wan = i32::from(wan.local_addr().port());
    Ok(Some(wan))
}

/// `a` with port 8302 when it has none (`ip`, `[ipv6]`, `host`).
fn with_port(a: &str) -> String {
    if let Ok(ip) = a.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return SocketAddr::new(ip, SERF_WAN_PORT).to_string();
    }
    if a.contains(':') { a.to_owned() } else { format!("{a}:{SERF_WAN_PORT}") }
}

/// `host[:port]` as WAN gossip addresses (port 8302 when none), resolved now.
async fn resolve(addrs: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for a in addrs {
        match tokio::net::lookup_host(with_port(a).as_str()).await {
            Ok(found) => out.extend(found),
            Err(e) => tracing::debug!(addr = %a, error = %e, "WAN join address not resolved"),
        }
    }
    out
}

/// Joins the WAN pool through `retry_join_wan` / `start_join_wan`; retries every
/// `retry_interval_wan` until one join succeeds or `retry_max_wan` attempts failed (nothing
/// configured: returns at once).
pub(super) async fn join(wan: Arc<Wan>, config: WanConfig, stop: CancellationToken) {
    let addrs = config.retry_join;
    if addrs.is_empty() {
        return;
    }
    let me = wan.local_addr();
    for attempt in 1u64.. {
        let found: Vec<SocketAddr> = resolve(&addrs).await.into_iter().filter(|a| *a != me).collect();
        match wan.join(&found).await {
            Ok(n) if n > 0 => {
                tracing::info!(contacted = n, "joined the WAN gossip pool");
                return;
            }
            Ok(_) => tracing::warn!("WAN join: no address resolved; retrying"),
            Err(e) => tracing::warn!(error = %e, "WAN join failed; retrying"),
        }
        if config.retry_max != 0 && attempt >= config.retry_max {
            return tracing::error!(attempts = attempt, "WAN join: retry_max_wan reached, giving up");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(config.retry_interval) => {}
        }
    }
}

/// Consul's flood join: on every LAN member event (and every `FLOOD_INTERVAL`), joins into the
/// WAN pool each alive server of this datacenter in the LAN pool that is not in it yet, at its
/// LAN address with its `wan_join_port`.
pub(super) async fn flood(lan: Arc<crate::gossip::Lan>, wan: Arc<Wan>, dc: String, stop: CancellationToken) {
    let mut events = lan.subscribe();
    loop {
        let in_wan: std::collections::BTreeSet<String> =
            wan.members().await.into_iter().map(|m| m.name).collect();
        let missing: Vec<(String, SocketAddr)> = lan
            .members()
            .await
            .into_iter()
            .filter(|m| m.status == crate::gossip::MemberStatus::Alive)
            .filter_map(|m| {
                let meta = m.meta.as_ref().filter(|x| x.role == crate::gossip::Role::Server && x.dc == dc)?;
                let name = wan_name(&m.name, &dc);
                let addr = SocketAddr::new(m.addr.ip(), meta.wan_join_port);
                (meta.wan_join_port != 0 && !in_wan.contains(&name)).then_some((name, addr))
            })
            .collect();
        for (name, addr) in missing {
            match wan.join(&[addr]).await {
                Ok(_) => tracing::info!(member = %name, %addr, "flood-joined a server into the WAN pool"),
                Err(e) => tracing::debug!(member = %name, %addr, error = %e, "WAN flood join failed"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            r = events.recv() => if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) { return },
            () = tokio::time::sleep(FLOOD_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_join_address_without_a_port_gets_8302() {
        let got: Vec<String> =
            ["10.0.0.1", "10.0.0.1:9302", "::1", "[::1]", "[::1]:9302", "dc2.example", "h:1"]
                .into_iter()
                .map(super::with_port)
                .collect();
        assert_eq!(
            got,
            [
                "10.0.0.1:8302",
                "10.0.0.1:9302",
                "[::1]:8302",
                "[::1]:8302",
                "[::1]:9302",
                "dc2.example:8302",
                "h:1"
            ]
        );
    }
}
