//! TTL checks: agent-local timers for the TTL checks on this agent's node.
//!
//! Input: TTL check definitions found in the published snapshot (so timers survive a restart),
//! explicit arming after registration, and `update` calls from `/v1/agent/check/{pass,warn,
//! fail,update}` → output: status changes through the agent's local state (`local`), which
//! records them and proposes `Command::UpdateCheck`.
//! Invariants:
//! - `update` resets the timer and proposes only when status or output changed.
//! - On expiry the check becomes `critical` with Consul's output `TTL expired` (or `TTL expired
//!   (last output before timeout follows): <output>`); the text travels in the command.
//! - A timer fires once per arming; a failed expiry proposal is retried a second later.
//! - Time is `tokio::time`, so tests can pause and advance it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::agent::TtlSpec;
use crate::catalog::{HealthStatus, key};
use crate::consensus::ProposeError;
use crate::local::LocalState;
use crate::snapshot::SnapshotHandle;

/// Consul's default `OutputMaxSize` for TTL notes.
pub(crate) const OUTPUT_MAX_SIZE: usize = 4096;
/// Output of a check whose TTL ran out.
pub(crate) const TTL_EXPIRED: &str = "TTL expired";
/// Delay before retrying an expiry that could not be proposed.
const RETRY: Duration = Duration::from_secs(1);

/// Why a TTL update failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TtlError {
    /// No such check on this agent's node.
    #[error("Unknown check ID {0:?}. Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
    /// The check exists but is not a TTL check.
    #[error("CheckID {0:?} does not have associated TTL")]
    NotTtl(String),
    /// Raft did not take the update.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The state machine rejected the update (Consul's error text).
    #[error("{0}")]
    Rejected(String),
}

#[derive(Debug)]
struct Timer {
    check_id: String,
    ttl: Duration,
    deadline: Instant,
    fired: bool,
    last_output: String,
}

/// Agent-local TTL timers for checks on this agent's node.
pub(crate) struct TtlChecks {
    local: Arc<LocalState>,
    snapshots: Arc<SnapshotHandle>,
    node_name: String,
    timers: Mutex<HashMap<String, Timer>>,
    wake: Notify,
}

impl std::fmt::Debug for TtlChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlChecks").field("node_name", &self.node_name).finish_non_exhaustive()
    }
}

/// Consul's TTL output truncation: `<first N bytes> ... (captured N of M bytes)`.
pub(crate) fn truncate_output(output: String) -> String {
    if output.len() <= OUTPUT_MAX_SIZE {
        return output;
    }
    let mut cut = OUTPUT_MAX_SIZE;
    while !output.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ... (captured {} of {} bytes)", &output[..cut], cut, output.len())
}

fn expired_output(last: &str) -> String {
    if last.is_empty() {
        TTL_EXPIRED.to_owned()
    } else {
        format!("{TTL_EXPIRED} (last output before timeout follows): {last}")
    }
}

impl TtlChecks {
    /// Timers for the TTL checks of node `node_name`.
    pub(crate) fn new(
        local: Arc<LocalState>,
        snapshots: Arc<SnapshotHandle>,
        node_name: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            local,
            snapshots,
            node_name,
            timers: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        })
    }

    fn timers(&self) -> MutexGuard<'_, HashMap<String, Timer>> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the timers until `shutdown`: re-arms from the snapshot and fires expiries.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let this = self;
        let mut published = this.snapshots.subscribe();
        let mut watching = true;
        loop {
            this.sync_from_snapshot();
            let next = this.next_deadline();
            let sleep = async move {
                match next {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = published.changed(), if watching => watching = r.is_ok(),
                () = this.wake.notified() => {}
                () = sleep => this.fire_expired().await,
            }
        }
    }

    /// Starts (or restarts) the timer of a freshly registered TTL check.
    pub(crate) fn arm(&self, spec: &TtlSpec) {
        let now = Instant::now();
        self.timers().insert(
            key(&spec.check_id),
            Timer {
                check_id: spec.check_id.clone(),
                ttl: spec.ttl,
                deadline: now + spec.ttl,
                fired: false,
                last_output: String::new(),
            },
        );
        self.wake.notify_one();
    }

    /// Records a TTL update: resets the timer and proposes the new status and output if they
    /// differ from the catalog's.
    pub(crate) async fn update(
        &self,
        check_id: &str,
        status: HealthStatus,
        output: String,
    ) -> Result<(), TtlError> {
        let snapshot = self.snapshots.load_full();
        // The agent's own definition wins: the catalog's copy may have drifted or be missing
        // until the next sync.
        let check = match self.local.check(check_id) {
            Some(c) => Arc::new(c),
            None => Arc::clone(
                snapshot
                    .catalog
                    .check(&self.node_name, check_id)
                    .ok_or_else(|| TtlError::UnknownCheck(check_id.to_owned()))?,
            ),
        };
        if check.definition.ttl_ns == 0 {
            return Err(TtlError::NotTtl(check_id.to_owned()));
        }
        let output = truncate_output(output);
        let ttl = Duration::from_nanos(check.definition.ttl_ns);
        {
            let now = Instant::now();
            let mut timers = self.timers();
            let t = timers.entry(key(check_id)).or_insert_with(|| Timer {
                check_id: check.check_id.clone(),
                ttl,
                deadline: now,
                fired: false,
                last_output: String::new(),
            });
            t.ttl = ttl;
            t.deadline = now + ttl;
            t.fired = false;
            t.last_output.clone_from(&output);
        }
        self.wake.notify_one();
        // The local state records it even when the catalog already has it, and proposes
        // only a change.
        match self.local.update_check(&check.check_id, status, output).await {
            Ok(()) => Ok(()),
            Err(ProposeError::Rejected(msg)) => Err(TtlError::Rejected(msg)),
            Err(e) => Err(TtlError::Propose(e)),
        }
    }

    /// Makes the timers match the TTL checks of this node in the current snapshot: new checks
    /// get a full TTL, vanished ones are dropped.
    fn sync_from_snapshot(&self) {
        let snapshot = self.snapshots.load_full();
        let now = Instant::now();
        let mut timers = self.timers();
        let mut seen = std::collections::HashSet::new();
        for c in snapshot.catalog.node_checks(&self.node_name) {
            if c.definition.ttl_ns == 0 {
                continue;
            }
            let k = key(&c.check_id);
            let ttl = Duration::from_nanos(c.definition.ttl_ns);
            let t = timers.entry(k.clone()).or_insert_with(|| Timer {
                check_id: c.check_id.clone(),
                ttl,
                deadline: now + ttl,
                fired: false,
                last_output: String::new(),
            });
            t.ttl = ttl;
            seen.insert(k);
        }
        timers.retain(|k, _| seen.contains(k));
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers().values().filter(|t| !t.fired).map(|t| t.deadline).min()
    }

    /// Proposes `critical` for every timer past its deadline.
    async fn fire_expired(&self) {
        let now = Instant::now();
        let due: Vec<(String, String)> = {
            let mut timers = self.timers();
            timers
                .values_mut()
                .filter(|t| !t.fired && t.deadline <= now)
                .map(|t| {
                    t.fired = true;
                    (t.check_id.clone(), expired_output(&t.last_output))
                })
                .collect()
        };
        for (check_id, output) in due {
            let snapshot = self.snapshots.load_full();
            let Some(check) = snapshot.catalog.check(&self.node_name, &check_id) else {
                continue;
            };
            if check.status == HealthStatus::Critical && check.output == output {
                continue;
            }
            tracing::warn!(check = %check_id, "check missed TTL, is now critical");
            match self.local.update_check(&check.check_id, HealthStatus::Critical, output).await {
                Ok(()) => {}
                Err(ProposeError::Rejected(msg)) => {
                    tracing::warn!(check = %check_id, error = %msg, "TTL expiry rejected");
                }
                Err(e) => {
                    tracing::warn!(check = %check_id, error = %e, "TTL expiry not proposed; retrying");
                    if let Some(t) = self.timers().get_mut(&key(&check_id))
                        && t.fired
                    {
                        t.fired = false;
                        t.deadline = Instant::now() + RETRY;
                    }
                }
            }
        }
    }

    /// Deadline of a check's timer, for tests.
    #[cfg(test)]
    pub(crate) fn deadline(&self, check_id: &str) -> Option<Instant> {
        self.timers().get(&key(check_id)).filter(|t| !t.fired).map(|t| t.deadline)
    }
}
