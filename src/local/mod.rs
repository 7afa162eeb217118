//! AGENT LOCAL STATE: the services and checks this agent owns, and anti-entropy.
//!
//! Consul's agents own what is registered on them: the agent keeps it in a local state and the
//! catalog is a copy it keeps in step. So does this module.
//!
//! Input: agent API writes (`http/agent.rs`, `http/agent_health.rs`), config-file definitions
//! (`app::register`), check results (`health::runner`, `health::ttl`) and reaping (`health::reap`)
//! → output: `Register` / `Deregister` / `UpdateCheck` proposals for this agent's node.
//! Flow: a change updates the local state (and, for API registrations, its file under
//! `data_dir/services/` or `data_dir/checks/`), then proposes the matching command at once
//! (the immediate sync; its error goes back to the caller). Every `anti_entropy_interval`
//! (±10 % jitter), and soon after a failed proposal, `sync_full` compares the local state with
//! the published snapshot (`plan`) and proposes the repairs.
//! Files: `load` (persisted and config-file records), `write` (the writers and their
//! immediate sync), `anti_entropy` (the full sync and its loop), `plan` (the pure diff),
//! `persist` (the files); here the records, the state and its undo.
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

mod anti_entropy;
mod load;
pub(crate) mod persist;
pub(crate) mod plan;
mod write;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, RwLock};

use self::persist::{Disk, PersistError};
use crate::catalog::{Check, Registration, Service, key};
use crate::consensus::{Consensus, ProposeError};

/// Consul's default anti-entropy interval (before scaling by cluster size).
#[cfg(test)]
pub(crate) const DEFAULT_INTERVAL: Duration = crate::config::DEFAULT_ANTI_ENTROPY_INTERVAL;

/// Where a local record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The agent API (persisted in the data dir).
    Api,
    /// A config file (not persisted; re-read at each start and reload).
    Config,
}

/// A service this agent owns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LocalService {
    /// The instance as it should be in the catalog.
    pub service: Service,
    /// Where it came from.
    pub source: Source,
    /// Whether the catalog is known to hold it as it is here (Consul's `SyncStatus.InSync`).
    pub in_sync: bool,
}

/// A check this agent owns, with its current status and output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LocalCheck {
    /// The check as it should be in the catalog, status and output included.
    pub check: Check,
    /// Where it came from.
    pub source: Source,
    /// Whether the catalog is known to hold it as it is here.
    pub in_sync: bool,
}

/// The local services and checks, by lower-cased ID.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Entries {
    /// Services by `key(id)`.
    pub services: BTreeMap<String, LocalService>,
    /// Checks by `key(id)`.
    pub checks: BTreeMap<String, LocalCheck>,
}

/// Why a local change failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalError {
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
pub(crate) struct LocalState {
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
    pub(crate) fn new(
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

    /// A copy of the local services and checks.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Entries {
        self.entries().clone()
    }

    /// The local service with this ID.
    pub(crate) fn service(&self, id: &str) -> Option<Service> {
        self.entries().services.get(&key(id)).map(|s| s.service.clone())
    }

    /// The local check with this ID.
    pub(crate) fn check(&self, id: &str) -> Option<Check> {
        self.entries().checks.get(&key(id)).map(|c| c.check.clone())
    }

    /// The services registered on this agent (API and config files; not the agent's own
    /// `consul` service), as Consul's `/v1/agent/services` lists them.
    pub(crate) fn services(&self) -> Vec<Service> {
        self.entries().services.values().map(|s| s.service.clone()).collect()
    }

    /// The checks registered on this agent (not its own `serfHealth`), with the status and
    /// output last recorded here (which may be ahead of the catalog).
    pub(crate) fn checks(&self) -> Vec<Check> {
        self.entries().checks.values().map(|c| c.check.clone()).collect()
    }

    /// The published catalog snapshots this state is compared with.
    pub(crate) fn snapshots(&self) -> Arc<crate::snapshot::SnapshotHandle> {
        self.consensus.snapshots()
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

#[cfg(test)]
mod tests;
