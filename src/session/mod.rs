//! SESSION TTL TIMERS: the leader expires sessions whose TTL lapsed, through Raft.
//!
//! Input: the published sessions (snapshot) and renewals (`renew`, from `/v1/session/renew`
//! and `/v1/session/create`; a follower forwards a renewal to the leader, `serve_rpc`).
//! Output: `Command::SessionDestroy { now_ms }` proposals through `consensus::Consensus`.
//! Invariants: timers run only on the leader; a session's deadline is `TTL × 2` after its last
//! renewal (Consul's `SessionTTLMultiplier` grace), and a leader that sees a TTL session it has
//! no timer for (start-up, new leadership, created elsewhere) arms a full one, so a restart
//! never expires a session early. Expiry is a Raft command carrying the leader's clock: `apply`
//! stays deterministic and every server releases the same locks.
//!
//! The same leader loop reaps KV tombstones (`TombstoneGc`): it notes when the last delete
//! index grew and, once a noted index is older than `TOMBSTONE_TTL` (Consul's 15 min), proposes
//! `Command::KvReap` up to it. A watcher blocked on a prefix has long been woken by then.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::parse_go_duration;
use crate::catalog::Command;
use crate::clock::unix_ms;
use crate::consensus::Consensus;

/// Consul's `SessionTTLMultiplier`.
pub(crate) const TTL_MULTIPLIER: u32 = 2;
/// How often the leader looks for lapsed sessions.
const TICK: Duration = Duration::from_millis(250);
/// Consul's `tombstone_ttl`: how long a deleted key's tombstone is kept.
pub(crate) const TOMBSTONE_TTL: Duration = Duration::from_secs(15 * 60);

/// When the leader saw each new tombstone index; yields the index to reap up to once it is old.
#[derive(Debug)]
pub(crate) struct TombstoneGc {
    ttl: Duration,
    /// (first seen, tombstone index), oldest first.
    marks: VecDeque<(Instant, u64)>,
    /// Highest index already proposed for reaping.
    reaped: u64,
}

impl TombstoneGc {
    /// A collector keeping tombstones for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { ttl, marks: VecDeque::new(), reaped: 0 }
    }

    /// Notes the current last-delete index at `now`; returns the index to reap up to, if any
    /// noted index is now older than the TTL.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        tombstones_index: u64,
        have_tombstones: bool,
    ) -> Option<u64> {
        if tombstones_index > self.marks.back().map_or(self.reaped, |m| m.1) {
            self.marks.push_back((now, tombstones_index));
        }
        let mut upto = None;
        while let Some(&(seen, index)) = self.marks.front() {
            if now.saturating_duration_since(seen) < self.ttl {
                break;
            }
            upto = Some(index);
            self.marks.pop_front();
        }
        let upto = upto.filter(|u| *u > self.reaped && have_tombstones)?;
        Some(upto)
    }

    /// The reap up to `upto` was applied.
    pub(crate) fn reaped(&mut self, upto: u64) {
        self.reaped = self.reaped.max(upto);
    }

    /// Forget everything (leadership lost): a new leader starts the clock again.
    pub(crate) fn reset(&mut self) {
        self.marks.clear();
    }
}

/// The leader's session deadlines.
#[derive(Debug, Default)]
pub(crate) struct SessionTimers {
    deadlines: Mutex<HashMap<String, Instant>>,
}

/// A session's TTL as given (`"15s"`), or `None` without one.
pub(crate) fn ttl_of(ttl: &str) -> Option<Duration> {
    if ttl.is_empty() {
        return None;
    }
    parse_go_duration(ttl).ok().filter(|d| !d.is_zero())
}

impl SessionTimers {
    /// Timers with none armed.
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Instant>) -> T) -> T {
        let mut guard = match self.deadlines.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// (Re)arms the timer of session `id` for `ttl × 2` from now.
    pub(crate) fn renew(&self, id: &str, ttl: Duration) {
        let deadline = Instant::now() + ttl * TTL_MULTIPLIER;
        self.with(|m| m.insert(id.to_owned(), deadline));
    }

    /// Runs the expiry loop until `stop`.
    pub(crate) async fn run(self: Arc<Self>, consensus: Consensus, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        let mut gc = TombstoneGc::new(TOMBSTONE_TTL);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !consensus.is_leader() {
                self.with(HashMap::clear);
                gc.reset();
                continue;
            }
            let (index, have) = {
                let snap = consensus.snapshots().load();
                (snap.catalog.kv().indexes().tombstones, snap.catalog.kv().tombstone_count() > 0)
            };
            if let Some(upto) = gc.observe(Instant::now(), index, have) {
                match consensus.propose(Command::KvReap(upto)).await {
                    Ok(()) => gc.reaped(upto),
                    Err(e) => tracing::warn!(error = %e, "could not reap KV tombstones"),
                }
            }
            for id in self.lapsed(&consensus) {
                let now_ms = unix_ms();
                let started = Instant::now();
                let expired = consensus.propose(Command::SessionDestroy { id: id.clone(), now_ms }).await;
                crate::metrics::measure("consul.session_ttl.invalidate", Vec::new(), started.elapsed());
                match expired {
                    Ok(()) => {
                        tracing::info!(session = %id, "session TTL expired; session invalidated");
                        self.with(|m| m.remove(&id));
                    }
                    Err(e) => tracing::warn!(session = %id, error = %e, "could not expire session"),
                }
            }
        }
    }

    /// Syncs the timers with the published sessions and returns the IDs past their deadline.
    fn lapsed(&self, consensus: &Consensus) -> Vec<String> {
        let snap = consensus.snapshots().load_full();
        let now = Instant::now();
        self.with(|m| {
            let kv = snap.catalog.kv();
            m.retain(|id, _| kv.session(id).is_some());
            let mut out = Vec::new();
            for s in kv.sessions() {
                let Some(ttl) = ttl_of(&s.ttl) else { continue };
                let deadline = *m.entry(s.id.clone()).or_insert_with(|| now + ttl * TTL_MULTIPLIER);
                if deadline <= now {
                    out.push(s.id.clone());
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::TombstoneGc;

    #[test]
    fn tombstones_are_reaped_only_after_the_ttl_and_once() {
        let ttl = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut gc = TombstoneGc::new(ttl);
        assert_eq!(gc.observe(t0, 0, false), None);
        assert_eq!(gc.observe(t0, 10, true), None);
        assert_eq!(gc.observe(t0 + Duration::from_secs(30), 20, true), None);
        assert_eq!(gc.observe(t0 + Duration::from_secs(59), 20, true), None);
        // Index 10 was first seen 60 s ago: reap up to it, not 20.
        assert_eq!(gc.observe(t0 + ttl, 20, true), Some(10));
        gc.reaped(10);
        assert_eq!(gc.observe(t0 + ttl + Duration::from_secs(1), 20, true), None);
        assert_eq!(gc.observe(t0 + Duration::from_secs(90), 20, true), Some(20));
        gc.reaped(20);
        assert_eq!(gc.observe(t0 + Duration::from_secs(500), 20, true), None);
        // Nothing to reap when no tombstone is left.
        assert_eq!(gc.observe(t0 + Duration::from_secs(500), 30, false), None);
        assert_eq!(gc.observe(t0 + Duration::from_secs(600), 30, false), None);
    }
}
