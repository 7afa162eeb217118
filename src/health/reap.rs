//! `DeregisterCriticalServiceAfter`: removes a service of this agent's node whose check has
//! been critical for longer than the check's limit.
//!
//! Input: each published snapshot (to note when a check turned critical) and a tick every
//! `check_reap_interval` → output: the service removed from the agent's local state, which
//! proposes `Command::Deregister` (so anti-entropy does not bring it back).
//! Invariants: limits below `check_deregister_interval_min` are raised to it; a check that
//! leaves `critical` resets its clock; only services on this agent's node are reaped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::catalog::{HealthStatus, key};
use crate::config::CheckConfig;
use crate::local::LocalState;
use crate::snapshot::SnapshotHandle;

/// When each of this node's critical, reapable checks turned critical (as first seen).
#[derive(Debug, Default)]
pub(crate) struct CriticalClock {
    since: HashMap<String, Instant>,
}

impl CriticalClock {
    /// Notes the checks of `node` in `cat` at `now`; returns the service IDs whose limit ran out.
    pub(crate) fn observe(
        &mut self,
        cat: &crate::catalog::CatalogState,
        node: &str,
        min: Duration,
        now: Instant,
    ) -> Vec<String> {
        let mut due = Vec::new();
        let mut seen = Vec::new();
        for c in cat.node_checks(node) {
            let limit = c.definition.deregister_critical_service_after_ns;
            if c.service_id.is_empty() || limit == 0 || c.status != HealthStatus::Critical {
                continue;
            }
            let k = key(&c.check_id);
            let since = *self.since.entry(k.clone()).or_insert(now);
            seen.push(k);
            let limit = Duration::from_nanos(limit).max(min);
            if now.duration_since(since) >= limit && !due.contains(&c.service_id) {
                due.push(c.service_id.clone());
            }
        }
        self.since.retain(|k, _| seen.contains(k));
        due
    }
}

/// Runs the reaper for node `node` until `shutdown`.
pub(crate) async fn run(
    local: Arc<LocalState>,
    snapshots: Arc<SnapshotHandle>,
    node: String,
    config: CheckConfig,
    shutdown: CancellationToken,
) {
    let mut clock = CriticalClock::default();
    let mut published = snapshots.subscribe();
    let mut tick = tokio::time::interval(config.reap_interval);
    loop {
        let reap = tokio::select! {
            () = shutdown.cancelled() => break,
            r = published.changed() => {
                if r.is_err() {
                    break;
                }
                false
            }
            _ = tick.tick() => true,
        };
        let snapshot = snapshots.load_full();
        let due = clock.observe(&snapshot.catalog, &node, config.deregister_interval_min, Instant::now());
        if !reap {
            continue;
        }
        for service_id in due {
            tracing::warn!(service = %service_id, "check critical for longer than DeregisterCriticalServiceAfter; deregistering the service");
            if let Err(e) = local.deregister_service(&service_id).await {
                tracing::warn!(service = %service_id, error = %e, "deregistration of a critical service failed");
            }
        }
    }
}
