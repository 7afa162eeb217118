//! Answer cache, invalidation: whether a stored answer is still what a newer snapshot
//! would give, looking only at the catalog rows it read that moved.
//!
//! Input: an answer's `Deps` (the service and node names it read) when it is stored; on
//! each use, the snapshot the loop loaded. Output: the `Dep` rows with the versions the
//! answer saw, and on use "current" (brought up to the snapshot) or "stale".
//!
//! `Changes` diffs each new snapshot against the previous one the loop saw (persistent
//! maps: the diff skips what they share) and marks the rows that moved; an entry looks only
//! at its marked rows. A service whose index moved is compared by `Digests::service`, a
//! digest of what its lookups read, computed once per version of the service however many
//! entries ask, so a write the answer does not show keeps it.
//!
//! Invariants: no IO and no lock (owned by one loop); a snapshot older than the last one
//! seen makes the marks untrusted (the caller empties the cache); an answer that read
//! rows without versions (`None`) is stale after any write.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::super::answer::digest_service;
use super::super::message::Deps;
use super::table::Entry;
use crate::catalog::CatalogState;
use crate::snapshot::CatalogSnapshot;

/// One catalog row an answer read, with the version it saw, and its slot in `Changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Dep {
    slot: usize,
    row: Row,
}

/// What a `Dep` read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Row {
    /// A service name: its instances, their nodes and checks. `version` is the per-service
    /// index (`None`: never registered); `digest` is `Digests::service` of what a lookup
    /// reads, compared when the index moved.
    Service { name: String, version: Option<u64>, digest: u128 },
    /// A node, by its modify index.
    Node { name: String, version: Option<u64> },
}

/// Two independently seeded hashers, for 128-bit digests.
pub(super) struct Digests {
    seeds: [foldhash::quality::RandomState; 2],
    /// Services walked to make a digest (tests: once per version of a service).
    pub(super) walks: std::cell::Cell<u64>,
}

/// A service digest as computed at one version of the service (per slot in
/// `Changes::digests`).
#[derive(Debug, Clone, Copy)]
struct Memo {
    version: Option<u64>,
    only_passing: bool,
    digest: u128,
}

/// Both seeded hashers fed in one walk of the service.
struct PairHasher(foldhash::quality::FoldHasher<'static>, foldhash::quality::FoldHasher<'static>);

impl Hasher for PairHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
        self.1.write(bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0.write_u64(n);
        self.1.write_u64(n);
    }

    fn finish(&self) -> u64 {
        self.0.finish() ^ self.1.finish()
    }
}

impl Digests {
    pub(super) fn new() -> Self {
        Self {
            seeds: [foldhash::quality::RandomState::default(), foldhash::quality::RandomState::default()],
            walks: std::cell::Cell::new(0),
        }
    }

    /// The digest of what a lookup of service `name` (slot `slot`, per-service index
    /// `version` in `catalog`) reads: walked once per version of the service, however many
    /// entries ask (`memo`, indexed by slot). Whatever a lookup reads moves that index.
    fn service(
        &self,
        memo: &mut [Option<Memo>],
        slot: usize,
        catalog: &CatalogState,
        name: &str,
        version: Option<u64>,
        only_passing: bool,
    ) -> u128 {
        let cell = memo.get_mut(slot);
        if let Some(Some(m)) = &cell
            && version.is_some()
            && m.version == version
            && m.only_passing == only_passing
        {
            return m.digest;
        }
        self.walks.set(self.walks.get() + 1);
        let [a, b] = self.seeds.each_ref().map(BuildHasher::build_hasher);
        let mut h = PairHasher(a, b);
        digest_service(catalog, name, only_passing, &mut h);
        let digest = (u128::from(h.0.finish()) << 64) | u128::from(h.1.finish());
        if let Some(cell) = cell {
            *cell = Some(Memo { version, only_passing, digest });
        }
        digest
    }
}

/// Which rows answers depend on, and the snapshot at which each last changed, as this cache
/// saw it (see the module docs).
#[derive(Default)]
pub(super) struct Changes {
    /// The snapshot the marks are up to date with.
    pub(super) synced: Option<Arc<CatalogSnapshot>>,
    /// Service and node names (catalog keys) with their slots.
    services: HashMap<String, usize, foldhash::fast::RandomState>,
    nodes: HashMap<String, usize, foldhash::fast::RandomState>,
    /// For each slot, the snapshot index at which its row was last seen changing (0: not
    /// since the slot was made).
    changed_at: Vec<u64>,
    /// For each service slot, its digest as last computed (`Digests::service`).
    digests: Vec<Option<Memo>>,
}

impl Changes {
    /// The slot of a service name, made if new.
    fn service_slot(&mut self, name: &str) -> usize {
        Self::slot(&mut self.services, &mut self.changed_at, &mut self.digests, name)
    }

    /// The slot of a node name, made if new.
    fn node_slot(&mut self, name: &str) -> usize {
        Self::slot(&mut self.nodes, &mut self.changed_at, &mut self.digests, name)
    }

    fn slot(
        names: &mut HashMap<String, usize, foldhash::fast::RandomState>,
        changed_at: &mut Vec<u64>,
        digests: &mut Vec<Option<Memo>>,
        name: &str,
    ) -> usize {
        if let Some(&slot) = names.get(name) {
            return slot;
        }
        let slot = changed_at.len();
        changed_at.push(0);
        digests.push(None);
        names.insert(name.to_owned(), slot);
        slot
    }

    /// Marks the rows that differ between the last snapshot seen and `snap`. Returns false
    /// when the marks cannot be trusted (`snap` is older than the last one seen): the caller
    /// empties the cache.
    pub(super) fn sync(&mut self, snap: &Arc<CatalogSnapshot>) -> bool {
        let Some(prev) = self.synced.replace(snap.clone()) else { return true };
        if snap.index < prev.index {
            return false;
        }
        for name in prev.catalog.changed_services(&snap.catalog) {
            if let Some(&slot) = self.services.get(name)
                && let Some(at) = self.changed_at.get_mut(slot)
            {
                *at = snap.index;
            }
        }
        for name in prev.catalog.changed_nodes(&snap.catalog) {
            if let Some(&slot) = self.nodes.get(name)
                && let Some(at) = self.changed_at.get_mut(slot)
            {
                *at = snap.index;
            }
        }
        true
    }

    /// Forgets every slot (the entries that used them are gone); keeps the snapshot seen.
    pub(super) fn clear(&mut self) {
        self.services.clear();
        self.nodes.clear();
        self.changed_at.clear();
        self.digests.clear();
    }
}

impl Row {
    /// Whether what this row (in slot `slot`) gave the answer is unchanged in `catalog`; a
    /// service whose index moved but whose digest did not is brought up to the new index.
    fn current(
        &mut self,
        slot: usize,
        catalog: &CatalogState,
        only_passing: bool,
        digests: &Digests,
        memo: &mut [Option<Memo>],
    ) -> bool {
        match self {
            Self::Service { name, version, digest } => {
                let now = catalog.service_index_row(name);
                if now == *version {
                    return true;
                }
                if digests.service(memo, slot, catalog, name, now, only_passing) != *digest {
                    return false;
                }
                *version = now;
                true
            }
            Self::Node { name, version } => catalog.node_row(name).map(|n| n.modify_index) == *version,
        }
    }
}

/// The dependencies of an answer rendered from `catalog`, with the versions it saw; `None`
/// (check nothing, render again after any write) when a row it read carries no version,
/// which only a hand-built catalog can have.
pub(super) fn versions(
    deps: Deps,
    catalog: &CatalogState,
    only_passing: bool,
    digests: &Digests,
    changes: &mut Changes,
) -> Option<Vec<Dep>> {
    if deps.everything {
        return None;
    }
    let mut out = Vec::with_capacity(deps.services.len() + deps.nodes.len());
    for name in deps.services {
        let version = catalog.service_index_row(&name);
        if version.is_none() && catalog.service_instances(&name).next().is_some() {
            return None;
        }
        let slot = changes.service_slot(&name);
        let digest = digests.service(&mut changes.digests, slot, catalog, &name, version, only_passing);
        out.push(Dep { slot, row: Row::Service { name, version, digest } });
    }
    for name in deps.nodes {
        let version = catalog.node_row(&name).map(|n| n.modify_index);
        if version == Some(0) {
            return None;
        }
        let slot = changes.node_slot(&name);
        out.push(Dep { slot, row: Row::Node { name, version } });
    }
    Some(out)
}

impl Entry {
    /// Whether the stored answer is still what `snap` would give. Only the rows marked as
    /// changed since it was last checked (`changed_at`, synced to `snap`) are looked at.
    pub(super) fn current(
        &mut self,
        snap: &CatalogSnapshot,
        only_passing: bool,
        digests: &Digests,
        changes: &mut Changes,
        rows_checked: &mut u64,
    ) -> bool {
        if self.checked_at == snap.index {
            return true;
        }
        let Some(deps) = &mut self.deps else { return false };
        let checked_at = self.checked_at;
        let Changes { changed_at, digests: memo, .. } = changes;
        let moved = |d: &Dep| changed_at.get(d.slot).is_none_or(|&at| at > checked_at);
        let mut current = |d: &mut Dep| {
            *rows_checked += 1;
            d.row.current(d.slot, &snap.catalog, only_passing, digests, memo)
        };
        if deps.iter_mut().all(|d| !moved(d) || current(d)) {
            self.checked_at = snap.index;
            return true;
        }
        false
    }
}
