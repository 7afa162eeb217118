//! SESSION TTL TIMERS: the leader expires sessions whose TTL lapsed, through Raft.
//!
//! Input: the published sessions (snapshot) and renewals (`renew`, from `/v1/session/renew`
//! and `/v1/session/create`). Output: `Command::SessionDestroy { now_ms }` proposals.
//! Invariants: timers run only on the leader; a session's deadline is `TTL × 2` after its last
//! renewal (Consul's `SessionTTLMultiplier` grace), and a leader that sees a TTL session it has
//! no timer for (start-up, new leadership, created elsewhere) arms a full one, so a restart
//! never expires a session early. Expiry is a Raft command carrying the leader's clock: `apply`
//! stays deterministic and every server releases the same locks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::parse_go_duration;
use crate::raft::{Command, RaftHandle};

/// Consul's `SessionTTLMultiplier`.
pub const TTL_MULTIPLIER: u32 = 2;
/// How often the leader looks for lapsed sessions.
const TICK: Duration = Duration::from_millis(250);

/// The leader's session deadlines.
#[derive(Debug, Default)]
pub struct SessionTimers {
    deadlines: Mutex<HashMap<String, Instant>>,
}

/// Unix milliseconds: the clock KV and session commands carry (read by proposers, never by
/// `apply`).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A session's TTL as given (`"15s"`), or `None` without one.
pub fn ttl_of(ttl: &str) -> Option<Duration> {
    if ttl.is_empty() {
        return None;
    }
    parse_go_duration(ttl).ok().filter(|d| !d.is_zero())
}

impl SessionTimers {
    /// Timers with none armed.
    pub fn new() -> Arc<Self> {
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
    pub fn renew(&self, id: &str, ttl: Duration) {
        let deadline = Instant::now() + ttl * TTL_MULTIPLIER;
        self.with(|m| m.insert(id.to_owned(), deadline));
    }

    /// Runs the expiry loop until `stop`.
    pub async fn run(self: Arc<Self>, raft: RaftHandle, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !raft.is_leader() {
                self.with(HashMap::clear);
                continue;
            }
            for id in self.lapsed(&raft) {
                let now_ms = unix_ms();
                match raft.propose(Command::SessionDestroy { id: id.clone(), now_ms }).await {
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
    fn lapsed(&self, raft: &RaftHandle) -> Vec<String> {
        let snap = raft.snapshots().load_full();
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
