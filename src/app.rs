//! Startup and lifecycle: `Config` -> `App::build` (binds sockets, opens Raft, registers the
//! agent) -> `App::run` (serves DNS and HTTP until shutdown).
//!
//! `App` exposes the addresses it actually bound, so tests start agents on port 0.
//! Nothing here answers queries or applies commands; it only wires the stages together.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Check, HealthStatus, Service};
use crate::catalog::{Command, Registration};
use crate::config::Config;
use crate::consensus::Consensus;
use crate::dns::DnsContext;
use crate::health::{CheckRunner, TtlChecks};
use crate::http::ApiState;
use crate::local::LocalState;
use crate::raft::RaftOptions;
use crate::zone::ZoneSet;

/// A built agent: sockets bound, Raft open and leader, own node registered.
pub struct App {
    config: Arc<Config>,
    /// Proposals and the cluster's view, whichever side of the consensus this agent is.
    raft: Consensus,
    /// The Raft node; none on a client agent.
    server: Option<Arc<crate::raft::Server>>,
    /// The replica stream and forwarder; none on a server.
    replica: Option<Arc<crate::replica::Client>>,
    dns: Option<(Vec<std::net::UdpSocket>, TcpListener)>,
    http: Option<TcpListener>,
    dns_context: Arc<ArcSwap<DnsContext>>,
    ttl: Arc<TtlChecks>,
    checks: Arc<CheckRunner>,
    /// This agent's own services and checks, synced to the catalog (anti-entropy).
    local: Arc<LocalState>,
    /// The server RPC listener (Raft, forwarding, discovery); none on a client agent.
    rpc: Option<TcpListener>,
    /// The LAN gossip pool.
    gossip: Arc<crate::gossip::Lan>,
    /// Whether this agent's own registration still has to happen (it needs a cluster leader).
    register_later: bool,
    /// Reload requests from `PUT /v1/agent/reload`; the binary reloads as on SIGHUP.
    reload_requests: Arc<tokio::sync::Notify>,
    /// `--dev` data directory, removed when the app is dropped.
    _dev_dir: Option<tempfile::TempDir>,
}

/// Swaps in reloadable settings (today: `dns_config`, domains, recursors, static zones)
/// without a restart.
#[derive(Clone)]
pub struct Reloader {
    dns_context: Arc<ArcSwap<DnsContext>>,
    local: Arc<LocalState>,
}

impl Reloader {
    /// Publishes the DNS settings and zones of `config`; in-flight queries finish with the
    /// old ones. Zone files are reloaded per file: one that no longer loads is logged with
    /// its file and line and its previous version keeps serving.
    pub fn reload(&self, config: &Config) {
        let zones = match &config.zones_dir {
            Some(dir) => {
                let (zones, errors) = self.dns_context.load().zones.reload_dir(dir);
                for err in &errors {
                    tracing::error!(error = %err, "static zone not reloaded; its previous version (if any) keeps serving");
                }
                log_zones(&zones);
                Arc::new(zones)
            }
            None => Arc::default(),
        };
        let fresh = DnsContext::from_config(config).with_zones(zones);
        self.dns_context.rcu(|cur| Arc::new(DnsContext { generation: cur.generation + 1, ..fresh.clone() }));
    }

    /// Registers the service definitions of `config` again (new and changed ones take
    /// effect; an unchanged one is a no-op). A definition removed from the files leaves the
    /// agent's local state, and so the catalog, as in Consul.
    ///
    /// The check runner keeps the script-check settings and the set of config-file check IDs
    /// it started with: a script check first added to the files by a reload runs only with
    /// `enable_script_checks` until the next restart.
    pub async fn register_services(&self, config: &Config) -> anyhow::Result<()> {
        register_config_services(config, &self.local).await
    }
}

/// Loads `zones_dir` at start-up: a broken file stops the agent, naming the file and line.
fn load_zones(config: &Config) -> anyhow::Result<Arc<ZoneSet>> {
    let Some(dir) = &config.zones_dir else {
        return Ok(Arc::default());
    };
    let zones = ZoneSet::load_dir(dir).context("loading static zones (zones_dir)")?;
    log_zones(&zones);
    Ok(Arc::new(zones))
}

fn log_zones(zones: &ZoneSet) {
    for z in zones.zones() {
        tracing::info!(zone = %z.origin(), file = %z.file().display(), records = z.record_count(), "serving static zone");
    }
}

/// Reads the node ID kept in the data dir, or creates one (Consul keeps `node-id` there too).
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
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

/// Binds UDP and TCP on the same port; with port 0 retries until both get the same free port.
async fn bind_dns(addr: SocketAddr) -> anyhow::Result<(Vec<std::net::UdpSocket>, TcpListener)> {
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
fn adopt_dns(
    inherited: crate::systemd::Inherited,
) -> anyhow::Result<(Vec<std::net::UdpSocket>, TcpListener)> {
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

impl App {
    /// Prepares the data dir, binds every listener, opens Raft (restoring the catalog), and
    /// registers this agent's node and the `consul` service as Consul does.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let mut config = config;
        let dev_dir = if config.dev && config.data_dir.as_os_str().is_empty() {
            let dir = tempfile::Builder::new()
                .prefix("cairn-dev-")
                .tempdir()
                .context("creating the -dev data dir")?;
            config.data_dir = dir.path().to_path_buf();
            Some(dir)
        } else {
            None
        };
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        if config.node_id.is_empty() {
            config.node_id = node_id(&config.data_dir)?;
        }

        // Before binding anything, so a broken zone file fails start-up at once.
        let zones = load_zones(&config)?;
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

        // A server binds the server RPC and opens Raft; a client agent does neither: its
        // replica is fed by a server and its writes are forwarded (`replica`).
        let (raft, server, replica, rpc, raft_addr) = if config.server {
            let rpc_addr = SocketAddr::new(config.bind_addr, config.ports.server);
            let rpc = TcpListener::bind(rpc_addr)
                .await
                .with_context(|| format!("binding server RPC on {rpc_addr}"))?;
            let raft_addr = rpc.local_addr()?;
            config.ports.server = raft_addr.port();
            let server = crate::raft::open(RaftOptions {
                data_dir: config.data_dir.clone(),
                node_id: raft_node_id(&config.node_id)?,
                raft_addr,
                bootstrap_expect: config.bootstrap_expect,
                snapshot_threshold: config.raft_snapshot_threshold,
                trailing_logs: config.raft_trailing_logs,
            })
            .await
            .context("opening the Raft store")?;
            (Consensus::new(server.clone()), Some(server), None, Some(rpc), raft_addr.to_string())
        } else {
            let client = crate::replica::Client::new(join_addrs(&config));
            (Consensus::new(client.clone()), None, Some(client), None, String::new())
        };

        let meta = crate::gossip::NodeMeta {
            role: if config.server { crate::gossip::Role::Server } else { crate::gossip::Role::Client },
            dc: config.datacenter.clone(),
            raft_addr,
            raft_id: raft.node_id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            leaving: false,
        };
        let serf_bind = SocketAddr::new(config.bind_addr, config.ports.serf_lan);
        let gossip = crate::gossip::Lan::start(&config.node_name, serf_bind, meta, config.encrypt.as_deref())
            .await
            .with_context(|| format!("starting LAN gossip on {serf_bind}"))?;
        config.ports.serf_lan = crate::gossip::Membership::local_addr(&*gossip).port();
        if let Some(client) = &replica {
            client.set_gossip(gossip.clone());
        }
        let config = Arc::new(config);
        // A single server is leader now; in a cluster (and on a client agent) the registration
        // waits for a leader (`run`), so the listeners come up first.
        let register_later = !config.server || config.bootstrap_expect != 1;
        // The agent's local state: config-file records, then the persisted API ones, before
        // the first sync.
        let local = LocalState::new(
            raft.clone(),
            own_registration(&config),
            Some(&config.data_dir),
            config.anti_entropy_interval,
        );
        {
            let snap = raft.snapshots().load_full();
            let node =
                snap.catalog.node(&config.node_name).map_or_else(|| own_node(&config), |n| (**n).clone());
            let mut regs: Vec<Registration> =
                config_registrations(&config, &node, &snap.catalog)?.into_iter().map(|(_, r)| r).collect();
            local.replace_config(&mut regs);
            local.load(&snap.catalog).context("loading the agent's services and checks")?;
        }
        if !register_later {
            register_self(&config, &raft).await?;
            register_config_services(&config, &local).await?;
        }
        let ttl = TtlChecks::new(local.clone(), raft.snapshots(), config.node_name.clone());
        // Before any registration (which in a cluster waits for a leader), so the runner knows
        // from its first probe which script checks came from config files.
        let local_check_ids = config_check_ids(&config, &raft.snapshots().load_full().catalog)?;
        let checks = CheckRunner::new(
            local.clone(),
            raft.snapshots(),
            config.node_name.clone(),
            config.checks.clone(),
            local_check_ids,
        );
        let dns_context = Arc::new(ArcSwap::from_pointee(DnsContext::from_config(&config).with_zones(zones)));
        let reload_requests = Arc::new(tokio::sync::Notify::new());
        Ok(Self {
            config,
            raft,
            server,
            replica,
            dns,
            http,
            dns_context,
            ttl,
            checks,
            local,
            rpc,
            gossip,
            register_later,
            reload_requests,
            _dev_dir: dev_dir,
        })
    }

    /// Where DNS listens (UDP and TCP share the port), if enabled.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns.as_ref().and_then(|(u, _)| u.first()?.local_addr().ok())
    }

    /// Where the HTTP API listens, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the server RPC (Raft) listens.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc.as_ref()?.local_addr().ok()
    }

    /// Where LAN gossip listens (TCP and UDP).
    pub fn serf_addr(&self) -> SocketAddr {
        crate::gossip::Membership::local_addr(&*self.gossip)
    }

    /// The data directory in use (a temporary one under `--dev`).
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// Signalled by `PUT /v1/agent/reload`: the owner reloads as on SIGHUP.
    pub fn reload_requests(&self) -> Arc<tokio::sync::Notify> {
        self.reload_requests.clone()
    }

    /// A handle for SIGHUP reloads.
    pub fn reloader(&self) -> Reloader {
        Reloader { dns_context: self.dns_context.clone(), local: self.local.clone() }
    }

    /// Serves DNS and HTTP until `shutdown` fires, then stops Raft cleanly.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let snapshots = self.raft.snapshots();
        let mut tasks = tokio::task::JoinSet::new();
        // Consul's SOA serial is the current Unix time; the DNS path reads no clock, so the
        // serial is refreshed here. `rcu` keeps a concurrent SIGHUP reload from being lost.
        let serial_ctx = self.dns_context.clone();
        let serial_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = serial_stop.cancelled() => break,
                    _ = tick.tick() => {
                        let serial = crate::dns::unix_serial();
                        serial_ctx.rcu(|cur| Arc::new((**cur).clone().with_serial(serial)));
                    }
                }
            }
        });
        let ttl_task = self.ttl.run(shutdown.clone());
        let checks_task = self.checks.run(shutdown.clone());
        let local_task = self.local.run(shutdown.clone());
        let reap_task = crate::health::reap::run(
            self.local.clone(),
            snapshots.clone(),
            self.config.node_name.clone(),
            self.config.checks.clone(),
            shutdown.clone(),
        );
        let sessions = crate::session::SessionTimers::new();
        let session_task = tokio::spawn(sessions.clone().run(self.raft.clone(), shutdown.clone()));
        let serf = Some(self.serf_addr());
        if let (Some(listener), Some(server)) = (self.rpc, self.server.clone()) {
            let (stop, timers) = (shutdown.clone(), sessions.clone());
            tasks.spawn(async move {
                crate::serve_rpc::serve(listener, server, serf, timers, stop).await.context("server RPC")
            });
        }
        if let Some(client) = &self.replica {
            tokio::spawn(client.clone().run());
        }
        let joins = join_addrs(&self.config);
        let discovery = crate::rpc::discovery::RetryJoin::new(joins.clone(), self.raft.pool());
        tokio::spawn(join_gossip(self.gossip.clone(), discovery.clone(), shutdown.clone()));
        // Servers found by gossip (e.g. after `cairn join`) count too.
        let discovery =
            crate::gossip::discovery::GossipDiscovery::new(self.gossip.clone(), joins, self.raft.pool());
        tokio::spawn(crate::gossip::reconcile::run(
            self.gossip.clone(),
            self.raft.clone(),
            self.config.cleanup_dead_servers,
            shutdown.clone(),
        ));
        // A client agent has no Raft node to put in a cluster.
        if let Some(server) = self.server.clone() {
            tokio::spawn(crate::raft::cluster::form(
                server,
                discovery,
                self.config.bootstrap_expect,
                shutdown.clone(),
            ));
        }
        if self.register_later {
            let (config, raft, stop) = (self.config.clone(), self.raft.clone(), shutdown.clone());
            let local = self.local.clone();
            tokio::spawn(async move {
                loop {
                    let attempt = async {
                        register_self(&config, &raft).await?;
                        register_config_services(&config, &local).await
                    };
                    match attempt.await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::debug!(error = %format!("{e:#}"), "registering this agent; retrying")
                        }
                    }
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            });
        }
        if let Some((udp, tcp)) = self.dns {
            let (ctx, snaps, stop) = (self.dns_context.clone(), snapshots.clone(), shutdown.clone());
            tasks.spawn(
                async move { crate::dns::serve(udp, tcp, ctx, snaps, stop).await.context("DNS server") },
            );
        }
        if let Some(listener) = self.http {
            let state = ApiState {
                config: self.config.clone(),
                snapshots: snapshots.clone(),
                raft: self.raft.clone(),
                replica: self.replica.clone(),
                local: self.local.clone(),
                ttl: self.ttl.clone(),
                checks: self.checks.clone(),
                sessions,
                gossip: Some(self.gossip.clone()),
                shutdown: shutdown.clone(),
                reload: self.reload_requests.clone(),
            };
            let stop = shutdown.clone();
            tasks.spawn(async move {
                axum::serve(listener, crate::http::router(state))
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .context("HTTP server")
            });
        }
        // A server task that ends before shutdown is fatal: stop everything and report it.
        let mut result = Ok(());
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {}
            Some(done) = tasks.join_next() => {
                result = done.context("server task panicked").and_then(|r| r);
                // A listener that returns Ok because shutdown began meanwhile stopped as asked.
                if result.is_ok() && !shutdown.is_cancelled() {
                    result = Err(anyhow::anyhow!("a server task stopped unexpectedly"));
                }
                shutdown.cancel();
            }
        }
        let drain = async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(Err(e)) = done {
                    tracing::warn!(error = %format!("{e:#}"), "while stopping");
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
            tracing::warn!("listeners did not stop within 5s");
        }
        ttl_task.abort();
        checks_task.abort();
        local_task.abort();
        reap_task.abort();
        session_task.abort();
        self.gossip.shutdown().await;
        // Stops openraft and writes the deferred rows, or a client's replica stream.
        if let Some(server) = &self.server {
            server.shutdown().await.context("stopping Raft")?;
        }
        if let Some(client) = &self.replica {
            client.shutdown();
        }
        result
    }
}

/// The `retry_join` addresses as server RPC addresses (`host:port`).
fn join_addrs(config: &Config) -> Vec<String> {
    config.retry_join.iter().filter_map(|a| crate::rpc::join_addr(a).ok()).collect()
}

/// Joins the LAN gossip pool through the `retry_join` addresses (gossip addresses, or servers'
/// RPC addresses whose `Hello` names their gossip address); retries until one join succeeds or
/// nothing is configured.
async fn join_gossip(
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

/// This agent's catalog node, from the config (`agent::agent_node`).
fn own_node(config: &Config) -> crate::catalog::Node {
    crate::agent::agent_node(&config.node_id, &config.node_name, &config.datacenter, config.bind_addr)
}

/// The agent's node (with Consul's tagged addresses), the `serfHealth` check and, on servers,
/// the `consul` service: what `register_self` proposes and anti-entropy restores when missing.
fn own_registration(config: &Config) -> Registration {
    let node = own_node(config);
    let service =
        config.server.then(|| Service::new(&config.node_name, "consul", "consul", config.ports.server));
    let serf = Check {
        name: "Serf Health Status".into(),
        output: "Agent alive and reachable".into(),
        ..Check::new(&config.node_name, "serfHealth", "", HealthStatus::Passing)
    };
    Registration { node, skip_node_update: false, service, checks: vec![serf] }
}

/// Registers the agent's node, `serfHealth` and, on servers, `consul`. Idempotent: an
/// unchanged registration is a no-op.
async fn register_self(config: &Config, raft: &Consensus) -> anyhow::Result<()> {
    let cmd = Command::Register(own_registration(config));
    propose_ok(raft, cmd).await.context("registering this agent's node")
}

/// Makes the service and check definitions found in config files the agent's config-file
/// records (definitions gone from the files leave) and registers them on this agent's node.
async fn register_config_services(config: &Config, local: &LocalState) -> anyhow::Result<()> {
    let snap = local.snapshots().load_full();
    let Some(node) = snap.catalog.node(&config.node_name).cloned() else {
        anyhow::bail!("invariant: own node {} missing after registration", config.node_name);
    };
    let (whats, mut regs): (Vec<String>, Vec<Registration>) =
        config_registrations(config, &node, &snap.catalog)?.into_iter().unzip();
    local.replace_config(&mut regs);
    for (what, registration) in whats.into_iter().zip(regs) {
        local
            .propose(Command::Register(registration))
            .await
            .with_context(|| format!("registering {what} from the config"))?;
    }
    Ok(())
}

/// The IDs of the checks defined in config files (with services, or `check`/`checks`).
fn config_check_ids(config: &Config, catalog: &crate::catalog::CatalogState) -> anyhow::Result<Vec<String>> {
    let node = own_node(config);
    let registrations = config_registrations(config, &node, catalog)?;
    Ok(registrations.iter().flat_map(|(_, r)| r.checks.iter().map(|c| c.check_id.clone())).collect())
}

/// The registrations of the config files' services, then of their `check`/`checks` (on the
/// node, or on a service: one of those services, else one already in the catalog), each with
/// what it registers for error messages. Existing checks keep their status and output.
fn config_registrations(
    config: &Config,
    node: &crate::catalog::Node,
    catalog: &crate::catalog::CatalogState,
) -> anyhow::Result<Vec<(String, Registration)>> {
    let mut out = Vec::new();
    for def in &config.services {
        // TTL timers are armed by `TtlChecks::run` from the snapshot, so the specs are not needed.
        let (mut registration, _ttl) = def.clone().into_registration(node).context("service definition")?;
        crate::agent::keep_check_state(&mut registration.checks, catalog);
        let name = registration.service.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        out.push((format!("service {name:?}"), registration));
    }
    for spec in &config.check_definitions {
        let service = if spec.service_id.is_empty() {
            None
        } else {
            let from_config = out
                .iter()
                .filter_map(|(_, r)| r.service.as_ref())
                .find(|s| s.id.eq_ignore_ascii_case(&spec.service_id));
            let s = from_config
                .or_else(|| catalog.service(&config.node_name, &spec.service_id).map(|s| &**s))
                .with_context(|| {
                    format!(
                        "check {:?} from the config: ServiceID {:?} does not exist",
                        spec.name, spec.service_id
                    )
                })?;
            Some((s.id.clone(), s.name.clone(), s.tags.clone()))
        };
        let (mut check, _ttl) = spec
            .clone()
            .into_check(
                &config.node_name,
                service.as_ref().map(|(id, name, tags)| (id.as_str(), name.as_str(), tags.as_slice())),
                &spec.name,
                &spec.name,
            )
            .context("check definition")?;
        crate::agent::keep_check_state(std::slice::from_mut(&mut check), catalog);
        let registration =
            Registration { node: node.clone(), skip_node_update: false, service: None, checks: vec![check] };
        out.push((format!("check {:?}", spec.name), registration));
    }
    Ok(out)
}

async fn propose_ok(raft: &Consensus, cmd: Command) -> anyhow::Result<()> {
    Ok(raft.propose(cmd).await?)
}
