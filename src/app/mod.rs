//! Startup and lifecycle: `Config` -> `App::build` (binds sockets, opens Raft, registers the
//! agent) -> `App::run` (serves DNS and HTTP until shutdown, then drains).
//!
//! ```text
//! build: data dir -> zones, TLS -> DNS/HTTP/HTTPS sockets (listen) -> consensus: Raft or replica (cluster)
//!        -> gossip (cluster) -> local state -> own registration (register) -> check runners
//! run:   feeds, cluster tasks, listeners: named services on one TaskTracker (services)
//!        -> wait for the shutdown token (SIGTERM/SIGINT, or a listener that failed)
//!        -> drain: services return (bounded) -> gossip stops -> Raft stops and flushes the
//!           deferred rows (a client: its replica stream stops)
//! ```
//!
//! `App` exposes the addresses it actually bound, so tests start agents on port 0.
//! Nothing here answers queries or applies commands; it only wires the stages together.
//!
//! Invariants: every long-running task is started in `run` through `Services`, by name; one
//! token stops them all; the drain is bounded (`DRAIN_WITHIN`), so a client holding a blocking
//! query cannot keep the agent from stopping.

mod cluster;
mod listen;
mod register;
mod services;
mod wan;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::consensus::Consensus;
use crate::dns::DnsContext;
use crate::health::{CheckRunner, TtlChecks};
use crate::http::ApiState;
use crate::local::LocalState;
use cluster::Side;
use services::Services;

/// How long the services get to return once shutdown began, before Raft stops regardless.
const DRAIN_WITHIN: Duration = Duration::from_secs(1);

/// A built agent: sockets bound, Raft open and leader, own node registered.
pub struct App {
    config: Arc<Config>,
    /// Proposals and the cluster's view; the Raft server or the replica behind it; the server
    /// RPC listener (none on a client agent).
    side: Side,
    dns: Option<listen::DnsSockets>,
    http: listen::HttpListeners,
    https: Option<TcpListener>,
    /// The TLS configurations (HTTPS, server RPC), reloaded on SIGHUP.
    tls: Arc<crate::tls::Tls>,
    dns_context: Arc<ArcSwap<DnsContext>>,
    ttl: Arc<TtlChecks>,
    checks: Arc<CheckRunner>,
    /// This agent's own services and checks, synced to the catalog (anti-entropy).
    local: Arc<LocalState>,
    /// The LAN gossip pool.
    gossip: Arc<crate::gossip::Lan>,
    /// A server's WAN gossip pool (none on a client, or with `ports.serf_wan = -1`).
    wan: Option<Arc<crate::gossip::Wan>>,
    /// Whether this agent's own registration still has to happen (it needs a cluster leader).
    register_later: bool,
    /// Reload requests from `PUT /v1/agent/reload`; the binary reloads as on SIGHUP.
    reload_requests: Arc<tokio::sync::Notify>,
    /// The token resolver: the ACL tables with `acl.enabled`, else allow-all.
    acl: Arc<dyn crate::acl::Resolve>,
    /// The same resolver with `acl.enabled`: it keeps the view DNS answers under.
    acl_resolver: Option<Arc<crate::acl_state::AclResolver>>,
    /// `--dev` data directory, removed when the app is dropped.
    _dev_dir: Option<tempfile::TempDir>,
}

/// Swaps in reloadable settings (today: `dns_config`, domains, recursors, static zones, TLS
/// certificates) without a restart.
#[derive(Clone)]
pub struct Reloader {
    dns_context: Arc<ArcSwap<DnsContext>>,
    local: Arc<LocalState>,
    tls: Arc<crate::tls::Tls>,
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
                listen::log_zones(&zones);
                Arc::new(zones)
            }
            None => Arc::default(),
        };
        let fresh = DnsContext::from_config(config).with_zones(zones);
        self.dns_context.rcu(|cur| Arc::new(DnsContext { generation: cur.generation + 1, ..fresh.clone() }));
        // New handshakes use the new certificates; open connections keep theirs.
        if let Err(e) = self.tls.reload(config) {
            tracing::error!(error = %e, "TLS certificates not reloaded; the previous ones stay in use");
        }
    }

    /// Registers the service definitions of `config` again (new and changed ones take
    /// effect; an unchanged one is a no-op). A definition removed from the files leaves the
    /// agent's local state, and so the catalog, as in Consul.
    ///
    /// The check runner keeps the script-check settings and the set of config-file check IDs
    /// it started with: a script check first added to the files by a reload runs only with
    /// `enable_script_checks` until the next restart.
    pub async fn register_services(&self, config: &Config) -> anyhow::Result<()> {
        register::register_config_services(config, &self.local).await
    }
}

impl App {
    /// Prepares the data dir, binds every listener, opens Raft (restoring the catalog), and
    /// registers this agent's node and the `consul` service as Consul does.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (mut config, dev_dir) = prepare_data_dir(config)?;
        // Before binding anything, so a broken zone file fails start-up at once.
        let zones = listen::load_zones(&config)?;
        let tls = listen::load_tls(&config)?;
        let (dns, http) = listen::bind_front(&config).await?;
        let https = listen::bind_https(&config).await?;
        listen::record_bound_ports(&mut config, dns.as_ref(), &http, https.as_ref());
        let side = cluster::open_consensus(&mut config, &tls).await?;
        let (gossip, wan) = cluster::start_gossip(&mut config, &side).await?;
        let config = Arc::new(config);
        // A single server is leader now; in a cluster (and on a client agent) the registration
        // waits for a leader (`run`), so the listeners come up first.
        let register_later = !config.server || config.bootstrap_expect != 1;
        // The config-file check IDs are known before any registration (which in a cluster
        // waits for a leader), so the runner knows from its first probe which script checks
        // came from config files.
        let (local, local_check_ids) = open_local_state(&config, &side.consensus)?;
        if !register_later {
            register::register_self(&config, &side.consensus).await?;
            register::register_config_services(&config, &local).await?;
        }
        let snapshots = side.consensus.snapshots();
        let ttl = TtlChecks::new(local.clone(), snapshots.clone(), config.node_name.clone());
        let checks = CheckRunner::new(
            local.clone(),
            snapshots,
            config.node_name.clone(),
            config.checks.clone(),
            local_check_ids,
        );
        let dns_context = Arc::new(ArcSwap::from_pointee(DnsContext::from_config(&config).with_zones(zones)));
        let acl_resolver = build_acl(&config, &side.consensus)?;
        let acl: Arc<dyn crate::acl::Resolve> = match &acl_resolver {
            Some(r) => r.clone(),
            None => Arc::new(crate::acl::Disabled::new()),
        };
        Ok(Self {
            acl,
            acl_resolver,
            config,
            side,
            dns,
            http,
            https,
            tls,
            dns_context,
            ttl,
            checks,
            local,
            gossip,
            wan,
            register_later,
            reload_requests: Arc::new(tokio::sync::Notify::new()),
            _dev_dir: dev_dir,
        })
    }

    /// Where DNS listens (UDP and TCP share the port), if enabled.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns.as_ref().and_then(|(u, _)| u.first()?.local_addr().ok())
    }

    /// Where the HTTP API listens over TCP (the first of `addresses.http`), if it does.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.tcp.first().and_then(|l| l.local_addr().ok())
    }

    /// The Unix sockets the HTTP API listens on (`addresses.http`'s `unix://` entries).
    pub fn http_sockets(&self) -> Vec<std::path::PathBuf> {
        self.http.unix.iter().map(|s| s.path.clone()).collect()
    }

    /// Where the HTTPS API listens, if enabled.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the server RPC (Raft) listens.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.side.rpc.as_ref()?.local_addr().ok()
    }

    /// Where WAN gossip listens (TCP and UDP), on a server with a WAN pool.
    pub fn serf_wan_addr(&self) -> Option<SocketAddr> {
        self.wan.as_deref().map(crate::gossip::Membership::local_addr)
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
        Reloader { dns_context: self.dns_context.clone(), local: self.local.clone(), tls: self.tls.clone() }
    }

    /// Serves until `shutdown` fires (or a listener fails, which fires it), then drains the
    /// services, stops gossip and stops Raft cleanly. The error is the listener's failure.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let services = Services::new(shutdown);
        let sessions = crate::session::SessionTimers::new();
        self.start_feeds(&services, &sessions);
        self.start_cluster(&services);
        self.start_listeners(&services, sessions);
        let result = services.wait().await;
        services.drain(DRAIN_WITHIN).await;
        self.gossip.shutdown().await;
        if let Some(wan) = &self.wan {
            wan.shutdown().await;
        }
        // Stops openraft and writes the deferred rows, or a client's replica stream.
        if let Some(server) = &self.side.server {
            server.shutdown().await.context("stopping Raft")?;
        }
        if let Some(client) = &self.side.replica {
            client.shutdown();
        }
        result
    }

    /// The feeds: the SOA serial clock, check runners and TTL timers, anti-entropy, the
    /// critical-check reaper, session timers, and the agent's own registration once led.
    fn start_feeds(&self, services: &Services, sessions: &Arc<crate::session::SessionTimers>) {
        let stop = services.stop();
        services.spawn_feed("SOA serial clock", refresh_serial(self.dns_context.clone(), stop.clone()));
        services.spawn_feed("TTL check timers", self.ttl.clone().run(stop.clone()));
        services.spawn_feed("check runner", self.checks.clone().run(stop.clone()));
        services.spawn_feed("anti-entropy", self.local.clone().run(stop.clone()));
        let reap = crate::health::reap::run(
            self.local.clone(),
            self.side.consensus.snapshots(),
            self.config.node_name.clone(),
            self.config.checks.clone(),
            stop.clone(),
        );
        services.spawn_feed("critical-check reaper", reap);
        services
            .spawn_feed("session timers", sessions.clone().run(self.side.consensus.clone(), stop.clone()));
        if let Some(resolver) = self.acl_resolver.clone() {
            let follow =
                crate::acl_state::follow_dns_view(resolver, self.side.consensus.snapshots(), stop.clone());
            services.spawn_feed("ACL view for DNS", follow);
        }
        if self.config.acl.enabled && self.config.server {
            let duties = crate::acl_state::run_leader_duties(
                self.side.consensus.clone(),
                self.config.acl.tokens.master.clone(),
                stop.clone(),
            );
            services.spawn_feed("ACL leader duties", duties);
        }
        if self.register_later {
            let (config, consensus, local) =
                (self.config.clone(), self.side.consensus.clone(), self.local.clone());
            services
                .spawn_feed("own registration", register::register_when_led(config, consensus, local, stop));
        }
    }

    /// The cluster's tasks: a client's replica stream, the gossip join through `retry_join`,
    /// gossip reconciliation (leader only) and, on a server, cluster forming.
    fn start_cluster(&self, services: &Services) {
        let stop = services.stop();
        if let Some(client) = self.side.replica.clone() {
            let stop = stop.clone();
            services.spawn_feed("replica stream", async move {
                tokio::select! {
                    () = client.run() => {}
                    () = stop.cancelled() => {}
                }
            });
        }
        let joins = cluster::join_addrs(&self.config);
        let pool = self.side.consensus.pool();
        let retry_join = crate::rpc::discovery::RetryJoin::new(joins.clone(), pool.clone());
        services
            .spawn_feed("gossip join", cluster::join_gossip(self.gossip.clone(), retry_join, stop.clone()));
        if let Some(wan) = self.wan.clone() {
            let joins = self.config.wan.clone();
            services.spawn_feed("WAN gossip join", wan::join(wan.clone(), joins, stop.clone()));
            let dc = self.config.datacenter.clone();
            services.spawn_feed("WAN flood join", wan::flood(self.gossip.clone(), wan, dc, stop.clone()));
        }
        let reconcile = crate::gossip::reconcile::run(
            self.gossip.clone(),
            self.side.consensus.clone(),
            self.config.cleanup_dead_servers,
            stop.clone(),
        );
        services.spawn_feed("gossip reconcile", reconcile);
        let coordinates = crate::gossip::coordinate::run(
            self.gossip.clone(),
            self.side.consensus.clone(),
            self.config.node_name.clone(),
            stop.clone(),
        );
        services.spawn_feed("coordinate updates", coordinates);
        // A client agent has no Raft node to put in a cluster. Servers found by gossip (e.g.
        // after `cairn join`) count too.
        if let Some(server) = self.side.server.clone() {
            let discovery = crate::gossip::discovery::GossipDiscovery::new(self.gossip.clone(), joins, pool);
            let form = crate::raft::cluster::form(server, discovery, self.config.bootstrap_expect, stop);
            services.spawn_feed("cluster forming", form);
        }
    }

    /// The listeners: server RPC (servers only), DNS and HTTP; each serves until the token.
    fn start_listeners(&mut self, services: &Services, sessions: Arc<crate::session::SessionTimers>) {
        let stop = services.stop();
        let snapshots = self.side.consensus.snapshots();
        if let (Some(listener), Some(server)) = (self.side.rpc.take(), self.side.server.clone()) {
            let dispatch = crate::serve_rpc::Dispatch {
                raft: server,
                serf_addr: Some(self.serf_addr()),
                sessions: sessions.clone(),
                gossip: Some(self.gossip.clone()),
                auth: self.side.rpc_auth.clone(),
                acl: self.acl.clone(),
                data_dir: self.config.data_dir.clone(),
            };
            let stop = stop.clone();
            services.spawn_listener("server RPC", async move {
                crate::serve_rpc::serve(listener, dispatch, stop).await.context("server RPC")
            });
        }
        if let Some((udp, tcp)) = self.dns.take() {
            let (ctx, snaps, stop) = (self.dns_context.clone(), snapshots.clone(), stop.clone());
            let acl = self.acl_resolver.as_ref().map(|r| r.dns_view());
            services.spawn_listener("DNS", async move {
                crate::dns::serve(udp, tcp, ctx, snaps, acl, stop).await.context("DNS server")
            });
        }
        let state = ApiState {
            config: self.config.clone(),
            snapshots,
            consensus: self.side.consensus.clone(),
            replica: self.side.replica.clone(),
            local: self.local.clone(),
            ttl: self.ttl.clone(),
            checks: self.checks.clone(),
            sessions,
            gossip: Some(self.gossip.clone()),
            wan: self.wan.clone(),
            shutdown: stop.clone(),
            reload: self.reload_requests.clone(),
            acl: self.acl.clone(),
            enable_key_list_policy: self.config.acl.enable_key_list_policy,
            stability: Arc::default(),
        };
        for listener in self.http.tcp.drain(..) {
            let (router, stop) = (crate::http::router(state.clone()), stop.clone());
            services.spawn_listener("HTTP", async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .context("HTTP server")
            });
        }
        // The socket files stay in `self.http.unix` (removed when the App is dropped).
        for listener in self.http.unix.iter_mut().filter_map(|s| s.listener.take()) {
            let (router, stop) = (crate::http::router(state.clone()), stop.clone());
            services.spawn_listener("HTTP (unix socket)", async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .context("HTTP server (unix socket)")
            });
        }
        if let Some(listener) = self.https.take() {
            let (router, tls) = (crate::http::router(state), self.tls.clone());
            services.spawn_listener("HTTPS", async move {
                crate::http::serve_https(listener, router, tls, stop).await.context("HTTPS server")
            });
        }
    }
}

/// The token resolver (`None` with ACLs off: requests then resolve to allow-all). With ACLs on, forwarded writes carry the
/// tokens it holds, and on a client agent it applies `acl.down_policy` once its replica has
/// heard from no server for `acl.token_ttl`.
fn build_acl(
    config: &Config,
    consensus: &Consensus,
) -> anyhow::Result<Option<Arc<crate::acl_state::AclResolver>>> {
    if !config.acl.enabled {
        return Ok(None);
    }
    let (node, dc, data) = (&config.node_name, &config.datacenter, &config.data_dir);
    let mut resolver =
        crate::acl_state::AclResolver::load(consensus.snapshots(), &config.acl, node, dc, data)
            .map_err(|e| anyhow::anyhow!("ACL tokens: {e}"))?;
    if !config.server {
        resolver = resolver.with_down_policy(consensus.clone(), config.acl.down_policy, config.acl.token_ttl);
    }
    let resolver = Arc::new(resolver);
    consensus.set_credentials(resolver.clone());
    Ok(Some(resolver))
}

/// Creates the `--dev` temporary data dir when none is set, creates the data dir, and reads
/// (or creates) the node ID kept there.
fn prepare_data_dir(mut config: Config) -> anyhow::Result<(Config, Option<tempfile::TempDir>)> {
    let dev_dir = if config.dev && config.data_dir.as_os_str().is_empty() {
        let dir =
            tempfile::Builder::new().prefix("cairn-dev-").tempdir().context("creating the -dev data dir")?;
        config.data_dir = dir.path().to_path_buf();
        Some(dir)
    } else {
        None
    };
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    if config.node_id.is_empty() {
        config.node_id = cluster::node_id(&config.data_dir)?;
    }
    Ok((config, dev_dir))
}

/// The agent's local state: config-file records, then the persisted API ones, before the
/// first sync; and the IDs of the checks the config files define (the check runner lets
/// `enable_local_script_checks` run only those).
fn open_local_state(
    config: &Arc<Config>,
    consensus: &Consensus,
) -> anyhow::Result<(Arc<LocalState>, Vec<String>)> {
    let local = LocalState::new(
        consensus.clone(),
        register::own_registration(config),
        Some(&config.data_dir),
        config.anti_entropy_interval,
    );
    let snap = consensus.snapshots().load_full();
    let node =
        snap.catalog.node(&config.node_name).map_or_else(|| register::own_node(config), |n| (**n).clone());
    let mut regs: Vec<_> =
        register::config_registrations(config, &node, &snap.catalog)?.into_iter().map(|(_, r)| r).collect();
    let check_ids = regs.iter().flat_map(|r| r.checks.iter().map(|c| c.check_id.clone())).collect();
    local.replace_config(&mut regs);
    local.load(&snap.catalog).context("loading the agent's services and checks")?;
    Ok((local, check_ids))
}

/// Consul's SOA serial is the current Unix time; the DNS path reads no clock, so the serial is
/// refreshed here once a second. `rcu` keeps a concurrent SIGHUP reload from being lost.
async fn refresh_serial(dns_context: Arc<ArcSwap<DnsContext>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                let serial = crate::dns::unix_serial();
                dns_context.rcu(|cur| Arc::new((**cur).clone().with_serial(serial)));
            }
        }
    }
}
