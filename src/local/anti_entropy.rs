//! Anti-entropy: the full sync and the loop that runs it.
//!
//! Stage: agent local state, repair. Input: the local entries and the latest published
//! snapshot -> output: the repairs `plan::plan` computes, proposed in order and logged.
//! Invariants: a full sync holds the sync gate exclusively from its plan to its last proposal;
//! a catalog already in step gets no proposal; the loop waits for the config-file records and
//! a known leader, runs every interval (±10 %) or sooner when woken, and backs off after a
//! failure (from 1 s, doubling, up to the interval).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{LocalState, plan};
use crate::consensus::ProposeError;

/// First retry delay after a failed sync; doubles up to the interval.
const RETRY: Duration = Duration::from_secs(1);

impl LocalState {
    /// Anti-entropy: compares the local state with the published catalog and proposes the
    /// repairs, logging each. Returns how many commands were proposed. A rejected repair is
    /// logged and the others still go; any other failure ends the pass. Either way the pass
    /// reports the error and the next one retries.
    pub(crate) async fn sync_full(&self) -> Result<usize, ProposeError> {
        let _exclusive = self.gate.write().await;
        let snapshot = self.consensus.snapshots().load_full();
        let cmds = plan::plan(&self.own, &self.entries(), &snapshot.catalog);
        let n = cmds.len();
        let mut rejected = None;
        for cmd in cmds {
            let what = plan::describe(&cmd);
            match self.consensus.propose(cmd).await {
                Ok(()) => tracing::info!(repair = %what, "anti-entropy: catalog repaired"),
                Err(ProposeError::Rejected(msg)) => {
                    tracing::warn!(repair = %what, error = %msg, "anti-entropy: repair rejected");
                    rejected = Some(ProposeError::Rejected(msg));
                }
                Err(e @ ProposeError::Denied(_)) => {
                    // Consul's "... blocked by ACLs": the agent token may not make this write.
                    tracing::warn!(repair = %what, error = %e, "anti-entropy: repair blocked by ACLs (acl.tokens.agent); retrying later");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(repair = %what, error = %e, "anti-entropy: repair not written; retrying later");
                    return Err(e);
                }
            }
        }
        if let Some(e) = rejected {
            return Err(e);
        }
        let mut e = self.entries();
        for s in e.services.values_mut() {
            s.in_sync = true;
        }
        for c in e.checks.values_mut() {
            c.in_sync = true;
        }
        Ok(n)
    }

    /// Runs full syncs until `shutdown`: one as soon as the config-file records are in and a
    /// leader is known, then every interval (±10 %), sooner when woken (a failed proposal, a
    /// local check missing from the catalog, a reload), backing off after failures.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let this = self;
        let mut delay = Duration::ZERO;
        let mut failures = 0u32;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
                () = this.wake.notified() => {}
            }
            let ok = if !this.loaded.load(Ordering::Acquire) || !this.consensus.known_leader() {
                false
            } else {
                match this.sync_full().await {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(commands = n, "anti-entropy: sync repaired the catalog");
                        }
                        true
                    }
                    Err(_) => false,
                }
            };
            let interval = jitter(this.interval);
            if ok {
                failures = 0;
                delay = interval;
            } else {
                delay = RETRY.saturating_mul(1 << failures.min(6)).min(interval);
                failures = failures.saturating_add(1);
            }
        }
    }
}

/// `d` ± 10 %.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.9..1.1))
}
