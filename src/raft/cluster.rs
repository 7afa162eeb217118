//! CLUSTER MEMBERSHIP: forming a cluster, joining one, forwarding writes and linearizable
//! reads to the leader.
//!
//! Input: servers found by an `rpc::discovery::Discovery` (the agent passes
//! `gossip::discovery::GossipDiscovery`: the servers the LAN pool knows plus the `retry_join`
//! addresses asked over the server RPC, `rpc::discovery::RetryJoin`), RPC requests from other
//! servers. Output: openraft membership changes and forwarded commands.
//!
//! Bootstrap: a server with no membership waits until it sees `bootstrap_expect` servers
//! (itself included) that are not yet in a cluster; the one with the lowest node id among them
//! initialises the membership with all of them, the others receive it through replication.
//! A server that finds one already in a cluster asks it to join (`Request::Join`): the leader
//! adds it as a learner, waits until it has caught up, then promotes it to voter.
//!
//! Invariants: only the leader changes the membership; a forwarded write is committed by the
//! leader exactly once per request (a failed exchange is reported as an error that may or may
//! not have committed, never retried here).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError as OpenRaftError};
use openraft::{BasicNode, ChangeMembers, Vote};
use tokio_util::sync::CancellationToken;

use super::{Command, CommandResponse, ProposeError, Raft, Server};
use crate::rpc::discovery::{Discovery, RetryJoin};
use crate::rpc::{CallError, Pool, RaftServer, Remote, Request, Response, Secret, ServerInfo};
use crate::snapshot::SnapshotHandle;

/// How long a write waits for a leader to be known (elections take ~1-2 s).
const WRITE_LEADER_WAIT: Duration = Duration::from_secs(5);
/// How long a forwarded write may take on the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a follower waits to apply what the leader committed for it before answering.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);
/// How long a join may take (the learner catches up first, possibly by snapshot).
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Discovery round interval while forming or joining.
const FORM_INTERVAL: Duration = Duration::from_millis(500);
/// How often a confirmed voter checks that the others still count it as one.
const STANDING_INTERVAL: Duration = Duration::from_secs(5);

/// When a follower last heard from a leader.
#[derive(Debug)]
pub(crate) struct Contact {
    epoch: Instant,
    /// Milliseconds after `epoch` plus one; 0 = never.
    last: AtomicU64,
}

impl Contact {
    /// Never contacted yet.
    pub(crate) fn new() -> Self {
        Self { epoch: Instant::now(), last: AtomicU64::new(0) }
    }

    pub(crate) fn note(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// Milliseconds since the last contact (0 when never contacted).
    pub(crate) fn millis_since(&self) -> u64 {
        match self.last.load(Ordering::Relaxed) {
            0 => 0,
            last => {
                let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                now.saturating_add(1).saturating_sub(last)
            }
        }
    }
}

impl Default for Contact {
    fn default() -> Self {
        Self::new()
    }
}

/// Forms or joins a cluster, then keeps this server's standing: runs until `stop` fires.
///
/// A server whose own log says it is a voter does not campaign (`enable_elect` is off until
/// then, except for a single self-bootstrapped server) before the others confirm it: one
/// holding a configuration at least as new that lacks it, or records another address for it
/// (it was removed, e.g. by `leave` or autopilot, while down; or it restarted on a new
/// address), makes it rejoin through that server as a learner, then a voter. The check repeats
/// every `STANDING_INTERVAL` on a follower, so a server removed while running stops
/// campaigning and rejoins too.
pub(crate) async fn form<D: Discovery>(
    raft: std::sync::Arc<Server>,
    discovery: D,
    bootstrap_expect: u32,
    stop: CancellationToken,
) {
    let mut confirmed = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = form_round(&raft, &discovery, bootstrap_expect, &mut confirmed) => {}
        }
        let pause = if confirmed { STANDING_INTERVAL } else { FORM_INTERVAL };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One step of `form`; `confirmed` tracks whether this server is a confirmed voter (and
/// may campaign).
async fn form_round<D: Discovery>(raft: &Server, discovery: &D, bootstrap_expect: u32, confirmed: &mut bool) {
    let (voter, member) = raft.own_status();
    if voter {
        let stale = if raft.is_leader() { None } else { raft.stale_via().await };
        match stale {
            None if !*confirmed => {
                tracing::info!("this server is a voter in the cluster");
                raft.raft.runtime_config().elect(true);
                *confirmed = true;
            }
            None => {}
            Some(via) => {
                tracing::warn!(
                    via,
                    "this server is no longer a voter at its address in the cluster's configuration; rejoining"
                );
                raft.raft.runtime_config().elect(false);
                *confirmed = false;
                raft.join_via(&via).await;
            }
        }
        return;
    }
    if *confirmed {
        raft.raft.runtime_config().elect(false);
        *confirmed = false;
    }
    if member {
        // A learner whose promotion did not finish (leader change): ask again.
        if let Some(addr) = raft.leader_addr() {
            raft.join_via(&addr).await;
        }
        return;
    }
    let seen: BTreeMap<u64, ServerInfo> = discovery
        .servers()
        .await
        .into_iter()
        .filter(|s| s.node_id != raft.node_id)
        .map(|s| (s.node_id, s))
        .collect();
    if let Some(s) = seen.values().find(|s| s.clustered) {
        raft.join_via(&s.addr).await;
        return;
    }
    let count = seen.len() + 1;
    let lowest = seen.keys().next().is_none_or(|&min| raft.node_id < min);
    if bootstrap_expect >= 1 && count >= bootstrap_expect as usize && lowest {
        let mut members: BTreeMap<u64, BasicNode> =
            seen.values().map(|s| (s.node_id, BasicNode::new(&s.addr))).collect();
        members.insert(raft.node_id, BasicNode::new(&raft.raft_addr));
        tracing::info!(servers = count, "bootstrapping the cluster");
        match raft.raft.initialize(members).await {
            Ok(()) | Err(OpenRaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => tracing::warn!(error = %e, "bootstrap failed"),
        }
    } else {
        tracing::debug!(seen = count, expect = bootstrap_expect, "waiting for servers");
    }
}

/// The server to rejoin through when one of `peers` holds a configuration at least as new as
/// this server's (`index`) in which this server (`me`) is not a voter at `addr`; `None` when
/// no peer contradicts this server's own configuration (or none answered).
fn stale_via(me: u64, addr: &str, index: u64, peers: &[ServerInfo]) -> Option<String> {
    peers
        .iter()
        // A peer reporting no voters (none yet, or a version without them) says nothing.
        .filter(|p| p.node_id != me && !p.voters.is_empty() && p.membership_index >= index)
        .find(|p| p.voters.get(&me).map(String::as_str) != Some(addr))
        .map(|p| p.addr.clone())
}

/// Waits (bounded) until a leader is known; returns its id and RPC address.
pub(super) async fn wait_leader(raft: &Raft) -> Result<(u64, String), ProposeError> {
    let m = raft
        .wait(Some(WRITE_LEADER_WAIT))
        .metrics(|m| m.current_leader.is_some(), "a leader is known")
        .await
        .map_err(|_| ProposeError::NoLeader)?;
    let leader = m.current_leader.ok_or(ProposeError::NoLeader)?;
    let addr = m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone());
    Ok((leader, addr.ok_or(ProposeError::NoLeader)?))
}

/// Sends `cmd` to the leader at `addr`, then waits (bounded) until this server has applied it.
pub(super) async fn forward(
    pool: &Pool,
    snapshots: &SnapshotHandle,
    addr: &str,
    cmd: Command,
    token: Option<Secret>,
) -> Result<CommandResponse, ProposeError> {
    match pool.call(addr, &Request::forward(cmd, token), FORWARD_TIMEOUT).await {
        Ok(Response::Forward(Ok((resp, index)))) => {
            catch_up(snapshots, index).await;
            Ok(resp)
        }
        Ok(Response::Forward(Err(e))) => Err(e.into()),
        Ok(_) => Err(ProposeError::Raft(format!("forward to {addr}: unexpected response"))),
        // Nothing was sent: the leader is gone.
        Err(CallError::Connect { .. }) => Err(ProposeError::NoLeader),
        Err(e) => Err(ProposeError::Raft(e.to_string())),
    }
}

/// Waits until the published snapshot reaches `index` (or `CATCH_UP_WAIT` passes); whether it
/// did is returned.
pub(crate) async fn catch_up(snapshots: &SnapshotHandle, index: u64) -> bool {
    let mut rx = snapshots.subscribe();
    let wait = async {
        loop {
            if snapshots.load().index >= index {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(CATCH_UP_WAIT, wait).await.is_ok() && snapshots.load().index >= index
}

impl Server {
    /// Whether this server is a voter, and whether it is in the membership at all.
    fn own_status(&self) -> (bool, bool) {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voter = membership.voter_ids().any(|id| id == self.node_id);
        let member = membership.get_node(&self.node_id).is_some();
        (voter, member)
    }

    /// Asks the server at `addr` (any member) to add this one.
    async fn join_via(&self, addr: &str) {
        let req = Request::Join { node_id: self.node_id, addr: self.raft_addr.clone() };
        match self.pool.call(addr, &req, JOIN_TIMEOUT).await {
            Ok(Response::Join(Ok(()))) => tracing::info!(via = addr, "joined the cluster"),
            Ok(Response::Join(Err(e))) => tracing::info!(via = addr, error = %e, "join refused; retrying"),
            Ok(_) => tracing::warn!(via = addr, "join: unexpected response"),
            Err(e) => tracing::info!(via = addr, error = %e, "join failed; retrying"),
        }
    }

    /// Records that a leader (a committed vote) contacted this server.
    pub(crate) fn note_leader_contact(&self, vote: &Vote<u64>) {
        if vote.is_committed() {
            self.contact.note();
        }
    }

    /// This server, for discovery.
    pub(crate) fn server_info(&self) -> ServerInfo {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeMap<u64, String> = membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
            .collect();
        ServerInfo {
            node_id: self.node_id,
            addr: self.raft_addr.clone(),
            clustered: !voters.is_empty(),
            serf_addr: None,
            membership_index: m.membership_config.log_id().map_or(0, |l| l.index),
            voters,
            raft_stats: Some(crate::rpc::RaftStats {
                last_contact_ms: if m.current_leader == Some(self.node_id) {
                    0
                } else {
                    self.contact.millis_since()
                },
                last_term: m.current_term,
                last_index: m.last_log_index.unwrap_or(0),
            }),
        }
    }

    /// Asks the other servers of this server's configuration whether they still count it as
    /// a voter at its address; returns one to rejoin through when not (`stale_via`).
    async fn stale_via(&self) -> Option<String> {
        let (index, addrs) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let addrs: Vec<String> = m
                .membership_config
                .membership()
                .nodes()
                .filter(|(id, _)| **id != self.node_id)
                .map(|(_, n)| n.addr.clone())
                .collect();
            (m.membership_config.log_id().map_or(0, |l| l.index), addrs)
        };
        let peers = RetryJoin::new(addrs, self.pool.clone()).servers().await;
        stale_via(self.node_id, &self.raft_addr, index, &peers)
    }

    /// Adds server `id` at `addr`: as a learner, then (once caught up) as a voter. Runs on the
    /// leader; another server forwards the request to it.
    pub(crate) async fn add_server(&self, id: u64, addr: String) -> Result<(), Remote> {
        let (leader, leader_addr) = wait_leader(&self.raft).await.map_err(|_| Remote::NoLeader)?;
        if leader != self.node_id {
            let req = Request::Join { node_id: id, addr };
            return match self.pool.call(&leader_addr, &req, JOIN_TIMEOUT).await {
                Ok(Response::Join(r)) => r,
                Ok(_) => Err(Remote::Failed("join: unexpected response from the leader".into())),
                Err(e) => Err(Remote::Failed(e.to_string())),
            };
        }
        let (is_voter, known) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            (membership.voter_ids().any(|v| v == id), membership.get_node(&id).map(|n| n.addr.clone()))
        };
        // The same server (its node id is kept in its data dir) back on another address.
        if known.as_ref().is_some_and(|k| *k != addr) {
            tracing::info!(id, old = ?known, new = %addr, "a server rejoined on a new address; updating it");
            let nodes = BTreeMap::from([(id, BasicNode::new(&addr))]);
            self.raft.change_membership(ChangeMembers::SetNodes(nodes), false).await.map_err(write_err)?;
        }
        if is_voter {
            return Ok(());
        }
        tracing::info!(id, %addr, "adding a server as learner");
        self.raft.add_learner(id, BasicNode::new(&addr), true).await.map_err(write_err)?;
        tracing::info!(id, %addr, "learner caught up; promoting to voter");
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    /// Removes server `id` from the configuration (it is not kept as a learner). Runs on the
    /// leader; another server forwards the request to it. A leader removing itself commits the
    /// change and then steps down, and the others elect a new leader, as in Consul.
    pub(crate) async fn remove_server(&self, id: u64) -> Result<(), Remote> {
        let (leader, leader_addr) = wait_leader(&self.raft).await.map_err(|_| Remote::NoLeader)?;
        if leader != self.node_id {
            return match self.pool.call(&leader_addr, &Request::Remove { node_id: id }, JOIN_TIMEOUT).await {
                Ok(Response::Remove(r)) => r,
                Ok(_) => Err(Remote::Failed("remove: unexpected response from the leader".into())),
                Err(e) => Err(Remote::Failed(e.to_string())),
            };
        }
        let (member, voter) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            (membership.get_node(&id).is_some(), membership.voter_ids().any(|v| v == id))
        };
        if !member {
            return Ok(());
        }
        tracing::info!(id, voter, "removing a server from the Raft configuration");
        // A learner (e.g. left from a join that never finished) is not a voter to remove.
        let change = if voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft.change_membership(change, false).await.map_err(write_err)?;
        Ok(())
    }

    /// Graceful leave of this server: removes it from the Raft configuration when other voters
    /// remain (a single server has nothing to hand over).
    pub(crate) async fn leave_cluster(&self) -> Result<(), ProposeError> {
        let others = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v != self.node_id);
        if !others {
            return Ok(());
        }
        self.remove_server(self.node_id).await.map_err(ProposeError::from)
    }

    /// Commits a command forwarded by a follower or a client agent; returns its response and
    /// log index. A server that does not lead relays it to the leader with the secret it came
    /// with (`token`; the leader checks it again) (one hop: the leader
    /// commits it or answers `NoLeader`, never relays again). The leader sets the command's
    /// clock (`now_ms`) to its own, so lock-delays are timed by one clock whichever server
    /// received the request.
    pub(crate) async fn apply_forwarded(
        &self,
        mut cmd: Command,
        token: Option<Secret>,
    ) -> Result<(CommandResponse, u64), Remote> {
        if !self.is_leader() {
            let (leader, addr) = wait_leader(&self.raft).await.map_err(|_| Remote::NoLeader)?;
            if leader != self.node_id {
                return match self.pool.call(&addr, &Request::forward(cmd, token), FORWARD_TIMEOUT).await {
                    Ok(Response::Forward(Ok(done))) => Ok(done),
                    Ok(Response::Forward(Err(e))) => Err(e),
                    Ok(_) => Err(Remote::Failed("forward: unexpected response from the leader".into())),
                    // Nothing was sent: the leader is gone; the caller may try again.
                    Err(CallError::Connect { .. }) => Err(Remote::NoLeader),
                    Err(e) => Err(Remote::Failed(e.to_string())),
                };
            }
        }
        stamp_leader_clock(&mut cmd, crate::clock::unix_ms());
        let resp = self.raft.client_write(cmd).await.map_err(write_err)?;
        Ok((resp.data, resp.log_id.index))
    }

    /// The index a linearizable read must see, asked of the leader when this server does not
    /// lead (a client agent's `ReadIndex` arrives at any server).
    pub(crate) async fn read_index(&self) -> Result<u64, ProposeError> {
        let (leader, addr) = wait_leader(&self.raft).await?;
        if leader == self.node_id {
            return self.leader_read_index().await;
        }
        match self.pool.call(&addr, &Request::ReadIndex, FORWARD_TIMEOUT).await {
            Ok(Response::ReadIndex(Ok(i))) => Ok(i),
            Ok(Response::ReadIndex(Err(Remote::NoLeader))) | Err(CallError::Connect { .. }) => {
                Err(ProposeError::NoLeader)
            }
            Ok(Response::ReadIndex(Err(e))) => Err(ProposeError::Raft(e.to_string())),
            Ok(_) => Err(ProposeError::Raft("read index: unexpected response".into())),
            Err(e) => Err(ProposeError::Raft(e.to_string())),
        }
    }

    /// On the leader: confirms leadership with a quorum and returns the index a linearizable
    /// read must see.
    pub(crate) async fn leader_read_index(&self) -> Result<u64, ProposeError> {
        match self.raft.ensure_linearizable().await {
            Ok(id) => Ok(id.map_or(0, |l| l.index)),
            Err(OpenRaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                Err(ProposeError::NoLeader)
            }
            Err(OpenRaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(ProposeError::NoLeader)
            }
            Err(e) => Err(ProposeError::Raft(e.to_string())),
        }
    }

    /// Tells the leader that session `id` (TTL `ttl`) was renewed here, so its expiry timer
    /// (leader-only) is re-armed. `Ok(true)`: this server is the leader and re-arms its own.
    pub(crate) async fn forward_session_renew(&self, id: &str, ttl: Duration) -> Result<bool, ProposeError> {
        let (leader, addr) = wait_leader(&self.raft).await?;
        if leader == self.node_id {
            return Ok(true);
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let req = Request::SessionRenew { id: id.to_owned(), ttl_ms };
        match self.pool.call(&addr, &req, FORWARD_TIMEOUT).await {
            Ok(Response::SessionRenew(Ok(()))) => Ok(false),
            Ok(Response::SessionRenew(Err(Remote::NoLeader))) | Err(CallError::Connect { .. }) => {
                Err(ProposeError::NoLeader)
            }
            Ok(Response::SessionRenew(Err(e))) => Err(ProposeError::Raft(e.to_string())),
            Ok(_) => Err(ProposeError::Raft("session renew: unexpected response".into())),
            Err(e) => Err(ProposeError::Raft(e.to_string())),
        }
    }

    /// Waits until this server's state is at least as new as the leader's committed state at
    /// the time of the call (Raft ReadIndex; `?consistent`).
    pub(crate) async fn read_barrier(&self) -> Result<(), ProposeError> {
        let index = self.read_index().await?;
        if catch_up(&self.snapshots, index).await {
            Ok(())
        } else {
            Err(ProposeError::Raft(format!("this server did not catch up to index {index} in time")))
        }
    }

    /// The servers in the Raft configuration: voters, then learners.
    pub(crate) fn servers(&self) -> Vec<RaftServer> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let mut out: Vec<RaftServer> = membership
            .nodes()
            .map(|(id, node)| RaftServer {
                id: *id,
                addr: node.addr.clone(),
                leader: m.current_leader == Some(*id),
                voter: voters.contains(id),
            })
            .collect();
        out.sort_by_key(|s| (!s.voter, s.id));
        out
    }

    /// Log index of the membership configuration in effect.
    pub(crate) fn membership_index(&self) -> u64 {
        self.raft.metrics().borrow().membership_config.log_id().map_or(0, |l| l.index)
    }

    /// This server's Raft node id.
    pub(crate) fn node_id(&self) -> u64 {
        self.node_id
    }
}

/// Sets the proposer's clock carried by `cmd` (every command of a batch) to the leader's `now`.
fn stamp_leader_clock(cmd: &mut Command, now: u64) {
    match cmd {
        Command::Kv { now_ms, .. }
        | Command::Txn { now_ms, .. }
        | Command::SessionCreate { now_ms, .. }
        | Command::SessionDestroy { now_ms, .. } => *now_ms = now,
        Command::Batch(cmds) => {
            for c in cmds {
                stamp_leader_clock(c, now);
            }
        }
        // No clock (listed so a new variant with one is not missed).
        Command::Register(_)
        | Command::Deregister(_)
        | Command::UpdateCheck(_)
        | Command::QueryUpsert(_)
        | Command::QueryDelete(_)
        | Command::Restore(_)
        | Command::KvReap(_)
        | Command::AutopilotSet { .. }
        | Command::CoordinateBatch(_)
        | Command::ConfigEntrySet { .. }
        | Command::ConfigEntryDelete { .. } => {}
        // ACL times (CreateTime, ExpirationTime) are checked against each other by
        // `Command::validate`; they stay the proposer's pair.
        Command::Acl(_) => {}
    }
}

fn write_err(e: OpenRaftError<u64, ClientWriteError<u64, BasicNode>>) -> Remote {
    match e {
        OpenRaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Remote::NoLeader,
        other => Remote::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::KvOp;

    fn clocks(cmd: &Command) -> Vec<u64> {
        match cmd {
            Command::Kv { now_ms, .. }
            | Command::Txn { now_ms, .. }
            | Command::SessionCreate { now_ms, .. }
            | Command::SessionDestroy { now_ms, .. } => vec![*now_ms],
            Command::Batch(cmds) => cmds.iter().flat_map(clocks).collect(),
            _ => Vec::new(),
        }
    }

    fn check(mut cmd: Command, want: &[u64]) {
        let before = cmd.clone();
        stamp_leader_clock(&mut cmd, 42);
        assert_eq!(clocks(&cmd), want, "{before:?}");
    }

    #[test]
    fn a_stale_configuration_is_noticed_only_from_one_at_least_as_new() {
        let info = |id: u64, index: u64, voters: &[(u64, &str)]| ServerInfo {
            node_id: id,
            addr: format!("s{id}:8300"),
            clustered: !voters.is_empty(),
            membership_index: index,
            voters: voters.iter().map(|(i, a)| (*i, (*a).to_owned())).collect(),
            ..ServerInfo::default()
        };
        let check = |peers: &[ServerInfo], want: Option<&str>| {
            assert_eq!(stale_via(1, "s1:8300", 10, peers).as_deref(), want, "{peers:?}");
        };
        let all = [(1, "s1:8300"), (2, "s2:8300"), (3, "s3:8300")];
        let without_me = [(2, "s2:8300"), (3, "s3:8300")];
        // Everyone agrees, or no one answered: keep the own configuration.
        check(&[info(2, 10, &all), info(3, 12, &all)], None);
        check(&[], None);
        // Removed (a newer configuration without this server): rejoin through that peer.
        check(&[info(2, 10, &all), info(3, 14, &without_me)], Some("s3:8300"));
        // A peer that is behind, not clustered, or reports no voters, says nothing.
        check(&[info(2, 8, &without_me), info(3, 0, &[])], None);
        check(&[ServerInfo { clustered: true, membership_index: 10, ..info(2, 10, &[]) }], None);
        // Recorded at another address (it restarted on a new port): rejoin to update it.
        let moved = [(1, "s1:9300"), (2, "s2:8300")];
        check(&[info(2, 10, &moved)], Some("s2:8300"));
    }

    #[test]
    fn a_forwarded_command_gets_the_leaders_clock() {
        let kv = Command::Kv { op: KvOp::Delete("k".into()), now_ms: 1 };
        check(kv.clone(), &[42]);
        check(Command::Txn { ops: Vec::new(), now_ms: 7 }, &[42]);
        check(Command::SessionDestroy { id: "s".into(), now_ms: 9 }, &[42]);
        check(
            Command::Batch(vec![
                kv,
                Command::KvReap(3),
                Command::SessionDestroy { id: "s".into(), now_ms: 2 },
            ]),
            &[42, 42],
        );
        let reap = Command::KvReap(3);
        let mut same = reap.clone();
        stamp_leader_clock(&mut same, 42);
        assert_eq!(same, reap, "a command without a clock is unchanged");
    }
}
