//! DEFERRED APPLY: catalog rows the state machine applied in memory, written to LMDB inside a
//! later commit (write-behind).
//!
//! Input: `Store::defer` from `raft::state_machine` (the state after an applied batch, the rows
//! the batch changed, its serialised meta rows such as the last-applied id).
//! Output: those rows in LMDB, written by the next commit that takes them: the Raft log's
//! durable append (`raft::log_store::write_entries`), a snapshot build, or `flush_deferred`
//! (the server's idle timer, its shutdown, and `StateMachine::open`).
//!
//! Why: an apply that commits on its own costs a transaction, a device flush and a hop to the
//! blocking pool per write. Riding along with the next log append, the rows cost neither: one
//! commit (two flushes) per write instead of two (three flushes).
//!
//! Invariants:
//! - Deferred rows are taken only by a commit whose write transaction is already open, so they
//!   reach LMDB in the order they were applied relative to every other catalog write (LMDB
//!   serialises writers).
//! - Merging keeps the newest state and meta rows and the union of the changed rows: writing
//!   the union's rows as they are in the newest state gives exactly the catalog at the newest
//!   last-applied id, as one apply commit per batch would have.
//! - A commit that fails puts the rows it took back, ahead of newer ones, unless a snapshot
//!   install discarded the deferred rows meanwhile (`epoch`). So LMDB never records a
//!   last-applied id whose rows it skipped.
//! - `discard_deferred` runs before a snapshot install opens its transaction: rows applied
//!   before the install can then never be written over the installed catalog.
//! - Losing deferred rows (process or system crash) loses nothing acknowledged: their entries
//!   are in the durable Raft log, and openraft re-applies the entries after LMDB's last-applied
//!   id on start. The log is purged only up to a snapshot, and a snapshot build writes the
//!   deferred rows (durably, in its own commit) first.

use std::sync::{MutexGuard, PoisonError};

use heed::RwTxn;

use super::{Store, StoreError};
use crate::catalog::{CatalogState, Change};

/// What one or more applied batches changed, not yet in LMDB.
#[derive(Debug)]
pub(crate) struct Deferred {
    /// The state after the newest batch (an O(1) copy).
    state: CatalogState,
    /// The rows the batches changed, read from `state` when written.
    changes: Vec<Change>,
    /// Meta rows as of the newest batch (key, serialised value).
    meta: Vec<(&'static str, Vec<u8>)>,
}

impl Deferred {
    /// The rows `changes` names as they are in `state`, and the meta rows to store with them.
    pub(crate) fn new(state: CatalogState, changes: Vec<Change>, meta: Vec<(&'static str, Vec<u8>)>) -> Self {
        Self { state, changes, meta }
    }

    /// Adds a later batch: its state and meta replace these, its rows join these.
    fn merge(&mut self, newer: Self) {
        self.state = newer.state;
        self.changes.extend(newer.changes);
        self.meta = newer.meta;
    }
}

/// The deferred rows of one environment, shared by every `Store` handle.
#[derive(Debug, Default)]
pub(super) struct Slot {
    pending: Option<Deferred>,
    /// Bumped by `discard_deferred`: rows taken before it must not be put back.
    epoch: u64,
}

impl Store {
    fn deferred_slot(&self) -> MutexGuard<'_, Slot> {
        // The slot holds plain data, consistent after any panic elsewhere.
        self.deferred.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `rows` until the next commit that writes deferred rows.
    pub(crate) fn defer(&self, rows: Deferred) {
        let mut slot = self.deferred_slot();
        match &mut slot.pending {
            Some(pending) => pending.merge(rows),
            None => slot.pending = Some(rows),
        }
    }

    /// Whether applied rows are waiting to be written.
    pub(crate) fn has_deferred(&self) -> bool {
        self.deferred_slot().pending.is_some()
    }

    /// Drops the deferred rows: a snapshot install is about to replace the whole catalog.
    pub(crate) fn discard_deferred(&self) {
        let mut slot = self.deferred_slot();
        slot.pending = None;
        slot.epoch += 1;
    }

    /// Writes the deferred rows into `wtxn`, then commits it; `durable` also syncs (see
    /// `commit_durable`). If anything fails, the rows are kept for the next commit.
    pub(crate) fn commit_with_deferred(&self, mut wtxn: RwTxn<'_>, durable: bool) -> Result<(), StoreError> {
        let taken = {
            let mut slot = self.deferred_slot();
            let epoch = slot.epoch;
            slot.pending.take().map(|rows| (rows, epoch))
        };
        let mut write = || -> Result<(), StoreError> {
            if let Some((rows, _)) = &taken {
                self.write_changes(&mut wtxn, &rows.state, &rows.changes)?;
                for (key, value) in &rows.meta {
                    self.meta_put_raw(&mut wtxn, key, value)?;
                }
            }
            Ok(())
        };
        let result =
            write().and_then(|()| if durable { self.commit_durable(wtxn) } else { Ok(wtxn.commit()?) });
        if result.is_err()
            && let Some((rows, epoch)) = taken
        {
            self.restore_deferred(rows, epoch);
        }
        result
    }

    /// Writes the deferred rows, if any, in a commit of their own (atomic, not synced).
    pub(crate) fn flush_deferred(&self) -> Result<(), StoreError> {
        if !self.has_deferred() {
            return Ok(());
        }
        let wtxn = self.write_txn()?;
        self.commit_with_deferred(wtxn, false)
    }

    /// Puts back rows a failed commit took, ahead of any deferred since.
    fn restore_deferred(&self, mut rows: Deferred, epoch: u64) {
        let mut slot = self.deferred_slot();
        if slot.epoch != epoch {
            return;
        }
        if let Some(newer) = slot.pending.take() {
            rows.merge(newer);
        }
        slot.pending = Some(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rows(meta: &[(&'static str, &str)]) -> Deferred {
        let meta = meta.iter().map(|(k, v)| (*k, v.as_bytes().to_vec())).collect();
        Deferred::new(CatalogState::default(), Vec::new(), meta)
    }

    fn check_meta(store: &Store, key: &str) -> Option<Vec<u8>> {
        let rtxn = store.read_txn().expect("read txn");
        store.meta_get_raw(&rtxn, key).expect("meta")
    }

    #[test]
    fn a_failed_commit_keeps_its_rows_for_the_next_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store opens");
        // Longer than LMDB's key limit: the write fails inside the transaction.
        let too_long: &'static str = Box::leak("k".repeat(600).into_boxed_str());
        store.defer(check_rows(&[(too_long, "1"), ("sm.a", "1")]));
        let wtxn = store.write_txn().expect("write txn");
        assert!(store.commit_with_deferred(wtxn, false).is_err());
        assert!(store.has_deferred(), "kept for the next commit");
        assert_eq!(check_meta(&store, "sm.a"), None, "nothing of the failed commit landed");

        // A later batch's meta rows replace the kept ones; the next commit writes them.
        store.defer(check_rows(&[("sm.a", "2")]));
        store.flush_deferred().expect("flush");
        assert!(!store.has_deferred());
        assert_eq!(check_meta(&store, "sm.a").as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn rows_taken_before_a_discard_are_not_put_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store opens");
        store.restore_deferred(check_rows(&[("sm.a", "1")]), 0);
        assert!(store.has_deferred(), "same epoch: put back");
        store.discard_deferred();
        assert!(!store.has_deferred());
        store.restore_deferred(check_rows(&[("sm.a", "1")]), 0);
        assert!(!store.has_deferred(), "taken before the discard: dropped");
    }
}
