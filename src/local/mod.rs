//! AGENT LOCAL STATE: the services and checks this agent owns, and anti-entropy.
//!
//! Consul's agents own what is registered on them: the agent keeps it in a local state and the
//! catalog is a copy it keeps in step. So does this module.
//!
//! Input: agent API writes (`http/agent.rs`, `http/agent_health.rs`), config-file definitions
//! (`app.rs`), check results (`health::runner`, `health::ttl`) and reaping (`health::reap`)
//! → output: `Register` / `Deregister` / `UpdateCheck` proposals for this agent's node.
//! Flow: a change updates the local state (and, for API registrations, its file under
//! `data_dir/services/` or `data_dir/checks/`), then proposes the matching command at once
//! (the immediate sync; its error goes back to the caller). Every `anti_entropy_interval`
//! (±10 % jitter), and soon after a failed proposal, `sync_full` compares the local state with
//! the published snapshot (`plan`) and proposes the repairs.
//! Files: `plan` (the pure diff), `persist` (the files).
//! Invariants:
//! - The local state feeds the catalog only through proposals (`Consensus::propose`); it never
//!   writes the catalog, and it reads the catalog only from published snapshots.
//! - A full sync of a catalog already in step proposes nothing (no Raft write while idle).
//! - Writers hold the sync gate shared while they change the local state and propose; a full
//!   sync holds it exclusively from its plan to its last proposal, so it never proposes a value
//!   a writer has already replaced (a check result is never reverted by a stale repair).
//! - API registrations are persisted before they are proposed; config-file ones are not (they
//!   come from the files at each start and reload). A proposal the state machine rejects undoes
//!   the local change, so a bad record is not retried forever.

pub mod persist;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, RwLock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::persist::{Disk, PersistError};
use crate::catalog::{CatalogState, Check, HealthStatus, Service, key};
use crate::catalog::{CheckUpdate, Command, Deregistration, Registration};
use crate::consensus::{Consensus, ProposeError};

/// Consul's default anti-entropy interval (before scaling by cluster size).
pub const DEFAULT_INTERVAL: Duration = crate::config::DEFAULT_ANTI_ENTROPY_INTERVAL;
/// First retry delay after a failed sync; doubles up to the interval.
const RETRY: Duration = Duration::from_secs(1);

/// Where a local record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The agent API (persisted in the data dir).
    Api,
    /// A config file (not persisted; re-read at each start and reload).
    Config,
}

/// A service this agent owns.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalService {
    /// The instance as it should be in the catalog.
    pub service: Service,
    /// Where it came from.
    pub source: Source,
    /// Whether the catalog is known to hold it as it is here (Consul's `SyncStatus.InSync`).
    pub in_sync: bool,
}

/// A check this agent owns, with its current status and output.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalCheck {
    /// The check as it should be in the catalog, status and output included.
    pub check: Check,
    /// Where it came from.
    pub source: Source,
    /// Whether the catalog is known to hold it as it is here.
    pub in_sync: bool,
}

/// The local services and checks, by lower-cased ID.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entries {
    /// Services by `key(id)`.
    pub services: BTreeMap<String, LocalService>,
    /// Checks by `key(id)`.
    pub checks: BTreeMap<String, LocalCheck>,
}

/// Why a local change failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The record could not be persisted (nothing was proposed).
    #[error("persisting the agent's local state: {0}")]
    Persist(#[from] PersistError),
    /// The proposal failed (a rejection undid the local change).
    #[error(transparent)]
    Propose(#[from] ProposeError),
}

/// What a change replaced, to undo it.
#[derive(Debug, Default)]
struct Undo {
    services: Vec<(String, Option<LocalService>)>,
    checks: Vec<(String, Option<LocalCheck>)>,
}

/// This agent's local state and its sync to the catalog.
pub struct LocalState {
    consensus: Consensus,
    /// The agent's own registration: its node, `consul` on servers, `serfHealth`.
    own: Registration,
    disk: Option<Disk>,
    interval: Duration,
    entries: Mutex<Entries>,
    gate: RwLock<()>,
    wake: Notify,
    /// Set once the config-file records are in; no full sync runs before.
    loaded: AtomicBool,
}

impl std::fmt::Debug for LocalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalState").field("node", &self.own.node.name).finish_non_exhaustive()
    }
}

impl LocalState {
    /// An empty local state for the node of `own`, persisted under `data_dir` (none: memory
    /// only), fully synced every `interval`.
    pub fn new(
        consensus: Consensus,
        own: Registration,
        data_dir: Option<&Path>,
        interval: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            consensus,
            own,
            disk: data_dir.map(Disk::new),
            interval,
            entries: Mutex::new(Entries::default()),
            gate: RwLock::new(()),
            wake: Notify::new(),
            loaded: AtomicBool::new(false),
        })
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This agent's node name.
    pub fn node_name(&self) -> &str {
        &self.own.node.name
    }

    /// A copy of the local services and checks.
    pub fn snapshot(&self) -> Entries {
        self.entries().clone()
    }

    /// The local service with this ID.
    pub fn service(&self, id: &str) -> Option<Service> {
        self.entries().services.get(&key(id)).map(|s| s.service.clone())
    }

    /// The local check with this ID.
    pub fn check(&self, id: &str) -> Option<Check> {
        self.entries().checks.get(&key(id)).map(|c| c.check.clone())
    }

    /// Reads the persisted services and checks (a config-file record with the same ID wins).
    /// A data dir from before the local state existed adopts this node's records from
    /// `catalog` instead (except `consul` and `serfHealth`), so an upgrade keeps them.
    /// Checks take their status and output from `catalog` when it has them. Returns how many
    /// records were loaded.
    pub fn load(&self, catalog: &CatalogState) -> Result<usize, PersistError> {
        let Some(disk) = &self.disk else { return Ok(0) };
        let node = self.own.node.name.clone();
        let (services, checks, adopted) = if disk.is_new() {
            let services: Vec<Service> = catalog
                .node_services(&node)
                .filter(|s| key(&s.id) != key(plan::CONSUL_SERVICE_ID))
                .map(|s| (**s).clone())
                .collect();
            let checks: Vec<Check> = catalog
                .node_checks(&node)
                .filter(|c| key(&c.check_id) != key(plan::SERF_CHECK_ID))
                .map(|c| (**c).clone())
                .collect();
            disk.create()?;
            (services, checks, true)
        } else {
            let (s, c) = disk.load()?;
            (s, c, false)
        };
        let mut e = self.entries();
        let mut n = 0;
        for mut s in services {
            let k = key(&s.id);
            if e.services.get(&k).is_some_and(|l| l.source == Source::Config) {
                continue;
            }
            s.node.clone_from(&node);
            (s.create_index, s.modify_index) = (0, 0);
            if adopted {
                disk.write_service(&s)?;
            }
            e.services.insert(k, LocalService { service: s, source: Source::Api, in_sync: false });
            n += 1;
        }
        for mut c in checks {
            let k = key(&c.check_id);
            if e.checks.get(&k).is_some_and(|l| l.source == Source::Config) {
                continue;
            }
            c.node.clone_from(&node);
            (c.create_index, c.modify_index) = (0, 0);
            if let Some(cur) = catalog.check(&node, &c.check_id) {
                c.status = cur.status;
                c.output.clone_from(&cur.output);
            }
            if adopted {
                disk.write_check(&c)?;
            }
            e.checks.insert(k, LocalCheck { check: c, source: Source::Api, in_sync: false });
            n += 1;
        }
        if adopted && n > 0 {
            tracing::info!(
                records = n,
                "adopted this node's services and checks from the catalog into the agent's local state"
            );
        }
        Ok(n)
    }

    /// Makes the config-file records those of `regs` (registrations of this node): new and
    /// changed ones are put in, ones no longer defined are dropped (the next sync deregisters
    /// them). Checks the local state already has keep their status and output, and `regs` is
    /// updated to carry them, so proposing `regs` does not flap a check.
    pub fn replace_config(&self, regs: &mut [Registration]) {
        let keep_services: BTreeSet<String> =
            regs.iter().filter_map(|r| r.service.as_ref()).map(|s| key(&s.id)).collect();
        let keep_checks: BTreeSet<String> =
            regs.iter().flat_map(|r| r.checks.iter()).map(|c| key(&c.check_id)).collect();
        let mut touched = Undo::default();
        {
            let mut e = self.entries();
            let dropped: Vec<String> = e
                .services
                .iter()
                .filter(|(k, s)| s.source == Source::Config && !keep_services.contains(*k))
                .map(|(k, _)| k.clone())
                .collect();
            for k in &dropped {
                tracing::info!(service = %k, "service no longer defined in the config files; deregistering it");
                touched.services.push((k.clone(), e.services.remove(k)));
            }
            let dropped_checks: Vec<String> = e
                .checks
                .iter()
                .filter(|(k, c)| {
                    (c.source == Source::Config && !keep_checks.contains(*k))
                        || (!c.check.service_id.is_empty() && dropped.contains(&key(&c.check.service_id)))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in dropped_checks {
                let prev = e.checks.remove(&k);
                touched.checks.push((k, prev));
            }
            for reg in regs.iter_mut() {
                let undo = put(&mut e, reg, Source::Config);
                touched.services.extend(undo.services);
                touched.checks.extend(undo.checks);
            }
        }
        if let Err(err) = self.persist(&touched) {
            tracing::warn!(error = %err, "local state: removing replaced records' files");
        }
        self.loaded.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Registers a service (with its checks) or checks on this agent: local state, file (API
    /// records), then the proposal of `reg`. Checks already known keep their status and output.
    pub async fn register(&self, mut reg: Registration, source: Source) -> Result<(), LocalError> {
        let _shared = self.gate.read().await;
        let undo = put(&mut self.entries(), &mut reg, source);
        if let Err(e) = self.persist(&undo) {
            self.restore(undo);
            return Err(e.into());
        }
        let keys = keys_of(&undo);
        self.propose_change(Command::Register(reg), undo, keys).await
    }

    /// Deregisters a service of this agent (and its checks) from the local state, its files
    /// and the catalog.
    pub async fn deregister_service(&self, id: &str) -> Result<(), LocalError> {
        let _shared = self.gate.read().await;
        let mut undo = Undo::default();
        {
            let mut e = self.entries();
            let k = key(id);
            undo.services.push((k.clone(), e.services.remove(&k)));
            let checks: Vec<String> = e
                .checks
                .iter()
                .filter(|(_, c)| key(&c.check.service_id) == k)
                .map(|(ck, _)| ck.clone())
                .collect();
            for ck in checks {
                let prev = e.checks.remove(&ck);
                undo.checks.push((ck, prev));
            }
        }
        if let Err(e) = self.persist(&undo) {
            self.restore(undo);
            return Err(e.into());
        }
        let cmd = Command::Deregister(Deregistration {
            node: self.own.node.name.clone(),
            service_id: Some(id.to_owned()),
            check_id: None,
        });
        self.propose_change(cmd, undo, (Vec::new(), Vec::new())).await
    }

    /// Deregisters a check of this agent from the local state, its file and the catalog.
    pub async fn deregister_check(&self, id: &str) -> Result<(), LocalError> {
        let _shared = self.gate.read().await;
        let mut undo = Undo::default();
        {
            let k = key(id);
            let prev = self.entries().checks.remove(&k);
            undo.checks.push((k, prev));
        }
        if let Err(e) = self.persist(&undo) {
            self.restore(undo);
            return Err(e.into());
        }
        let cmd = Command::Deregister(Deregistration {
            node: self.own.node.name.clone(),
            service_id: None,
            check_id: Some(id.to_owned()),
        });
        self.propose_change(cmd, undo, (Vec::new(), Vec::new())).await
    }

    /// A check's new status and output (probe results, TTL updates and expiries): recorded
    /// locally, then proposed unless the catalog already has them. A local check missing from
    /// the catalog is left to the next sync, which is woken.
    pub async fn update_check(
        &self,
        id: &str,
        status: HealthStatus,
        output: String,
    ) -> Result<(), ProposeError> {
        let _shared = self.gate.read().await;
        let k = key(id);
        let local = {
            let mut e = self.entries();
            match e.checks.get_mut(&k) {
                Some(lc) => {
                    lc.check.status = status;
                    lc.check.output.clone_from(&output);
                    lc.in_sync = false;
                    true
                }
                None => false,
            }
        };
        let snapshot = self.consensus.snapshots().load_full();
        let Some(cur) = snapshot.catalog.check(&self.own.node.name, id) else {
            if local {
                self.wake.notify_one();
            }
            return Ok(());
        };
        if cur.status != status || cur.output != output {
            let cmd = Command::UpdateCheck(CheckUpdate {
                node: cur.node.clone(),
                check_id: cur.check_id.clone(),
                status,
                output: output.clone(),
            });
            if let Err(e) = self.consensus.propose(cmd).await {
                if !matches!(e, ProposeError::Rejected(_)) {
                    self.wake.notify_one();
                }
                return Err(e);
            }
        }
        if let Some(lc) = self.entries().checks.get_mut(&k)
            && lc.check.status == status
            && lc.check.output == output
        {
            lc.in_sync = true;
        }
        Ok(())
    }

    /// The immediate sync of records already put in the local state (`replace_config`): proposes
    /// `cmd` under the shared gate; a failure is left to the sync loop, which is woken.
    pub async fn propose(&self, cmd: Command) -> Result<(), ProposeError> {
        let _shared = self.gate.read().await;
        let r = self.consensus.propose(cmd).await;
        if r.is_err() {
            self.wake.notify_one();
        }
        r
    }

    /// The published catalog snapshots this state is compared with.
    pub fn snapshots(&self) -> Arc<crate::snapshot::SnapshotHandle> {
        self.consensus.snapshots()
    }

    /// Proposes a writer's command: in sync on success, undone on a rejection, retried by the
    /// sync loop on any other failure.
    async fn propose_change(
        &self,
        cmd: Command,
        undo: Undo,
        (services, checks): (Vec<String>, Vec<String>),
    ) -> Result<(), LocalError> {
        match self.consensus.propose(cmd).await {
            Ok(()) => {
                let mut e = self.entries();
                for k in services {
                    if let Some(s) = e.services.get_mut(&k) {
                        s.in_sync = true;
                    }
                }
                for k in checks {
                    if let Some(c) = e.checks.get_mut(&k) {
                        c.in_sync = true;
                    }
                }
                Ok(())
            }
            Err(ProposeError::Rejected(msg)) => {
                self.restore(undo);
                Err(ProposeError::Rejected(msg).into())
            }
            Err(e) => {
                self.wake.notify_one();
                Err(e.into())
            }
        }
    }

    /// Puts back what `undo` recorded, in memory and on disk.
    fn restore(&self, undo: Undo) {
        {
            let mut e = self.entries();
            for (k, prev) in undo.services.iter().rev() {
                match prev {
                    Some(s) => e.services.insert(k.clone(), s.clone()),
                    None => e.services.remove(k),
                };
            }
            for (k, prev) in undo.checks.iter().rev() {
                match prev {
                    Some(c) => e.checks.insert(k.clone(), c.clone()),
                    None => e.checks.remove(k),
                };
            }
        }
        if let Err(err) = self.persist(&undo) {
            tracing::warn!(error = %err, "local state: restoring a record's file");
        }
    }

    /// Makes the files of the records named in `touched` match the memory: API records are
    /// written, others removed.
    fn persist(&self, touched: &Undo) -> Result<(), PersistError> {
        let Some(disk) = &self.disk else { return Ok(()) };
        let (services, checks): (Vec<_>, Vec<_>) = {
            let e = self.entries();
            (
                touched.services.iter().map(|(k, _)| (k.clone(), e.services.get(k).cloned())).collect(),
                touched.checks.iter().map(|(k, _)| (k.clone(), e.checks.get(k).cloned())).collect(),
            )
        };
        for (k, cur) in services {
            match cur {
                Some(s) if s.source == Source::Api => disk.write_service(&s.service)?,
                _ => disk.remove_service(&k)?,
            }
        }
        for (k, cur) in checks {
            match cur {
                Some(c) if c.source == Source::Api => disk.write_check(&c.check)?,
                _ => disk.remove_check(&k)?,
            }
        }
        Ok(())
    }

    /// Anti-entropy: compares the local state with the published catalog and proposes the
    /// repairs, logging each. Returns how many commands were proposed. A rejected repair is
    /// logged and the others still go; any other failure ends the pass. Either way the pass
    /// reports the error and the next one retries.
    pub async fn sync_full(&self) -> Result<usize, ProposeError> {
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
    pub fn run(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
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
        })
    }
}

/// Puts `reg`'s service and checks into `e` as records from `source`; checks already known
/// keep (and give `reg`) their status and output. Returns what it replaced.
fn put(e: &mut Entries, reg: &mut Registration, source: Source) -> Undo {
    let mut undo = Undo::default();
    if let Some(s) = &reg.service {
        let k = key(&s.id);
        let ls = LocalService { service: s.clone(), source, in_sync: false };
        undo.services.push((k.clone(), e.services.insert(k, ls)));
    }
    for c in &mut reg.checks {
        let k = key(&c.check_id);
        if let Some(prev) = e.checks.get(&k) {
            c.status = prev.check.status;
            c.output.clone_from(&prev.check.output);
        }
        let lc = LocalCheck { check: c.clone(), source, in_sync: false };
        undo.checks.push((k.clone(), e.checks.insert(k, lc)));
    }
    undo
}

fn keys_of(undo: &Undo) -> (Vec<String>, Vec<String>) {
    (
        undo.services.iter().map(|(k, _)| k.clone()).collect(),
        undo.checks.iter().map(|(k, _)| k.clone()).collect(),
    )
}

/// `d` ± 10 %.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.9..1.1))
}

#[cfg(test)]
mod tests;
