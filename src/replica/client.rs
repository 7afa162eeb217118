//! The client agent's side: the replica stream, and writes and reads forwarded to servers.
//!
//! Input: servers from gossip (alive members with the server role, this datacenter) and the
//! `retry_join` addresses; the frames of one server's stream. Output: `CatalogSnapshot`s
//! published to this agent's `SnapshotHandle`, and the answers of forwarded writes.
//!
//! Invariants: only `run` publishes, in index order; entries are applied with the pure
//! `catalog::apply::apply`, so the replica equals the server's state at each index; a gap or a
//! silent server (no frame for `SILENCE`) closes the stream and another server is asked from
//! the last applied index. A forwarded write is sent again only when it surely was not
//! delivered (connect failed) or the servers answered `NoLeader` (nothing was appended).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogState;
use crate::catalog::{Command, CommandResponse};
use crate::consensus::{BoxFuture, Participant, ProposeError, Renewal};
use crate::gossip::{Lan, Membership as _};
use crate::raft::cluster::Contact;
use crate::rpc::{CallError, Frame, Heartbeat, Pool, Remote, Request, Response, Secret};
use crate::snapshot::{CatalogSnapshot, SnapshotHandle};

/// A stream with no frame for this long (heartbeats come every second) is given up.
const SILENCE: Duration = Duration::from_secs(3);
/// How long a forwarded write or read index may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write keeps trying servers while none knows a leader (an election).
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Pause between rounds over the servers.
const RETRY: Duration = Duration::from_millis(200);

/// Counters of the replica stream, for `/v1/agent/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Full catalogs received.
    pub dumps: AtomicU64,
    /// Streams resumed from the last applied index without a dump.
    pub resumes: AtomicU64,
    /// Streams opened.
    pub connects: AtomicU64,
    /// Entries applied.
    pub entries: AtomicU64,
}

/// What the replica last heard about the cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    /// The server streaming to this replica.
    pub server: Option<String>,
    /// Its last heartbeat.
    pub heartbeat: Heartbeat,
}

/// A client agent's replica and forwarder.
pub(crate) struct Client {
    snapshots: Arc<SnapshotHandle>,
    pool: Arc<Pool>,
    retry_join: Vec<String>,
    gossip: OnceLock<Arc<Lan>>,
    status: Mutex<Status>,
    contact: Contact,
    /// Rotates the first server tried, so clients spread over the servers.
    next: AtomicUsize,
    stats: Stats,
    stop: CancellationToken,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("retry_join", &self.retry_join).finish_non_exhaustive()
    }
}

/// The leader's address and the voters, from the last heartbeat.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    /// Whether the server knows a leader.
    pub known_leader: bool,
    /// The leader's RPC address.
    pub leader_addr: Option<String>,
    /// The Raft configuration.
    pub servers: Vec<crate::rpc::RaftServer>,
    /// Its log index.
    pub membership_index: u64,
}

impl Client {
    /// A replica that starts empty (index 0) and finds servers at `retry_join` (server RPC
    /// addresses) and, once `set_gossip` is called, among the gossip members.
    /// Its connections prove what `auth` asks.
    pub(crate) fn new(retry_join: Vec<String>, auth: crate::rpc::Auth) -> Arc<Self> {
        let seed = std::process::id() as usize;
        Arc::new(Self {
            snapshots: Arc::new(SnapshotHandle::default()),
            pool: Arc::new(Pool::new(auth)),
            retry_join,
            gossip: OnceLock::new(),
            status: Mutex::new(Status::default()),
            contact: Contact::new(),
            next: AtomicUsize::new(seed),
            stats: Stats::default(),
            stop: CancellationToken::new(),
        })
    }

    /// Lets server discovery use the gossip pool.
    pub(crate) fn set_gossip(&self, gossip: Arc<Lan>) {
        let _ = self.gossip.set(gossip);
    }

    /// The snapshot handle the replica publishes to.
    pub(crate) fn snapshots(&self) -> Arc<SnapshotHandle> {
        self.snapshots.clone()
    }

    /// Connections to the servers.
    pub(crate) fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    /// The stream's counters.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The server streaming to this replica and its last heartbeat.
    pub(crate) fn stream_status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The cluster as the last heartbeat told it.
    pub(crate) fn status(&self) -> View {
        let hb = self.stream_status().heartbeat;
        View {
            known_leader: hb.known_leader,
            leader_addr: hb.leader_addr,
            servers: hb.servers,
            membership_index: hb.membership_index,
        }
    }

    /// Milliseconds since the stream last delivered a frame, plus the server's own time since
    /// it heard from the leader; `u64::MAX`-free: 0 before the first frame.
    pub(crate) fn last_contact_ms(&self) -> u64 {
        let server = self.stream_status().heartbeat.last_contact_ms;
        self.contact.millis_since().saturating_add(server)
    }

    /// How many Raft indexes the replica is behind its server's last reported applied index.
    pub(crate) fn lag_index(&self) -> u64 {
        let server = self.stream_status().heartbeat.applied_index;
        server.saturating_sub(self.snapshots.load().index)
    }

    /// Stops the stream.
    pub(crate) fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Server RPC addresses to try: the leader first (when known), then the gossip members
    /// with the server role, then `retry_join`, starting at a rotating offset.
    async fn servers(&self) -> Vec<String> {
        let mut addrs: Vec<String> = Vec::new();
        if let Some(g) = self.gossip.get() {
            let dc = g.local_meta().dc.clone();
            for m in g.members().await {
                if let Some(rpc) = m.alive_server_rpc(&dc).filter(|a| !addrs.iter().any(|x| x == a)) {
                    addrs.push(rpc.to_owned());
                }
            }
        }
        for a in &self.retry_join {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        if !addrs.is_empty() {
            let n = self.next.fetch_add(1, Ordering::Relaxed) % addrs.len();
            addrs.rotate_left(n);
        }
        addrs
    }

    /// Servers for a request that the leader answers: the leader first when known.
    async fn servers_leader_first(&self) -> Vec<String> {
        let mut addrs = self.servers().await;
        if let Some(leader) = self.status().leader_addr {
            addrs.retain(|a| *a != leader);
            addrs.insert(0, leader);
        }
        addrs
    }

    /// Sends `req` to a server, failing over on connection errors and waiting out an election
    /// (`NoLeader`) for at most `LEADER_WAIT`. `no_leader` tells a `NoLeader` answer apart.
    async fn call(
        &self,
        req: &Request,
        no_leader: impl Fn(&Response) -> bool,
    ) -> Result<(String, Response), ProposeError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut last_err = ProposeError::NoLeader;
        loop {
            for addr in self.servers_leader_first().await {
                match self.pool.call(&addr, req, FORWARD_TIMEOUT).await {
                    Ok(resp) if no_leader(&resp) => last_err = ProposeError::NoLeader,
                    Ok(resp) => return Ok((addr, resp)),
                    // Nothing was delivered: another server may take it.
                    Err(CallError::Connect { .. }) => last_err = ProposeError::NoLeader,
                    // Possibly delivered: a write is never repeated behind the caller's back.
                    Err(e) => return Err(ProposeError::Raft(e.to_string())),
                }
            }
            if Instant::now() >= deadline || self.stop.is_cancelled() {
                return Err(last_err);
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Forwards `cmd` to a server (which relays it to the leader) and waits (bounded) until
    /// the replica has applied it, so a read after the write on this agent sees it.
    /// With ACLs on it carries `token`, which the server checks the write against.
    pub(crate) async fn propose(
        &self,
        cmd: Command,
        token: Option<Secret>,
    ) -> Result<CommandResponse, ProposeError> {
        let req = Request::forward(cmd, token);
        let (addr, resp) = self.call(&req, |r| matches!(r, Response::Forward(Err(Remote::NoLeader)))).await?;
        match resp {
            Response::Forward(Ok((resp, index))) => {
                crate::raft::cluster::catch_up(&self.snapshots, index).await;
                Ok(resp)
            }
            Response::Forward(Err(e @ (Remote::Invalid(_) | Remote::Denied(_)))) => Err(e.into()),
            Response::Forward(Err(e)) => Err(ProposeError::Raft(e.to_string())),
            _ => Err(ProposeError::Raft(format!("forward to {addr}: unexpected response"))),
        }
    }

    /// `?consistent`: asks a server for the leader's read index and waits until the replica
    /// reached it.
    pub(crate) async fn read_barrier(&self) -> Result<(), ProposeError> {
        let (addr, resp) = self
            .call(&Request::ReadIndex, |r| matches!(r, Response::ReadIndex(Err(Remote::NoLeader))))
            .await?;
        let index = match resp {
            Response::ReadIndex(Ok(i)) => i,
            Response::ReadIndex(Err(e)) => return Err(ProposeError::Raft(e.to_string())),
            _ => return Err(ProposeError::Raft(format!("read index from {addr}: unexpected response"))),
        };
        if crate::raft::cluster::catch_up(&self.snapshots, index).await {
            Ok(())
        } else {
            Err(ProposeError::Raft(format!("this agent's replica did not catch up to index {index} in time")))
        }
    }

    /// Tells the leader (through a server) that session `id` was renewed here.
    pub(crate) async fn forward_session_renew(&self, id: &str, ttl: Duration) -> Result<(), ProposeError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let req = Request::SessionRenew { id: id.to_owned(), ttl_ms };
        match self.call(&req, |r| matches!(r, Response::SessionRenew(Err(Remote::NoLeader)))).await? {
            (_, Response::SessionRenew(Ok(()))) => Ok(()),
            (_, Response::SessionRenew(Err(e))) => Err(ProposeError::Raft(e.to_string())),
            (addr, _) => Err(ProposeError::Raft(format!("session renew at {addr}: unexpected response"))),
        }
    }

    /// Asks the servers to remove server `id` from the Raft configuration.
    pub(crate) async fn remove_server(&self, id: u64) -> Result<(), Remote> {
        let req = Request::Remove { node_id: id };
        match self.call(&req, |r| matches!(r, Response::Remove(Err(Remote::NoLeader)))).await {
            Ok((_, Response::Remove(r))) => r,
            Ok(_) => Err(Remote::Failed("remove: unexpected response".into())),
            Err(ProposeError::NoLeader) => Err(Remote::NoLeader),
            Err(e) => Err(Remote::Failed(e.to_string())),
        }
    }

    /// Follows one server after another until `shutdown`: subscribes from the last applied
    /// index, applies what comes, and moves to another server when the stream ends.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut replica = Replica::default();
        loop {
            for addr in self.servers().await {
                let follow = self.follow(&addr, &mut replica);
                tokio::select! {
                    () = self.stop.cancelled() => return,
                    r = follow => if let Err(e) = r {
                        tracing::info!(server = %addr, index = replica.index, error = %e, "replica stream ended; trying another server");
                    },
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    async fn follow(&self, addr: &str, replica: &mut Replica) -> Result<(), String> {
        let mut stream = self.pool.connect(addr).await.map_err(|e| e.to_string())?;
        let from_index = replica.index;
        crate::rpc::write_frame(&mut stream, &Request::Subscribe { from_index })
            .await
            .map_err(|e| e.to_string())?;
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.status.lock() {
            s.server = Some(addr.to_owned());
        }
        let mut first_data = true;
        loop {
            let frame =
                match tokio::time::timeout(SILENCE, crate::rpc::read_frame::<Response>(&mut stream)).await {
                    Err(_) => return Err(format!("no frame for {SILENCE:?}")),
                    Ok(Err(e)) => return Err(e.to_string()),
                    Ok(Ok(None)) => return Err("closed by the server".into()),
                    Ok(Ok(Some(Response::Subscribe(frame)))) => frame,
                    Ok(Ok(Some(_))) => return Err("unexpected response".into()),
                };
            self.contact.note();
            match frame {
                Frame::Heartbeat(hb) => {
                    if let Ok(mut s) = self.status.lock() {
                        s.heartbeat = hb;
                    }
                }
                Frame::Dump { index, catalog } => {
                    // A server behind this replica would take it back in time: ask another.
                    if index < replica.index {
                        return Err(format!("server is behind this replica ({index} < {})", replica.index));
                    }
                    first_data = false;
                    replica.state = CatalogState::from_dump(*catalog);
                    replica.index = index;
                    self.stats.dumps.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(server = %addr, index, "replica loaded a full catalog");
                    self.publish(replica);
                }
                Frame::Entries(entries) => {
                    if first_data {
                        first_data = false;
                        if from_index > 0 {
                            self.stats.resumes.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(server = %addr, index = from_index, "replica stream resumed");
                        }
                    }
                    let before = replica.index;
                    let applied = replica.apply(entries);
                    if replica.index != before {
                        self.stats.entries.fetch_add(replica.index - before, Ordering::Relaxed);
                        self.publish(replica);
                    }
                    applied?;
                }
            }
        }
    }

    fn publish(&self, replica: &Replica) {
        self.snapshots.publish(CatalogSnapshot { index: replica.index, catalog: replica.state.clone() });
    }
}

/// A client agent's half of the consensus handle: writes, read indexes and session renewals
/// are forwarded to the servers; the cluster's view is the one the last heartbeat carried.
impl Participant for Client {
    fn propose(
        &self,
        cmd: Command,
        token: Option<Secret>,
    ) -> BoxFuture<'_, Result<CommandResponse, ProposeError>> {
        Box::pin(Self::propose(self, cmd, token))
    }

    fn read_barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(Self::read_barrier(self))
    }

    /// Never the leader: the leader re-arms its own timer (`Ok(false)`).
    fn forward_session_renew<'a>(&'a self, id: &'a str, ttl: Duration) -> Renewal<'a> {
        Box::pin(async move { Self::forward_session_renew(self, id, ttl).await.map(|()| false) })
    }

    /// A client has nothing to hand over.
    fn leave_cluster(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove_server(&self, id: u64) -> BoxFuture<'_, Result<(), Remote>> {
        Box::pin(Self::remove_server(self, id))
    }

    fn is_leader(&self) -> bool {
        false
    }

    fn known_leader(&self) -> bool {
        self.status().known_leader
    }

    fn leader_addr(&self) -> Option<String> {
        self.status().leader_addr
    }

    fn peer_addrs(&self) -> Vec<String> {
        self.status().servers.into_iter().filter(|s| s.voter).map(|s| s.addr).collect()
    }

    fn last_contact_ms(&self) -> u64 {
        Self::last_contact_ms(self)
    }

    fn servers(&self) -> Vec<crate::rpc::RaftServer> {
        self.status().servers
    }

    fn membership_index(&self) -> u64 {
        self.status().membership_index
    }

    /// A client agent has no Raft node id (0, as in its gossip meta).
    fn node_id(&self) -> u64 {
        0
    }

    fn snapshots(&self) -> Arc<SnapshotHandle> {
        Self::snapshots(self)
    }

    fn pool(&self) -> Arc<Pool> {
        Self::pool(self)
    }
}

/// The replica's state: the catalog at `index`. Only `Self::run` holds it.
#[derive(Debug, Default)]
pub(crate) struct Replica {
    pub(crate) state: CatalogState,
    pub(crate) index: u64,
}

impl Replica {
    /// Applies a run of entries that must continue at `index + 1` (entries at or before it
    /// are skipped); a gap is an error. Returns how many were applied.
    pub(crate) fn apply(&mut self, entries: Vec<(u64, Option<Command>)>) -> Result<u64, String> {
        let mut changes = Vec::new();
        let mut applied = 0;
        for (index, cmd) in entries {
            if index <= self.index {
                continue;
            }
            if index != self.index + 1 {
                return Err(format!("gap in the stream: {} after {}", index, self.index));
            }
            if let Some(cmd) = cmd {
                changes.clear();
                crate::catalog::apply::apply(&mut self.state, index, &cmd, &mut changes);
            }
            self.index = index;
            applied += 1;
        }
        Ok(applied)
    }
}
