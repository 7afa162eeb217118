//! READ MODEL: the immutable `CatalogSnapshot` and the `SnapshotHandle` that publishes it.
//!
//! Invariants:
//! - Only the state machine (`raft::state_machine`) calls `publish`, in apply order, once it has
//!   applied a batch in memory and handed the changed rows to the store as a deferred write
//!   (they reach LMDB with a later commit; `store::deferred`). On a client agent, which has no
//!   state machine, its replica `replica::client` publishes, in index order.
//! - A published snapshot is never mutated: `CatalogState` is a persistent map, so the state
//!   machine's later writes go to its own copy.
//! - Readers call `load()` once per DNS query and answer the whole query from that snapshot;
//!   `load()` is wait-free (arc-swap) and takes no lock.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use crate::catalog::CatalogState;

#[cfg(test)]
mod dns_cache_tests;

/// One consistent version of the catalog, tagged with the Raft index it reflects.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    /// Raft log index of the last command applied into this snapshot.
    pub index: u64,
    /// The catalog at that index.
    pub catalog: CatalogState,
}

/// Holder of the current snapshot: lock-free loads for readers, watch notification for
/// blocking queries.
#[derive(Debug)]
pub struct SnapshotHandle {
    current: ArcSwap<CatalogSnapshot>,
    /// Carries the index of each publish so blocking queries wake without polling.
    published: watch::Sender<u64>,
}

impl Default for SnapshotHandle {
    fn default() -> Self {
        Self::new(CatalogSnapshot::default())
    }
}

impl SnapshotHandle {
    /// A handle holding `initial`.
    pub fn new(initial: CatalogSnapshot) -> Self {
        let (published, _) = watch::channel(initial.index);
        Self { current: ArcSwap::from_pointee(initial), published }
    }

    /// The current snapshot, for short reads that do not cross an `.await`.
    pub fn load(&self) -> Guard<Arc<CatalogSnapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`, for reads that span an `.await`.
    pub fn load_full(&self) -> Arc<CatalogSnapshot> {
        self.current.load_full()
    }

    /// A per-thread cache of the current snapshot for a hot loop: loading through it costs
    /// no reference-count traffic until a new snapshot is published.
    pub fn cache(&self) -> arc_swap::Cache<&ArcSwap<CatalogSnapshot>, Arc<CatalogSnapshot>> {
        arc_swap::Cache::new(&self.current)
    }

    /// Replaces the current snapshot and wakes watchers. State machine only.
    pub fn publish(&self, snapshot: CatalogSnapshot) {
        let index = snapshot.index;
        self.current.store(Arc::new(snapshot));
        self.published.send_replace(index);
    }

    /// A receiver that changes on every publish (its value is the published index).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }
}
