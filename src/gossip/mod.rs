//! GOSSIP MEMBERSHIP: the LAN pool of agents and the servers' WAN pool, behind a narrow
//! `Membership` trait so the engine (today memberlist 0.8, `gossip::memberlist`) can be
//! replaced (foca).
//!
//! Input: join addresses, leave requests; the engine's failure detection. Output: the member
//! list (name, gossip address, status, `NodeMeta`) and a stream of `MemberEvent`s.
//!
//! Invariants: gossip never writes the catalog; the Raft leader turns member events into
//! proposals (`gossip::reconcile`: failed -> `serfHealth` critical, alive -> passing, left ->
//! node deregistered; and, with `cleanup_dead_servers`, `gossip::autopilot` picks the dead
//! servers to remove from the Raft configuration). Node meta fits in the engine's 512-byte limit (JSON of `NodeMeta`).
//!
//! User events (`gossip::user_event`) travel between agents as memberlist user messages, and
//! probe acks carry Vivaldi coordinates (`gossip::vivaldi`) that `gossip::coordinate` proposes
//! to the catalog.
//!
//! The gossip keyring (`gossip::keyring`: the keys, their file; `gossip::keyquery` and
//! `gossip::keyanswer`: the fan-out to every member) rotates the encryption key of a pool; the
//! keyring endpoint runs each operation on the WAN pool, then on the LAN pool.
//!
//! Two pools (`gossip::pool`), as Consul's two Serf pools: every agent is in its datacenter's
//! LAN pool; every server is also in the WAN pool (`ports.serf_wan`, 8302) as `<node>.<dc>`,
//! with the same `NodeMeta` (so the same tags), its own keyring file (`serf/remote.keyring`),
//! HashiCorp's WAN timings, and its own Vivaldi coordinates, which order
//! `/v1/catalog/datacenters` (`pool::by_distance`). Each pool refuses a join that would merge
//! a member it must not hold (LAN: another datacenter's; WAN: a client). Both pools run the
//! same engine code (`memberlist::Gossip`, started with a `Pool`); the leader's reconciliation
//! and the catalog's coordinates read the LAN pool only.
//!
//! Why not serf-core (evaluated for issue 22; al8n's port of HashiCorp's Serf onto the same
//! memberlist-core 0.8.5 cairn uses, crates.io 0.5.2, MPL-2.0). Its API is Serf's:
//! `Serf::with_delegate(transport options, Options, delegate)`, `join`/`join_many`, `leave`,
//! `members` (with Serf's alive/leaving/left/failed statuses and a reaper), `set_tags`,
//! `user_event`, `query`, `key_manager()` (install/use/remove/list over Serf queries),
//! `coordinate()` / `cached_coordinate(id)` (Vivaldi, with the coordinate cache), and
//! `remove_failed_node(_prune)`; a merge delegate and a snapshot file as Serf's. It would
//! replace most of this module (member table and left/failed tracking, reconnect, the
//! keyring fan-out, user-event transport, Vivaldi), and its WAN support is the same crate
//! started twice, as here. Not adopted in this change because: it would rewrite the LAN pool
//! every other module reads (reconcile, autopilot, discovery, RPC membership checks,
//! events) rather than add the WAN pool beside it, too large to land with WAN federation
//! in one step; the encryption rollout (`gossip::rollout`, a transport wrapper) and cairn's
//! keyring file handling would have to be re-fitted to its key manager; its tags are a
//! string map with Serf's size limit where cairn gossips `NodeMeta` as JSON; it is young (one
//! maintainer, API still moving: its accessor is spelled `cooridate`) and MPL-2.0 where cairn
//! is MIT/Apache-2.0 (a file-level copyleft dependency: acceptable unmodified, but a policy
//! decision). The `Membership` trait is the seam for adopting it later: one engine for both
//! pools, then delete `keyanswer`, `keyquery`'s transport, `reconnect` and `vivaldi`.

pub(crate) mod autopilot;
pub(crate) mod coordinate;
pub(crate) mod discovery;
mod keyanswer;
pub(crate) mod keyquery;
pub(crate) mod keyring;
pub(crate) mod memberlist;
pub(crate) mod pool;
pub(crate) mod reconcile;
mod rollout;
pub(crate) mod user_event;
pub(crate) mod vivaldi;

use std::future::Future;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// What an agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// A Raft server.
    Server,
    /// A client agent (no Raft).
    Client,
}

/// The meta every agent gossips about itself (Consul's serf tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeMeta {
    /// Server or client.
    pub role: Role,
    /// Datacenter.
    pub dc: String,
    /// Server RPC (Raft) address; empty on clients.
    pub raft_addr: String,
    /// Raft node id; 0 on clients.
    pub raft_id: u64,
    /// Consul's `build` tag: `crate::build_tag()` (the Consul version cairn reports, and cairn's).
    pub version: String,
    /// Set (and gossiped) just before a graceful leave, so the others record `Left`, not
    /// `Failed` (memberlist 0.8's events do not tell the two apart).
    #[serde(default)]
    pub leaving: bool,
    /// The node ID (a UUID; Consul's `id` tag). Empty from an agent that predates it.
    #[serde(default)]
    pub node_id: String,
    /// A server's WAN gossip port (Consul's `wan_join_port` LAN tag), through which the other
    /// servers of its datacenter flood-join it into their WAN pool; 0: no WAN pool.
    #[serde(default)]
    pub wan_join_port: u16,
}

/// Consul's member status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberStatus {
    /// Alive (or suspected, not yet declared failed).
    Alive,
    /// Left gracefully.
    Left,
    /// Declared failed by the failure detector.
    Failed,
}

impl MemberStatus {
    /// Consul's name for it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Left => "left",
            Self::Failed => "failed",
        }
    }
}

/// One agent in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// Node name.
    pub name: String,
    /// Gossip address.
    pub addr: SocketAddr,
    /// Status.
    pub status: MemberStatus,
    /// Its meta (`None` when it could not be decoded: an agent of another kind or version).
    pub meta: Option<NodeMeta>,
    /// Gossip protocol version it speaks.
    pub protocol: u8,
}

impl Member {
    /// Its server RPC address, if it is an alive server of datacenter `dc` that gossips one.
    pub(crate) fn alive_server_rpc(&self, dc: &str) -> Option<&str> {
        let meta = self.meta.as_ref()?;
        let server = self.status == MemberStatus::Alive && meta.role == Role::Server && meta.dc == dc;
        (server && !meta.raft_addr.is_empty()).then_some(meta.raft_addr.as_str())
    }
}

/// A change in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemberEvent {
    /// A member joined or came back.
    Joined(Member),
    /// A member's meta changed.
    Updated(Member),
    /// A member left gracefully.
    Left(Member),
    /// A member was declared failed.
    Failed(Member),
}

impl MemberEvent {
    /// The member concerned.
    pub(crate) fn member(&self) -> &Member {
        match self {
            Self::Joined(m) | Self::Updated(m) | Self::Left(m) | Self::Failed(m) => m,
        }
    }

    /// Counts the event under Consul's `consul.serf.member.*` name.
    pub(crate) fn count(&self) {
        let name = match self {
            Self::Joined(_) => "consul.serf.member.join",
            Self::Left(_) => "consul.serf.member.left",
            Self::Failed(_) => "consul.serf.member.failed",
            Self::Updated(_) => return,
        };
        crate::metrics::count(name, Vec::new());
    }
}

/// Why a membership operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum GossipError {
    /// The engine failed to start (bind, config).
    #[error("gossip: {0}")]
    Start(String),
    /// Joining failed for every address given.
    #[error("failed to join {addrs}: {msg}")]
    Join {
        /// The addresses tried.
        addrs: String,
        /// Why.
        msg: String,
    },
    /// Leaving failed.
    #[error("leave: {0}")]
    Leave(String),
    /// The encryption keys or the keyring file were refused at start.
    #[error("gossip keyring: {0}")]
    Keyring(#[from] keyring::KeyringError),
}

/// The LAN membership pool.
pub(crate) trait Membership: Send + Sync + 'static {
    /// Joins the pool through any of `addrs`; returns how many were contacted.
    fn join(&self, addrs: &[SocketAddr]) -> impl Future<Output = Result<usize, GossipError>> + Send;
    /// Leaves the pool gracefully (the others see `Left`, not `Failed`).
    fn leave(&self) -> impl Future<Output = Result<(), GossipError>> + Send;
    /// Every member known, this agent included, with its status.
    fn members(&self) -> impl Future<Output = Vec<Member>> + Send;
    /// Member events from now on.
    fn subscribe(&self) -> broadcast::Receiver<MemberEvent>;
    /// This agent's gossip address.
    fn local_addr(&self) -> SocketAddr;
    /// This agent's meta.
    fn local_meta(&self) -> &NodeMeta;
}

/// The engine in use.
pub(crate) type Lan = memberlist::Gossip;
/// A server's WAN pool: the same engine, started with `pool::Pool::Wan`.
pub(crate) type Wan = memberlist::Gossip;
