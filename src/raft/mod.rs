//! CONSENSUS: openraft 0.9 (`storage-v2`) wiring for the catalog.
//!
//! WRITE  HTTP -> `Consensus::propose(Command)` -> openraft log (LMDB, synced, batched)
//!        -> commit -> `state_machine` applies the batch in memory (its rows ride along with
//!        the next log append: `store::Deferred`) -> `SnapshotHandle::publish` -> DNS sees it.
//!
//! Files: `batch` (group commit of concurrent proposals), `log_store` (RaftLogStorage
//! on LMDB), `state_machine` (RaftStateMachine on LMDB + publish), `network` (RaftNetwork).
//! The log payload (`catalog::Command`) and the pure transition (`catalog::apply`) live in
//! the catalog they transform.
//!
//! Input: `RaftOptions` (data dir, node id, Raft address) and proposed `Command`s.
//! Output: a running openraft node (`Server`, this server's `consensus::Participant`) and the
//! `SnapshotHandle` it publishes to.
//! Invariants: `open` publishes the catalog stored in LMDB before Raft starts; `propose`
//! returns only after the command is committed (fsynced log) and applied (published; its
//! rows reach LMDB with a later commit, or are re-applied from the log after a crash).

mod batch;
pub(crate) mod cluster;
pub(crate) mod feed;
pub(crate) mod log_store;
pub(crate) mod network;
pub(crate) mod state_machine;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError as OpenRaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};

use crate::catalog::{Command, CommandResponse};
use crate::consensus::{BoxFuture, Participant, ProposeError, Renewal};

use crate::snapshot::SnapshotHandle;
use crate::store::{Store, StoreError};

pub(crate) use crate::rpc::TypeConfig;

/// A Raft log entry of the catalog.
pub(crate) type Entry = openraft::Entry<TypeConfig>;
/// The openraft node.
pub(crate) type Raft = openraft::Raft<TypeConfig>;

/// How long `open` waits for this node to become leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Why the Raft node could not be opened or shut down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RaftError {
    /// The LMDB store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// openraft rejected the configuration.
    #[error("raft config: {0}")]
    Config(String),
    /// openraft failed fatally (start, initialize, shutdown).
    #[error("raft: {0}")]
    Raft(String),
    /// This node did not become leader within the bounded wait.
    #[error("no leader elected within {0:?}")]
    NoLeader(Duration),
}

/// Where and as whom this server runs Raft.
#[derive(Debug, Clone)]
pub(crate) struct RaftOptions {
    /// Data directory; the LMDB environment lives in `<data_dir>/raft/`.
    pub data_dir: PathBuf,
    /// This server's Raft node id.
    pub node_id: u64,
    /// This server's Raft RPC address, recorded in the membership.
    pub raft_addr: SocketAddr,
    /// Servers to wait for before bootstrapping: 1 initialises a single-voter cluster at once;
    /// anything else leaves forming or joining the cluster to `cluster::form`.
    pub bootstrap_expect: u32,
    /// Log entries since the last snapshot that trigger a new one.
    pub snapshot_threshold: u64,
    /// Log entries kept behind a snapshot.
    pub trailing_logs: u64,
    /// What this server proves on every server-RPC connection it opens.
    pub rpc_auth: crate::rpc::Auth,
}

/// openraft configuration: timings for servers on one LAN.
fn raft_config(opts: &RaftOptions) -> Result<Config, RaftError> {
    Config {
        cluster_name: "cairn".to_owned(),
        // A follower starts an election `election_timeout_max` (openraft's leader lease) plus
        // a random election timeout after the leader's last heartbeat: 1.8-2.4 s.
        heartbeat_interval: 200,
        election_timeout_min: 600,
        election_timeout_max: 1200,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_threshold),
        max_in_snapshot_log_to_keep: opts.trailing_logs,
        purge_batch_size: 1,
        // A server in a cluster campaigns only once the others confirmed it is still a voter
        // (`cluster::form`), so one removed while it was down cannot disrupt the leader.
        enable_elect: opts.bootstrap_expect == 1,
        ..Config::default()
    }
    .validate()
    .map_err(|e| RaftError::Config(e.to_string()))
}

/// Opens the store, publishes the stored catalog and starts openraft. With
/// `bootstrap_expect == 1` it initialises a single-voter membership `{node_id: raft_addr}` on a
/// fresh store and waits (bounded) for leadership; otherwise the node waits for
/// `cluster::form` (or an existing membership in its log) to make it part of a cluster.
pub(crate) async fn open(opts: RaftOptions) -> Result<Arc<Server>, RaftError> {
    let dir = opts.data_dir.join("raft");
    // Off the async workers: opening creates files and commits a transaction.
    let store = crate::store::blocking(move || Store::open(&dir)).await?;
    let snapshots = Arc::new(SnapshotHandle::default());
    let mut sm = state_machine::StateMachine::open(store.clone(), snapshots.clone())?;
    let feed = sm.feed();
    let log = log_store::LogStore::new(store.clone());
    let config = Arc::new(raft_config(&opts)?);
    let pool = Arc::new(crate::rpc::Pool::new(opts.rpc_auth.clone()));
    let raft = Raft::new(opts.node_id, config, network::NetworkFactory::new(pool.clone()), log, sm)
        .await
        .map_err(|e| RaftError::Raft(e.to_string()))?;
    let proposer = batch::Proposer::spawn(raft.clone(), opts.node_id, snapshots.clone(), pool.clone());
    let flusher = tokio_util::sync::CancellationToken::new();
    tokio::spawn(flush_idle_deferred(store.clone(), flusher.clone()));
    let server = Arc::new(Server {
        raft,
        snapshots,
        node_id: opts.node_id,
        raft_addr: opts.raft_addr.to_string(),
        proposer,
        pool,
        contact: Arc::new(cluster::Contact::new()),
        feed,
        store: store.clone(),
        flusher: flusher.clone(),
    });
    if opts.bootstrap_expect != 1 {
        return Ok(server);
    }
    let raft = &server.raft;
    let members = BTreeMap::from([(opts.node_id, BasicNode::new(opts.raft_addr.to_string()))]);
    match raft.initialize(members).await {
        Ok(()) | Err(OpenRaftError::APIError(InitializeError::NotAllowed(_))) => {}
        Err(e) => return Err(RaftError::Raft(e.to_string())),
    }

    let node_id = opts.node_id;
    raft.wait(Some(LEADER_WAIT))
        .metrics(|m| m.current_leader == Some(node_id), "this node is leader")
        .await
        .map_err(|_| RaftError::NoLeader(LEADER_WAIT))?;
    Ok(server)
}

/// A server's Raft node and what goes with it.
pub(crate) struct Server {
    raft: Raft,
    snapshots: Arc<SnapshotHandle>,
    node_id: u64,
    /// This server's RPC address (as recorded in the membership).
    raft_addr: String,
    /// Groups concurrent proposals into one log entry (group commit); forwards them to the
    /// leader on a follower.
    proposer: batch::Proposer,
    /// Connections to the other servers (Raft, forwarding).
    pool: Arc<crate::rpc::Pool>,
    /// When the leader was last heard from (followers).
    contact: Arc<cluster::Contact>,
    /// The applied entries client replicas subscribe to.
    feed: Arc<feed::Feed>,
    /// The environment, for the deferred rows' last flush on shutdown.
    store: Store,
    /// Stops `flush_idle_deferred` when the server shuts down or is dropped.
    flusher: tokio_util::sync::CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.flusher.cancel();
    }
}

/// How long applied rows may wait in memory when no log append takes them (an idle leader,
/// a follower between writes): bounds what a restart re-applies from the log.
const FLUSH_DEFERRED: Duration = Duration::from_millis(200);

/// Writes the state machine's deferred rows every `FLUSH_DEFERRED` while there are any.
async fn flush_idle_deferred(store: Store, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(FLUSH_DEFERRED);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if store.has_deferred() {
            let s = store.clone();
            if let Err(e) = crate::store::blocking(move || s.flush_deferred()).await {
                tracing::warn!(error = %e, "writing applied catalog rows failed; they stay in memory for the next commit");
            }
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

impl Server {
    /// Stops openraft and writes the applied rows still deferred (the log is durable, so
    /// `open` on the same data directory resumes where this left off).
    pub(crate) async fn shutdown(&self) -> Result<(), RaftError> {
        self.raft.shutdown().await.map_err(|e| RaftError::Raft(e.to_string()))?;
        self.flusher.cancel();
        let store = self.store.clone();
        crate::store::blocking(move || store.flush_deferred()).await?;
        Ok(())
    }

    /// Whether this server is the Raft leader.
    pub(crate) fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// The leader's Raft RPC address (`ip:port`), if one is known.
    pub(crate) fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())
    }

    /// Raft RPC addresses of the voters.
    pub(crate) fn peer_addrs(&self) -> Vec<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone())).collect()
    }

    /// Milliseconds since this server last heard from the leader (0 on the leader).
    pub(crate) fn last_contact_ms(&self) -> u64 {
        if self.is_leader() { 0 } else { self.contact.millis_since() }
    }

    /// The Raft node's state from openraft's metrics. openraft applies each entry as soon as
    /// it is committed and reports no separate commit index, so `commit_index` is the applied
    /// index (the commit index is at least that, and equal once the apply caught up).
    pub(crate) fn raft_status(&self) -> crate::consensus::RaftStatus {
        let m = self.raft.metrics();
        let m = m.borrow();
        let state = match m.state {
            openraft::ServerState::Leader => "Leader",
            openraft::ServerState::Candidate => "Candidate",
            openraft::ServerState::Follower | openraft::ServerState::Learner => "Follower",
            openraft::ServerState::Shutdown => "Shutdown",
        };
        let applied = m.last_applied.map_or(0, |l| l.index);
        crate::consensus::RaftStatus {
            state,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: applied,
            commit_index: applied,
            last_snapshot_index: m.snapshot.map_or(0, |l| l.index),
            last_snapshot_term: m.snapshot.map_or(0, |l| l.leader_id.term),
        }
    }

    /// Whether a leader is currently known.
    pub(crate) fn known_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader.is_some()
    }

    /// The openraft node.
    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The snapshot handle the state machine publishes to.
    pub(crate) fn snapshots(&self) -> &Arc<SnapshotHandle> {
        &self.snapshots
    }

    /// The applied entries client replicas subscribe to.
    pub(crate) fn feed(&self) -> &Arc<feed::Feed> {
        &self.feed
    }

    /// This server's view of the cluster, for replicas.
    pub(crate) fn heartbeat(&self) -> crate::rpc::Heartbeat {
        crate::rpc::Heartbeat {
            applied_index: self.snapshots().load().index,
            known_leader: self.known_leader(),
            leader_addr: self.leader_addr(),
            last_contact_ms: self.last_contact_ms(),
            servers: self.servers(),
            membership_index: self.membership_index(),
        }
    }
}

/// A server's half of the consensus handle: proposals go through the group commit (forwarded
/// to the leader on a follower), reads through the local openraft node.
impl Participant for Server {
    fn propose(
        &self,
        cmd: Command,
        token: Option<crate::rpc::Secret>,
    ) -> BoxFuture<'_, Result<CommandResponse, ProposeError>> {
        Box::pin(self.proposer.propose(cmd, token))
    }

    fn read_barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(Self::read_barrier(self))
    }

    fn forward_session_renew<'a>(&'a self, id: &'a str, ttl: Duration) -> Renewal<'a> {
        Box::pin(Self::forward_session_renew(self, id, ttl))
    }

    fn leave_cluster(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(Self::leave_cluster(self))
    }

    fn remove_server(&self, id: u64) -> BoxFuture<'_, Result<(), crate::rpc::Remote>> {
        Box::pin(Self::remove_server(self, id))
    }

    fn is_leader(&self) -> bool {
        Self::is_leader(self)
    }

    fn known_leader(&self) -> bool {
        Self::known_leader(self)
    }

    fn leader_addr(&self) -> Option<String> {
        Self::leader_addr(self)
    }

    fn peer_addrs(&self) -> Vec<String> {
        Self::peer_addrs(self)
    }

    fn last_contact_ms(&self) -> u64 {
        Self::last_contact_ms(self)
    }

    fn servers(&self) -> Vec<crate::rpc::RaftServer> {
        Self::servers(self)
    }

    fn membership_index(&self) -> u64 {
        Self::membership_index(self)
    }

    fn node_id(&self) -> u64 {
        Self::node_id(self)
    }

    fn snapshots(&self) -> Arc<SnapshotHandle> {
        self.snapshots.clone()
    }

    fn pool(&self) -> Arc<crate::rpc::Pool> {
        self.pool.clone()
    }

    fn raft_status(&self) -> Option<crate::consensus::RaftStatus> {
        Some(Self::raft_status(self))
    }
}
