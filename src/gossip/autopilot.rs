//! AUTOPILOT (`cleanup_dead_servers`, on by default, as in Consul): the leader removes from
//! the Raft configuration the servers gossip declared failed (for `DEAD_SERVER_DELAY`) or
//! left, so a dead server stops counting toward the quorum.
//!
//! Input: the Raft configuration (voters, learners) and each server's gossip status, keyed by
//! its Raft id (`NodeMeta::raft_id`). Output: the ids to remove; the caller removes them one
//! by one through `Consensus::remove_server` (the `force-leave` path).
//!
//! Invariants (Consul's `pruneDeadServers`): a dead learner is removed at once; dead voters
//! are removed only while they are fewer than half of the voters (`2 * dead < voters`), so the
//! living voters keep a majority and the last voters are never removed; the leader (alive by
//! definition) is never removed; a server gossip does not know is left alone (gossip may not
//! have converged yet); with autopilot's `MinQuorum` (0: none), dead voters are removed only
//! while at least that many voters remain.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a server stays failed before autopilot removes it (beyond gossip's own failure
/// detection), so a server that restarts at once keeps its place.
pub(crate) const DEAD_SERVER_DELAY: Duration = Duration::from_secs(5);

/// What gossip says about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Alive, or suspected but not declared failed.
    Alive,
    /// Declared failed this long ago (as observed by the leader's loop).
    Failed(Duration),
    /// Left gracefully.
    Left,
}

/// A server in the Raft configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Raft node id.
    pub id: u64,
    /// Voter (true) or learner.
    pub voter: bool,
    /// Its gossip status; `None` when gossip does not know it.
    pub health: Option<Health>,
}

/// The servers to remove from the configuration, learners first. `leader` is never removed.
pub(crate) fn plan(leader: u64, peers: &[Peer], delay: Duration, min_quorum: u64) -> Vec<u64> {
    let dead = |p: &Peer| {
        p.id != leader
            && match p.health {
                Some(Health::Left) => true,
                Some(Health::Failed(since)) => since >= delay,
                Some(Health::Alive) | None => false,
            }
    };
    let mut out: Vec<u64> = peers.iter().filter(|p| !p.voter && dead(p)).map(|p| p.id).collect();
    let voters = peers.iter().filter(|p| p.voter).count();
    let dead_voters: Vec<u64> = peers.iter().filter(|p| p.voter && dead(p)).map(|p| p.id).collect();
    if !dead_voters.is_empty() {
        let remaining = u64::try_from(voters - dead_voters.len()).unwrap_or(u64::MAX);
        if 2 * dead_voters.len() < voters && remaining >= min_quorum {
            out.extend(dead_voters);
        } else {
            tracing::warn!(
                dead = dead_voters.len(),
                voters,
                "autopilot: too many dead servers to remove them safely; remove them by hand (force-leave)"
            );
        }
    }
    out
}

/// When each server was first seen failed, so `Health::Failed` carries how long it has been.
#[derive(Debug, Default)]
pub(crate) struct FailedSince {
    since: BTreeMap<u64, Instant>,
}

impl FailedSince {
    /// Records `failed` (whether gossip says `id` is failed now) at `now`; returns how long
    /// it has been failed (zero when it just failed), or `None` when it is not.
    pub(crate) fn observe(&mut self, id: u64, failed: bool, now: Instant) -> Option<Duration> {
        if !failed {
            self.since.remove(&id);
            return None;
        }
        let since = *self.since.entry(id).or_insert(now);
        Some(now.saturating_duration_since(since))
    }

    /// Forgets servers no longer in the configuration.
    pub(crate) fn retain(&mut self, ids: &[u64]) {
        self.since.retain(|id, _| ids.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = DEAD_SERVER_DELAY;

    fn peer(id: u64, voter: bool, health: Option<Health>) -> Peer {
        Peer { id, voter, health }
    }

    /// Voters 1..=n (1 leads), `dead` of them failed for longer than the delay.
    fn check(n: u64, failed: &[u64], left: &[u64], want: &[u64]) {
        let peers: Vec<Peer> = (1..=n)
            .map(|id| {
                let health = if failed.contains(&id) {
                    Health::Failed(D * 2)
                } else if left.contains(&id) {
                    Health::Left
                } else {
                    Health::Alive
                };
                peer(id, true, Some(health))
            })
            .collect();
        assert_eq!(plan(1, &peers, D, 0), want, "{n} voters, failed {failed:?}, left {left:?}");
    }

    #[test]
    fn dead_voters_are_removed_only_while_they_are_a_minority() {
        check(3, &[], &[], &[]);
        check(3, &[2], &[], &[2]);
        check(3, &[2, 3], &[], &[]);
        check(5, &[2, 3], &[], &[2, 3]);
        check(5, &[2], &[3], &[2, 3]);
        check(5, &[2, 3, 4], &[], &[]);
        // After two removals a third dead server of three is still a minority; of two it is not.
        check(3, &[3], &[], &[3]);
        check(2, &[2], &[], &[]);
        // A single server never removes anything, not even itself.
        check(1, &[1], &[], &[]);
        check(4, &[3], &[4], &[]);
    }

    #[test]
    fn a_left_server_goes_at_once_and_a_failed_one_after_the_delay() {
        check(3, &[], &[3], &[3]);
        let fresh = [peer(1, true, Some(Health::Alive)), peer(2, true, Some(Health::Alive))];
        let just_failed = [&fresh[..], &[peer(3, true, Some(Health::Failed(D / 2)))]].concat();
        assert_eq!(plan(1, &just_failed, D, 0), Vec::<u64>::new());
        let failed = [&fresh[..], &[peer(3, true, Some(Health::Failed(D)))]].concat();
        assert_eq!(plan(1, &failed, D, 0), [3]);
    }

    #[test]
    fn dead_learners_go_first_and_unknown_servers_and_the_leader_stay() {
        let peers = [
            peer(1, true, Some(Health::Failed(D))),
            peer(2, true, Some(Health::Alive)),
            peer(3, true, None),
            peer(4, false, Some(Health::Failed(D))),
            peer(5, false, None),
            peer(6, true, Some(Health::Failed(D))),
        ];
        assert_eq!(plan(1, &peers, D, 0), [4, 6]);
    }

    #[test]
    fn min_quorum_keeps_dead_voters_that_would_take_the_voters_below_it() {
        let peers: Vec<Peer> = (1..=5)
            .map(|id| peer(id, true, Some(if id == 5 { Health::Failed(D) } else { Health::Alive })))
            .collect();
        assert_eq!(plan(1, &peers, D, 4), [5]);
        assert_eq!(plan(1, &peers, D, 5), Vec::<u64>::new());
    }

    #[test]
    fn failed_since_measures_from_the_first_failed_observation() {
        let t0 = Instant::now();
        let mut f = FailedSince::default();
        assert_eq!(f.observe(7, true, t0), Some(Duration::ZERO));
        assert_eq!(f.observe(7, true, t0 + D), Some(D));
        assert_eq!(f.observe(7, false, t0 + D), None);
        assert_eq!(f.observe(7, true, t0 + 2 * D), Some(Duration::ZERO));
        f.retain(&[]);
        assert_eq!(f.observe(7, true, t0 + 3 * D), Some(Duration::ZERO));
    }
}
