//! The check runner: one task per active check of this agent's node.
//!
//! Input: the check definitions of this agent's node in each published snapshot → output:
//! status changes through the agent's local state (`local`), which records them and proposes
//! `Command::UpdateCheck` (and nothing else).
//! Flow per check: start jitter (random within one interval) → probe (`probe`) within the
//! timeout → thresholds (`status::StatusHandler`) → `report`: compare with the catalog.
//! Invariants:
//! - A task is started when a probed check appears on this node, restarted when its kind or
//!   definition changes, stopped when it disappears; status/output changes never restart it.
//! - A status change is proposed at once; an output-only change waits `check_update_interval`
//!   (then the latest output is written, unless the catalog already has it); nothing is
//!   proposed when the catalog already holds the result. So a steady or flapping-output check
//!   costs no Raft write per probe.
//! - Script checks run only if allowed: `enable_script_checks`, or `enable_local_script_checks`
//!   for checks defined in config files.
//! - Alias checks are not probed: they mirror the aliased service's or node's checks from
//!   each published snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::probe::Probe;
use super::status::{StatusHandler, Thresholds, output_limit};
use crate::catalog::{CatalogState, CheckDefinition, HealthStatus, key};
use crate::config::CheckConfig;
use crate::local::LocalState;
use crate::snapshot::SnapshotHandle;

/// Retry delay after a proposal failed (no leader, shutting down).
const RETRY: Duration = Duration::from_secs(1);

/// Counters for `/v1/agent/self` and the benchmark.
#[derive(Debug, Default)]
pub(crate) struct RunnerStats {
    /// Probes run since start.
    pub probes: AtomicU64,
    /// `UpdateCheck` proposals made since start.
    pub updates: AtomicU64,
    /// Check tasks running now.
    pub running: AtomicU64,
}

/// Runs this agent's HTTP, TCP, UDP, gRPC, H2PING, script and alias checks.
pub(crate) struct CheckRunner {
    local: Arc<LocalState>,
    snapshots: Arc<SnapshotHandle>,
    node_name: String,
    config: CheckConfig,
    /// Lower-cased IDs of the checks defined in config files.
    local_ids: HashSet<String>,
    stats: RunnerStats,
}

impl std::fmt::Debug for CheckRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckRunner").field("node_name", &self.node_name).finish_non_exhaustive()
    }
}

/// The kinds this runner runs.
pub(crate) fn is_runnable(kind: &str) -> bool {
    matches!(kind, "http" | "tcp" | "udp" | "grpc" | "h2ping" | "script" | "alias")
}

struct Running {
    kind: String,
    def: CheckDefinition,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The result waiting to reach the catalog, per check.
#[derive(Debug, Default)]
struct Reporter {
    latest: Option<(HealthStatus, String)>,
    /// When a deferred output-only change (or a retry) is due.
    due: Option<Instant>,
}

impl CheckRunner {
    /// A runner for node `node_name`; `local_ids` are the IDs of checks from config files.
    pub(crate) fn new(
        local: Arc<LocalState>,
        snapshots: Arc<SnapshotHandle>,
        node_name: String,
        config: CheckConfig,
        local_ids: impl IntoIterator<Item = String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            local,
            snapshots,
            node_name,
            config,
            local_ids: local_ids.into_iter().map(|id| key(&id)).collect(),
            stats: RunnerStats::default(),
        })
    }

    /// Counters.
    pub(crate) fn stats(&self) -> &RunnerStats {
        &self.stats
    }

    /// Whether a script check with this ID may run.
    pub(crate) fn script_allowed(&self, check_id: &str) -> bool {
        self.config.enable_script_checks
            || (self.config.enable_local_script_checks && self.local_ids.contains(&key(check_id)))
    }

    /// Keeps one task per active check until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let this = self;
        let mut published = this.snapshots.subscribe();
        let mut tasks: HashMap<String, Running> = HashMap::new();
        loop {
            this.sync(&mut tasks, &shutdown);
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = published.changed() => if r.is_err() { break },
            }
        }
        for (_, r) in tasks.drain() {
            r.stop.cancel();
            r.task.abort();
        }
        this.stats.running.store(0, Ordering::Relaxed);
    }

    /// Starts, restarts and stops tasks to match this node's checks in the current snapshot.
    fn sync(self: &Arc<Self>, tasks: &mut HashMap<String, Running>, shutdown: &CancellationToken) {
        let snapshot = self.snapshots.load_full();
        let mut seen = HashSet::new();
        for c in snapshot.catalog.node_checks(&self.node_name) {
            if !is_runnable(&c.check_type) {
                continue;
            }
            let k = key(&c.check_id);
            seen.insert(k.clone());
            if let Some(r) = tasks.get(&k)
                && r.kind == c.check_type
                && r.def == c.definition
                && !r.task.is_finished()
            {
                continue;
            }
            if let Some(old) = tasks.remove(&k) {
                old.stop.cancel();
            }
            let stop = shutdown.child_token();
            let this = Arc::clone(self);
            let (id, kind, def) = (c.check_id.clone(), c.check_type.clone(), c.definition.clone());
            let task_stop = stop.clone();
            let task = tokio::spawn(async move { this.run_check(id, kind, def, task_stop).await });
            tasks.insert(k, Running { kind: c.check_type.clone(), def: c.definition.clone(), stop, task });
        }
        tasks.retain(|k, r| {
            let keep = seen.contains(k);
            if !keep {
                r.stop.cancel();
            }
            keep
        });
        self.stats.running.store(tasks.len() as u64, Ordering::Relaxed);
    }

    async fn run_check(
        self: Arc<Self>,
        check_id: String,
        kind: String,
        def: CheckDefinition,
        stop: CancellationToken,
    ) {
        if kind == "alias" {
            return self.run_alias(check_id, def, stop).await;
        }
        if kind == "script" && !self.script_allowed(&check_id) {
            tracing::warn!(check = %check_id, "script check not run: script checks are disabled on this agent (enable_script_checks / enable_local_script_checks)");
            // Parked rather than ended, so `sync` does not restart it on every snapshot.
            return stop.cancelled().await;
        }
        let mut rep = Reporter::default();
        let probe = match Probe::build(&kind, &def).await {
            None => return,
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                tracing::warn!(check = %check_id, error = %e, "check cannot run");
                rep.latest = Some((HealthStatus::Critical, e));
                self.report(&check_id, &mut rep).await;
                return stop.cancelled().await;
            }
        };
        let interval = match Duration::from_nanos(def.interval_ns) {
            d if d.is_zero() => Duration::from_secs(10),
            d => d,
        };
        let timeout = match Duration::from_nanos(def.timeout_ns) {
            d if d.is_zero() => probe.default_timeout(),
            d => d,
        };
        let max = output_limit(&def, self.config.output_max_size);
        let mut handler = StatusHandler::new(Thresholds::of(&def));
        // Start jitter: a random point within one interval, so thousands of checks registered
        // together do not probe together.
        let mut next = Instant::now() + stagger(interval);
        loop {
            if !self.wait_until(&check_id, next, &mut rep, &stop).await {
                return;
            }
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                o = probe.run(timeout, max) => o,
            };
            self.stats.probes.fetch_add(1, Ordering::Relaxed);
            if let Some(status) = handler.observe(outcome.0) {
                rep.latest = Some((status, outcome.1));
                self.report(&check_id, &mut rep).await;
            } else {
                tracing::debug!(check = %check_id, status = outcome.0.as_str(), "result below its threshold; not reported");
            }
            next = Instant::now() + interval;
        }
    }

    /// Sleeps until `at`, flushing deferred output on the way; false when stopped.
    async fn wait_until(
        &self,
        check_id: &str,
        at: Instant,
        rep: &mut Reporter,
        stop: &CancellationToken,
    ) -> bool {
        loop {
            let due = rep.due;
            tokio::select! {
                () = stop.cancelled() => return false,
                () = sleep_until(at) => return true,
                () = sleep_until(due.unwrap_or(at)), if due.is_some() => {
                    rep.due = None;
                    self.flush(check_id, rep).await;
                }
            }
        }
    }

    /// Mirrors the aliased service or node on every published snapshot.
    async fn run_alias(&self, check_id: String, def: CheckDefinition, stop: CancellationToken) {
        let mut published = self.snapshots.subscribe();
        let mut rep = Reporter::default();
        loop {
            let snapshot = self.snapshots.load_full();
            rep.latest = Some(alias_status(&snapshot.catalog, &self.node_name, &check_id, &def));
            self.report(&check_id, &mut rep).await;
            loop {
                let due = rep.due;
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = published.changed() => {
                        if r.is_err() {
                            return;
                        }
                        break;
                    }
                    () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                        rep.due = None;
                        self.flush(&check_id, &mut rep).await;
                    }
                }
            }
        }
    }

    /// Reports the latest result: status changes at once, output-only changes after
    /// `check_update_interval` (recorded in the local state at once, so the agent's own view
    /// shows them), nothing when the catalog already has it.
    async fn report(&self, check_id: &str, rep: &mut Reporter) {
        let Some((status, output)) = rep.latest.clone() else { return };
        let snapshot = self.snapshots.load_full();
        let Some(cur) = snapshot.catalog.check(&self.node_name, check_id) else { return };
        if cur.status != status || (cur.output != output && self.config.update_interval.is_zero()) {
            rep.due = None;
            self.propose(check_id, status, output, rep).await;
        } else if cur.output != output {
            self.local.record_result(check_id, status, &output);
            if rep.due.is_none() {
                rep.due = Some(Instant::now() + self.config.update_interval);
            }
        } else {
            rep.due = None;
        }
    }

    /// Writes the latest result if the catalog still differs (a deferred output or a retry).
    async fn flush(&self, check_id: &str, rep: &mut Reporter) {
        let Some((status, output)) = rep.latest.clone() else { return };
        let snapshot = self.snapshots.load_full();
        let Some(cur) = snapshot.catalog.check(&self.node_name, check_id) else { return };
        if cur.status != status || cur.output != output {
            self.propose(check_id, status, output, rep).await;
        }
    }

    async fn propose(&self, check_id: &str, status: HealthStatus, output: String, rep: &mut Reporter) {
        self.stats.updates.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(check = %check_id, status = status.as_str(), "check status update");
        if let Err(e) = self.local.update_check(check_id, status, output).await {
            tracing::warn!(check = %check_id, error = %e, "check update not written; retrying");
            rep.due = Some(Instant::now() + RETRY);
        }
    }
}

/// A random delay within one interval.
fn stagger(interval: Duration) -> Duration {
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(rand::random_range(0..nanos))
}

/// The status of an alias check: the worst of the aliased service's checks (with its node's
/// node-level checks), or of the aliased node's node-level checks; Consul's output texts.
pub(crate) fn alias_status(
    cat: &CatalogState,
    own_node: &str,
    own_check: &str,
    def: &CheckDefinition,
) -> (HealthStatus, String) {
    let node = if def.alias_node.is_empty() { own_node } else { def.alias_node.as_str() };
    if cat.node(node).is_none() {
        return (HealthStatus::Critical, format!("Node {node:?} not found"));
    }
    let is_self =
        |c: &crate::catalog::Check| c.node.eq_ignore_ascii_case(own_node) && c.check_id == own_check;
    let checks: Vec<_> = if def.alias_service.is_empty() {
        cat.node_checks(node).filter(|c| c.service_id.is_empty() && !is_self(c)).collect()
    } else {
        if cat.service(node, &def.alias_service).is_none() {
            return (
                HealthStatus::Critical,
                format!("Service {:?} could not be found on node {node:?}", def.alias_service),
            );
        }
        cat.instance_checks(node, &def.alias_service).filter(|c| !is_self(c)).collect()
    };
    let Some(worst) = checks.iter().max_by_key(|c| c.status) else {
        return (HealthStatus::Passing, "No checks found.".into());
    };
    match worst.status {
        HealthStatus::Passing => (HealthStatus::Passing, "All checks passing.".into()),
        s => (
            s,
            format!(
                "Aliased check {:?} {}: {}",
                worst.name,
                if s == HealthStatus::Critical { "failing" } else { "warning" },
                worst.output
            ),
        ),
    }
}
