//! Start-up, the front door: static zones and TLS certificates loaded, then the DNS, HTTP and
//! HTTPS sockets bound (or DNS adopted from the service manager), before anything else starts.
//!
//! Input: `Config` (and sockets inherited through `LISTEN_FDS`). Output: the zone set, the
//! TLS configurations and the bound listeners `App` holds until `run` hands them to their
//! services. HTTPS is bound when `ports.https` is not -1 (0 asks for a free port, as for the
//! other ports); without a certificate the configuration has turned it off, as Consul does.
//! Invariants: a broken zone file or a port in use stops start-up with the file or address in
//! the error; with port 0, DNS gets one port for both UDP and TCP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::tls::Tls;
use crate::zone::ZoneSet;

/// DNS's sockets: the UDP sockets (one receive loop each) and the TCP listener.
pub(super) type DnsSockets = (Vec<std::net::UdpSocket>, TcpListener);

/// Binds (or adopts) DNS and binds HTTP; a port set to -1 turns its listener off.
pub(super) async fn bind_front(config: &Config) -> anyhow::Result<(Option<DnsSockets>, Option<TcpListener>)> {
    // Socket activation (cairn-dns.socket) hands DNS sockets over; they replace ports.dns.
    let inherited = crate::systemd::inherited_sockets();
    let dns = if !inherited.is_empty() {
        Some(adopt_dns(inherited)?)
    } else {
        match u16::try_from(config.ports.dns) {
            Ok(port) => Some(bind_dns(SocketAddr::new(config.dns_addr, port)).await?),
            Err(_) => None,
        }
    };
    let http = match u16::try_from(config.ports.http) {
        Ok(port) => {
            let addr = SocketAddr::new(config.http_addr, port);
            Some(TcpListener::bind(addr).await.with_context(|| format!("binding HTTP on {addr}"))?)
        }
        Err(_) => None,
    };
    Ok((dns, http))
}

/// Puts the ports the listeners got into the config (port 0 asks the OS for one), so what
/// the agent reports (`/v1/agent/self`) is where it listens.
pub(super) fn record_bound_ports(
    config: &mut Config,
    dns: Option<&DnsSockets>,
    http: Option<&TcpListener>,
    https: Option<&TcpListener>,
) {
    let port = |l: Option<&TcpListener>| l.and_then(|l| l.local_addr().ok()).map(|a| i32::from(a.port()));
    if let Some(p) = port(dns.map(|(_, tcp)| tcp)) {
        config.ports.dns = p;
    }
    if let Some(p) = port(http) {
        config.ports.http = p;
    }
    if let Some(p) = port(https) {
        config.ports.https = p;
    }
}

/// Binds HTTPS on `addresses.https` (default `client_addr`) when `ports.https` is not -1.
pub(super) async fn bind_https(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let Ok(port) = u16::try_from(config.ports.https) else {
        return Ok(None);
    };
    let addr = SocketAddr::new(config.https_addr, port);
    Ok(Some(TcpListener::bind(addr).await.with_context(|| format!("binding HTTPS on {addr}"))?))
}

/// Loads the TLS certificates, keys and CAs at start-up: a file that does not load stops the
/// agent, naming the file.
pub(super) fn load_tls(config: &Config) -> anyhow::Result<Arc<Tls>> {
    Tls::load(config).context("loading TLS certificates")
}

/// Loads `zones_dir` at start-up: a broken file stops the agent, naming the file and line.
pub(super) fn load_zones(config: &Config) -> anyhow::Result<Arc<ZoneSet>> {
    let Some(dir) = &config.zones_dir else {
        return Ok(Arc::default());
    };
    let zones = ZoneSet::load_dir(dir).context("loading static zones (zones_dir)")?;
    log_zones(&zones);
    Ok(Arc::new(zones))
}

pub(super) fn log_zones(zones: &ZoneSet) {
    for z in zones.zones() {
        tracing::info!(zone = %z.origin(), file = %z.file().display(), records = z.record_count(), "serving static zone");
    }
}

/// Binds UDP and TCP on the same port; with port 0 retries until both get the same free port.
async fn bind_dns(addr: SocketAddr) -> anyhow::Result<DnsSockets> {
    // One UDP socket (and receive loop) per core the process may run on.
    let loops = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    for _ in 0..20 {
        let udp =
            crate::dns::bind_udp(addr, loops).with_context(|| format!("binding DNS (UDP) on {addr}"))?;
        let bound = udp.first().map(std::net::UdpSocket::local_addr).transpose()?.unwrap_or(addr);
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e).with_context(|| format!("binding DNS (TCP) on {bound}")),
        }
    }
    anyhow::bail!("no free port for DNS on {addr} for both UDP and TCP")
}

/// Serves DNS on sockets inherited from the service manager: every UDP socket with one
/// loop each (an inherited socket is not one of a `SO_REUSEPORT` group, so it gets one
/// loop), and the first TCP listener.
fn adopt_dns(inherited: crate::systemd::Inherited) -> anyhow::Result<DnsSockets> {
    let crate::systemd::Inherited { udp, tcp } = inherited;
    let mut tcp = tcp.into_iter();
    let (Some(listener), false) = (tcp.next(), udp.is_empty()) else {
        anyhow::bail!(
            "socket activation: expected at least one datagram (UDP) and one stream (TCP) socket for DNS"
        );
    };
    if tcp.next().is_some() {
        tracing::warn!(
            "socket activation: more than one TCP socket inherited; serving DNS on the first only"
        );
    }
    let udp = udp
        .into_iter()
        .map(crate::dns::adopt_udp)
        .collect::<std::io::Result<Vec<_>>>()
        .context("preparing inherited DNS (UDP) sockets")?;
    listener.set_nonblocking(true).context("preparing the inherited DNS (TCP) socket")?;
    let listener = TcpListener::from_std(listener).context("preparing the inherited DNS (TCP) socket")?;
    for s in &udp {
        tracing::info!(addr = ?s.local_addr().ok(), "DNS (UDP) on a socket from the service manager");
    }
    tracing::info!(addr = ?listener.local_addr().ok(), "DNS (TCP) on a socket from the service manager");
    Ok((udp, listener))
}
