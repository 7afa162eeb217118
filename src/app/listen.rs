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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::{TcpListener, UnixListener};

use crate::config::{Config, ListenAddr, UnixSockets};
use crate::tls::Tls;
use crate::zone::ZoneSet;

/// DNS's sockets: the UDP sockets (one receive loop each) and the TCP listener.
pub(super) type DnsSockets = (Vec<std::net::UdpSocket>, TcpListener);

/// HTTP's listeners: one per `addresses.http` entry, TCP on `ports.http` or a Unix socket.
#[derive(Debug, Default)]
pub(super) struct HttpListeners {
    /// TCP listeners, in `addresses.http`'s order.
    pub tcp: Vec<TcpListener>,
    /// Unix socket listeners.
    pub unix: Vec<UnixSocket>,
}

/// A Unix socket HTTP listens on; its file is removed when the listener is dropped (the agent
/// stops), as Consul removes it.
#[derive(Debug)]
pub(super) struct UnixSocket {
    /// The listener; taken when HTTP starts serving on it.
    pub listener: Option<UnixListener>,
    /// The socket's file.
    pub path: PathBuf,
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        // Best effort at shutdown: a leftover file is replaced at the next start anyway.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds (or adopts) DNS and binds HTTP; a port set to -1 turns its listener off (HTTP's Unix
/// sockets too, as in Consul).
pub(super) async fn bind_front(config: &Config) -> anyhow::Result<(Option<DnsSockets>, HttpListeners)> {
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
    let mut http = HttpListeners::default();
    if let Ok(mut port) = u16::try_from(config.ports.http) {
        for listen in &config.http_addrs {
            match listen {
                ListenAddr::Ip(ip) => {
                    let addr = SocketAddr::new(*ip, port);
                    let l =
                        TcpListener::bind(addr).await.with_context(|| format!("binding HTTP on {addr}"))?;
                    // Port 0: the first listener's free port is every TCP listener's port.
                    port = l.local_addr().map_or(port, |a| a.port());
                    http.tcp.push(l);
                }
                ListenAddr::Unix(path) => http.unix.push(bind_unix(path, &config.unix_sockets)?),
            }
        }
    }
    Ok((dns, http))
}

/// Binds a Unix socket at `path`, replacing whatever file is there (a socket left by an agent
/// that did not stop cleanly), then applies `unix_sockets`' owner and mode.
fn bind_unix(path: &Path, perms: &UnixSockets) -> anyhow::Result<UnixSocket> {
    let context = || format!("setting up the HTTP socket {}", path.display());
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(context),
    }
    let listener = UnixListener::bind(path).with_context(context)?;
    let socket = UnixSocket { listener: Some(listener), path: path.to_owned() };
    let uid = perms.user.as_deref().map(user_id).transpose().with_context(context)?;
    let gid = perms.group.as_deref().map(group_id).transpose().with_context(context)?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid).with_context(context)?;
    }
    if let Some(mode) = perms.mode {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(context)?;
    }
    Ok(socket)
}

/// A user's ID from its number or name (`unix_sockets.user`).
fn user_id(user: &str) -> anyhow::Result<u32> {
    if let Ok(id) = user.parse() {
        return Ok(id);
    }
    let found = nix::unistd::User::from_name(user).with_context(|| format!("looking up user {user:?}"))?;
    found.map(|u| u.uid.as_raw()).with_context(|| format!("unix_sockets.user: no user {user:?}"))
}

/// A group's ID from its number or name (`unix_sockets.group`).
fn group_id(group: &str) -> anyhow::Result<u32> {
    if let Ok(id) = group.parse() {
        return Ok(id);
    }
    let found =
        nix::unistd::Group::from_name(group).with_context(|| format!("looking up group {group:?}"))?;
    found.map(|g| g.gid.as_raw()).with_context(|| format!("unix_sockets.group: no group {group:?}"))
}

/// Puts the ports the listeners got into the config (port 0 asks the OS for one), so what
/// the agent reports (`/v1/agent/self`) is where it listens.
pub(super) fn record_bound_ports(
    config: &mut Config,
    dns: Option<&DnsSockets>,
    http: &HttpListeners,
    https: Option<&TcpListener>,
) {
    let port = |l: Option<&TcpListener>| l.and_then(|l| l.local_addr().ok()).map(|a| i32::from(a.port()));
    if let Some(p) = port(dns.map(|(_, tcp)| tcp)) {
        config.ports.dns = p;
    }
    if let Some(p) = port(http.tcp.first()) {
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
