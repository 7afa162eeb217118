//! CONSENSUS HANDLE: how HTTP, health checks, local state, sessions and gossip propose
//! commands and read the cluster's state, without knowing whether this agent runs Raft.
//!
//! ```text
//! writers/readers -> Consensus::propose(Command) / read_barrier / leader_addr / ...
//!                 -> dyn Participant: raft::Server (a server: the local openraft node)
//!                                     replica::Client (a client agent: forwards to the servers)
//! ```
//!
//! Input: a `Participant` (built by `app`: a Raft server or a client's replica). Output:
//! `Consensus`, a cheap-to-clone handle with one method per act.
//! Invariants: this module sits below `raft` and `replica`, which each implement
//! `Participant`; it imports only the vocabulary (`catalog`), the read model (`snapshot`) and
//! the wire types (`rpc`). `propose` returns only after the command is committed and applied
//! locally (published), on a server and on a client alike.
//!
//! ACLs: every proposal is made on someone's `Authority`: `propose`/`propose_for` on the
//! agent's own (`acl.tokens.agent`: node registration, anti-entropy, check results, the
//! leader's timers), `propose_as`/`propose_for_as` on an HTTP caller's. With ACLs on
//! (`set_credentials`), a write forwarded to a server (by a client agent, or by a follower to
//! its leader) carries that authority's secret beside the command, never inside it, and the
//! server checks it (`serve_rpc`); a server committing its own proposal checked it already
//! (its HTTP layer) or trusts it (its own feeds).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::catalog::{Command, CommandResponse};
use crate::rpc::{Pool, RaftServer, Remote, Secret};
use crate::snapshot::SnapshotHandle;

/// A boxed `Send` future, so `Participant` is usable as a trait object.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A session renewal told to the leader: `Ok(true)` when this agent is the leader (it re-arms
/// its own timer).
pub(crate) type Renewal<'a> = BoxFuture<'a, Result<bool, ProposeError>>;

/// Why a proposal (or a linearizable read) did not produce an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ProposeError {
    /// This server is not the leader and the leader is unknown or unreachable.
    #[error("no cluster leader")]
    NoLeader,
    /// Raft or its storage failed; the write may or may not have been committed.
    #[error("raft: {0}")]
    Raft(String),
    /// The state machine rejected the command deterministically; nothing changed. The text is
    /// Consul's error message.
    #[error("{0}")]
    Rejected(String),
    /// The command fails `Command::validate` (checked again by the server a write is
    /// forwarded to); nothing was proposed. The text is Consul's error message.
    #[error("{0}")]
    Invalid(crate::catalog::Invalid),
    /// The server refused the write: the token it was forwarded with lacks a permission it
    /// needs, or does not resolve. The text is Consul's (`Permission denied`, `ACL not found`).
    #[error("{0}")]
    Denied(String),
}

impl From<Remote> for ProposeError {
    /// What a server's refusal of a forwarded write means to the agent that forwarded it.
    fn from(e: Remote) -> Self {
        match e {
            Remote::NoLeader => Self::NoLeader,
            Remote::Failed(m) => Self::Raft(m),
            Remote::Invalid(e) => Self::Invalid(e),
            Remote::Denied(m) => Self::Denied(m),
        }
    }
}

/// On whose authority a write is proposed: what the server it is forwarded to checks it
/// against when ACLs are on (a server proposing for itself checked it already).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Authority<'a> {
    /// The agent's own write (node registration, anti-entropy, check results, the leader's
    /// timers): `acl.tokens.agent`, else the default token, else anonymous.
    Agent,
    /// An HTTP caller's write: the secret it presented (`None`: the agent's default token,
    /// else anonymous, as for its own request).
    Caller(Option<&'a str>),
}

/// The secrets behind each `Authority` (the agent's ACL tokens; `acl_state::AclResolver`).
pub(crate) trait Credentials: Send + Sync {
    /// The secret `who` stands for now (tokens change at run time).
    fn secret(&self, who: Authority<'_>) -> Secret;
}

/// One side of the consensus: a Raft server (`raft::Server`) or a client agent's replica and
/// forwarder (`replica::Client`).
pub(crate) trait Participant: Send + Sync + std::fmt::Debug {
    /// Proposes `cmd` and waits until it is committed and applied locally; the answer is what
    /// applying it returned (`Rejected` included). A write forwarded to a server carries
    /// `token` (`None` with ACLs off), which that server checks it against.
    fn propose(
        &self,
        cmd: Command,
        token: Option<Secret>,
    ) -> BoxFuture<'_, Result<CommandResponse, ProposeError>>;
    /// Waits until this agent's state is at least as new as the leader's committed state at
    /// the time of the call (Raft ReadIndex).
    fn read_barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>>;
    /// Tells the leader that session `id` (TTL `ttl`) was renewed here; `Ok(true)` when this
    /// server is the leader and must re-arm its own timer.
    fn forward_session_renew<'a>(&'a self, id: &'a str, ttl: Duration) -> Renewal<'a>;
    /// Graceful leave from the Raft configuration (nothing to hand over on a client).
    fn leave_cluster(&self) -> BoxFuture<'_, Result<(), ProposeError>>;
    /// Removes server `id` from the Raft configuration (through the leader).
    fn remove_server(&self, id: u64) -> BoxFuture<'_, Result<(), Remote>>;
    /// Whether this server is the Raft leader (never on a client agent).
    fn is_leader(&self) -> bool;
    /// Whether a leader is currently known.
    fn known_leader(&self) -> bool;
    /// The leader's Raft RPC address (`ip:port`), if one is known.
    fn leader_addr(&self) -> Option<String>;
    /// Raft RPC addresses of the voters.
    fn peer_addrs(&self) -> Vec<String>;
    /// Milliseconds since the leader was last heard from (see `Consensus::last_contact_ms`).
    fn last_contact_ms(&self) -> u64;
    /// The servers in the Raft configuration: voters, then learners.
    fn servers(&self) -> Vec<RaftServer>;
    /// Log index of the membership configuration in effect.
    fn membership_index(&self) -> u64;
    /// This server's Raft node id (0 on a client agent).
    fn node_id(&self) -> u64;
    /// The snapshot handle this agent's catalog is published to.
    fn snapshots(&self) -> Arc<SnapshotHandle>;
    /// Connections to the servers.
    fn pool(&self) -> Arc<Pool>;
    /// A server's Raft node state (`/v1/agent/self`'s `Stats.raft`); `None` on a client agent.
    fn raft_status(&self) -> Option<RaftStatus> {
        None
    }
}

/// A Raft server's state as `/v1/agent/self` reports it (Consul's `Stats.raft`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RaftStatus {
    /// Consul's state name: `Leader`, `Follower` (learners too), `Candidate` or `Shutdown`.
    pub state: &'static str,
    /// Current term.
    pub term: u64,
    /// Index of the last entry in the log.
    pub last_log_index: u64,
    /// Index of the last entry applied to the state machine.
    pub applied_index: u64,
    /// Index of the last committed entry this server knows of.
    pub commit_index: u64,
    /// Index and term of the last snapshot (0 when none).
    pub last_snapshot_index: u64,
    /// See `last_snapshot_index`.
    pub last_snapshot_term: u64,
}

/// Cheap-to-clone handle for proposing commands and reading the cluster's view. On a server
/// it drives the local openraft node; on a client agent it forwards writes to the servers and
/// reads from the local replica, so callers do not care which they run on.
#[derive(Clone)]
pub(crate) struct Consensus {
    participant: Arc<dyn Participant>,
    /// The agent's ACL tokens, once ACLs are on (`set_credentials`); unset, writes are
    /// forwarded without a token.
    credentials: Arc<OnceLock<Arc<dyn Credentials>>>,
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus").field("participant", &self.participant).finish()
    }
}

impl Consensus {
    /// The handle of `participant` (a `raft::Server` or a `replica::Client`).
    pub(crate) fn new(participant: Arc<dyn Participant>) -> Self {
        Self { participant, credentials: Arc::default() }
    }

    /// Turns on tokens for forwarded writes (ACLs on): every clone of this handle forwards
    /// with the secrets `credentials` gives. Set once; a second call changes nothing.
    pub(crate) fn set_credentials(&self, credentials: Arc<dyn Credentials>) {
        let _ = self.credentials.set(credentials);
    }

    /// Proposes `cmd` as the agent's own write (`Authority::Agent`) and waits until it is
    /// committed and applied locally.
    /// Concurrent proposals are grouped into one log entry (`raft::batch`). A deterministic
    /// rejection by `apply` comes back as `ProposeError::Rejected`.
    pub(crate) async fn propose(&self, cmd: Command) -> Result<(), ProposeError> {
        self.propose_as(Authority::Agent, cmd).await
    }

    /// Proposes `cmd` on `who`'s authority (see `propose`).
    pub(crate) async fn propose_as(&self, who: Authority<'_>, cmd: Command) -> Result<(), ProposeError> {
        match self.timed_propose(cmd, who).await? {
            CommandResponse::Applied => Ok(()),
            CommandResponse::Rejected(msg) => Err(ProposeError::Rejected(msg)),
            CommandResponse::Batch(_) | CommandResponse::Bool(_) | CommandResponse::Txn(_) => {
                Err(ProposeError::Raft("invariant: unexpected response for a catalog command".into()))
            }
        }
    }

    /// Proposes `cmd` as the agent's own write and returns what applying it answered (KV
    /// writes answer `Bool`, transactions `Txn`); `Rejected` becomes `ProposeError::Rejected`.
    pub(crate) async fn propose_for(&self, cmd: Command) -> Result<CommandResponse, ProposeError> {
        self.propose_for_as(Authority::Agent, cmd).await
    }

    /// `propose_for` on `who`'s authority.
    pub(crate) async fn propose_for_as(
        &self,
        who: Authority<'_>,
        cmd: Command,
    ) -> Result<CommandResponse, ProposeError> {
        match self.timed_propose(cmd, who).await? {
            CommandResponse::Rejected(msg) => Err(ProposeError::Rejected(msg)),
            other => Ok(other),
        }
    }

    /// Proposes `cmd`, timing it under Consul's name for completing that write
    /// (`consul.kvs.apply`, `consul.catalog.register`, …; `metrics::commands`).
    async fn timed_propose(&self, cmd: Command, who: Authority<'_>) -> Result<CommandResponse, ProposeError> {
        let timer = crate::metrics::commands::propose_timer(&cmd);
        let started = std::time::Instant::now();
        let response = self.participant.propose(cmd, self.secret(who)).await;
        if let Some(name) = timer {
            crate::metrics::measure(name, Vec::new(), started.elapsed());
        }
        response
    }

    /// The secret a write on `who`'s authority is forwarded with (`None` with ACLs off).
    fn secret(&self, who: Authority<'_>) -> Option<Secret> {
        self.credentials.get().map(|c| c.secret(who))
    }

    /// Whether this server is the Raft leader (leader-only timers, e.g. session TTLs); never
    /// on a client agent.
    pub(crate) fn is_leader(&self) -> bool {
        self.participant.is_leader()
    }

    /// The leader's Raft RPC address (`ip:port`), if one is known.
    pub(crate) fn leader_addr(&self) -> Option<String> {
        self.participant.leader_addr()
    }

    /// Raft RPC addresses of the voters.
    pub(crate) fn peer_addrs(&self) -> Vec<String> {
        self.participant.peer_addrs()
    }

    /// Milliseconds since this server last heard from the leader (0 on the leader); on a
    /// client, since its replica last heard from its server plus that server's own figure.
    pub(crate) fn last_contact_ms(&self) -> u64 {
        self.participant.last_contact_ms()
    }

    /// The snapshot handle the state machine (or the replica) publishes to (DNS and HTTP read
    /// from it).
    pub(crate) fn snapshots(&self) -> Arc<SnapshotHandle> {
        self.participant.snapshots()
    }

    /// Whether a leader is currently known.
    pub(crate) fn known_leader(&self) -> bool {
        self.participant.known_leader()
    }

    /// A server's Raft node state; `None` on a client agent.
    pub(crate) fn raft_status(&self) -> Option<RaftStatus> {
        self.participant.raft_status()
    }

    /// Raft log index of the last entry applied and published.
    #[cfg(test)]
    pub(crate) fn applied_index(&self) -> u64 {
        self.snapshots().load().index
    }

    /// Connections to the servers.
    pub(crate) fn pool(&self) -> Arc<Pool> {
        self.participant.pool()
    }

    /// This server's Raft node id (0 on a client agent, as in its gossip meta).
    pub(crate) fn node_id(&self) -> u64 {
        self.participant.node_id()
    }

    /// The servers in the Raft configuration: voters, then learners (on a client, as its
    /// server last reported them).
    pub(crate) fn servers(&self) -> Vec<RaftServer> {
        self.participant.servers()
    }

    /// Log index of the membership configuration in effect.
    pub(crate) fn membership_index(&self) -> u64 {
        self.participant.membership_index()
    }

    /// Waits until this agent's state is at least as new as the leader's committed state at
    /// the time of the call (Raft ReadIndex; `?consistent`).
    pub(crate) async fn read_barrier(&self) -> Result<(), ProposeError> {
        let started = std::time::Instant::now();
        let done = self.participant.read_barrier().await;
        crate::metrics::measure("consul.rpc.consistentRead", Vec::new(), started.elapsed());
        done
    }

    /// Tells the leader that session `id` (TTL `ttl`) was renewed here, so its expiry timer
    /// (leader-only) is re-armed. `Ok(true)`: this server is the leader and re-arms its own.
    pub(crate) async fn forward_session_renew(&self, id: &str, ttl: Duration) -> Result<bool, ProposeError> {
        self.participant.forward_session_renew(id, ttl).await
    }

    /// Graceful leave: a server removes itself from the Raft configuration when other voters
    /// remain; a client has nothing to hand over.
    pub(crate) async fn leave_cluster(&self) -> Result<(), ProposeError> {
        self.participant.leave_cluster().await
    }

    /// Removes server `id` from the Raft configuration (through the leader).
    pub(crate) async fn remove_server(&self, id: u64) -> Result<(), Remote> {
        self.participant.remove_server(id).await
    }
}
