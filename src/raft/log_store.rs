//! RAFT LOG: openraft's `RaftLogStorage` and `RaftLogReader` on LMDB.
//!
//! Input: entries, votes, committed/purged log ids from openraft.
//! Output: durable rows in the store's `raft-log` (u64 big-endian index -> JSON entry) and
//! `meta` databases.
//!
//! Invariants:
//! - Group commit: all entries of one `append` call go into ONE write transaction, and
//!   `callback.log_io_completed(Ok(()))` runs only after that transaction committed AND was
//!   synced (`Store::commit_with_deferred`). openraft batches concurrent proposals into one
//!   `append`. The state machine's deferred rows (`store::Deferred`) ride in that transaction.
//! - Every write here (append, truncate, purge, vote, committed id) is durable when it returns:
//!   the state machine's deferred applies rely on it (see `store`'s invariants).
//! - The log is contiguous from `last_purged + 1` to the last entry; `purge` records the
//!   purged log id in the same transaction that deletes the entries.
//! - Blocking LMDB commits run on `spawn_blocking`, never on an async worker.

use std::fmt::Debug;
use std::ops::RangeBounds;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};

use super::{Entry, TypeConfig};
use crate::store::{self, META_COMMITTED, META_PURGED, META_VOTE, Store, StoreError};

/// The Raft log on LMDB; clones share the environment.
#[derive(Debug, Clone)]
pub struct LogStore {
    store: Store,
    /// The latest committed log id openraft reported and not yet written: it rides along with
    /// the next append instead of costing a durable commit of its own. openraft uses the
    /// stored value only as a hint to re-apply on start, so it may lag; `apply` is idempotent
    /// up to the state machine's durable last-applied id.
    unsaved_committed: Option<Option<LogId<u64>>>,
}

type StorageResult<T> = Result<T, StorageError<u64>>;

fn read_err(e: &StoreError) -> StorageError<u64> {
    StorageIOError::read_logs(AnyError::new(e)).into()
}

fn write_err(e: &StoreError) -> StorageError<u64> {
    StorageIOError::write_logs(AnyError::new(e)).into()
}

fn decode(bytes: &[u8]) -> Result<Entry, StoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

impl LogStore {
    /// A log store over `store`.
    pub fn new(store: Store) -> Self {
        Self { store, unsaved_committed: None }
    }

    fn read_entries<RB: RangeBounds<u64>>(&self, range: &RB) -> Result<Vec<Entry>, StoreError> {
        let rtxn = self.store.read_txn()?;
        self.store.log_range(&rtxn, range)?.iter().map(|(_, v)| decode(v)).collect()
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let rtxn = self.store.read_txn()?;
        let last_purged_log_id: Option<LogId<u64>> = self.store.meta_get(&rtxn, META_PURGED)?;
        let last = match self.store.log_last(&rtxn)? {
            Some((_, bytes)) => Some(decode(&bytes)?.log_id),
            None => None,
        };
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    /// Writes one meta value in its own durable transaction.
    async fn put_meta<T: serde::Serialize + Send + 'static>(
        &self,
        key: &'static str,
        value: T,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        store::blocking(move || {
            let mut wtxn = store.write_txn()?;
            store.meta_put(&mut wtxn, key, &value)?;
            store.commit_durable(wtxn)?;
            Ok(())
        })
        .await
    }
}

/// Writes serialised entries (and the committed id and the state machine's deferred rows
/// riding along) in ONE durable transaction.
pub(super) fn write_entries(
    store: &Store,
    rows: &[(u64, Vec<u8>)],
    committed: Option<Option<LogId<u64>>>,
) -> Result<(), StoreError> {
    let mut wtxn = store.write_txn()?;
    for (index, bytes) in rows {
        store.log_put(&mut wtxn, *index, bytes)?;
    }
    if let Some(c) = committed {
        store.meta_put(&mut wtxn, META_COMMITTED, &c)?;
    }
    store.commit_with_deferred(wtxn, true)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        self.read_entries(&range).map_err(|e| read_err(&e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        self.log_state().map_err(|e| read_err(&e))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        self.put_meta(META_VOTE, *vote)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        let read = || -> Result<Option<Vote<u64>>, StoreError> {
            let rtxn = self.store.read_txn()?;
            self.store.meta_get(&rtxn, META_VOTE)
        };
        read().map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StorageResult<()> {
        self.unsaved_committed = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<u64>>> {
        if let Some(committed) = self.unsaved_committed {
            return Ok(committed);
        }
        let read = || -> Result<Option<LogId<u64>>, StoreError> {
            let rtxn = self.store.read_txn()?;
            Ok(self.store.meta_get::<Option<LogId<u64>>>(&rtxn, META_COMMITTED)?.flatten())
        };
        read().map_err(|e| read_err(&e))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Serialise on this task; the single write transaction (and its sync) runs blocking.
        let rows: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| serde_json::to_vec(&e).map(|bytes| (e.log_id.index, bytes)))
            .collect::<Result<_, _>>()
            .map_err(|e| write_err(&StoreError::Json(e)))?;
        tracing::trace!(entries = rows.len(), "log append");
        let store = self.store.clone();
        let committed = self.unsaved_committed.take();
        let result = store::blocking(move || write_entries(&store, &rows, committed)).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(&e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let store = self.store.clone();
        store::blocking(move || {
            let mut wtxn = store.write_txn()?;
            store.log_delete(&mut wtxn, &(log_id.index..))?;
            store.commit_durable(wtxn)?;
            Ok(())
        })
        .await
        .map_err(|e| write_err(&e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let store = self.store.clone();
        store::blocking(move || {
            let mut wtxn = store.write_txn()?;
            store.meta_put(&mut wtxn, META_PURGED, &log_id)?;
            store.log_delete(&mut wtxn, &(..=log_id.index))?;
            store.commit_durable(wtxn)?;
            Ok(())
        })
        .await
        .map_err(|e| write_err(&e))
    }
}
