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
//! - `Tail` keeps the newest appended entries (a suffix of the log, added only after their
//!   commit synced, cut by truncate and purge before LMDB is), so openraft's read-back of
//!   what it just appended, to apply it or send it to a follower, skips LMDB and JSON. A
//!   range the tail does not hold whole is read from LMDB.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};

use super::{Entry, TypeConfig};
use crate::codec;
use crate::store::{self, META_COMMITTED, META_PURGED, META_VOTE, Store, StoreError};

/// Most entries kept in `Tail`.
const TAIL_ENTRIES: usize = 1024;
/// Most serialised bytes kept in `Tail` (a KV entry may carry megabytes).
const TAIL_BYTES: usize = 16 << 20;

/// The newest appended entries, a contiguous run ending at the last entry of the log, so
/// that openraft's read-back of what it just appended (to apply it, or send it to a
/// follower) costs a clone instead of an LMDB read and a JSON decode.
#[derive(Debug, Default)]
struct Tail {
    /// Entries in index order, each with its serialised size.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Tail {
    /// Adds freshly appended entries; a run that does not follow the last one replaces the
    /// tail.
    fn push(&mut self, appended: Vec<(Entry, usize)>) {
        let follows = match (self.entries.back(), appended.first()) {
            (Some((last, _)), Some((first, _))) => first.log_id.index == last.log_id.index + 1,
            _ => true,
        };
        if !follows {
            self.entries.clear();
            self.bytes = 0;
        }
        for (entry, size) in appended {
            self.bytes += size;
            self.entries.push_back((entry, size));
        }
        while self.entries.len() > TAIL_ENTRIES || self.bytes > TAIL_BYTES {
            let Some((_, size)) = self.entries.pop_front() else { break };
            self.bytes -= size;
        }
    }

    /// Clones of the entries in `range` when the tail holds all of them.
    fn get<RB: RangeBounds<u64>>(&self, range: &RB) -> Option<Vec<Entry>> {
        let first = self.entries.front()?.0.log_id.index;
        let end = self.entries.back()?.0.log_id.index + 1;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        let stop = match range.end_bound() {
            Bound::Included(&i) => i.checked_add(1)?,
            Bound::Excluded(&i) => i,
            Bound::Unbounded => end,
        };
        if start < first || stop > end || start > stop {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let take = usize::try_from(stop - start).ok()?;
        Some(self.entries.iter().skip(skip).take(take).map(|(e, _)| e.clone()).collect())
    }

    /// Keeps only the entries whose index `keep` accepts (truncate, purge).
    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        self.entries.retain(|(e, _)| keep(e.log_id.index));
        self.bytes = self.entries.iter().map(|(_, size)| size).sum();
    }
}

/// The Raft log on LMDB; clones share the environment and the tail.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    store: Store,
    tail: Arc<Mutex<Tail>>,
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
    Ok(codec::Format::Entry.decode(bytes)?)
}

impl LogStore {
    /// A log store over `store`.
    pub(crate) fn new(store: Store) -> Self {
        Self { store, tail: Arc::default(), unsaved_committed: None }
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        // The tail is plain data, consistent after any panic elsewhere.
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_entries<RB: RangeBounds<u64>>(&self, range: &RB) -> Result<Vec<Entry>, StoreError> {
        if let Some(entries) = self.tail().get(range) {
            return Ok(entries);
        }
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        let rows: Vec<(u64, Vec<u8>)> = entries
            .iter()
            .map(|e| codec::Format::Entry.encode(e).map(|bytes| (e.log_id.index, bytes)))
            .collect::<Result<_, _>>()
            .map_err(|e| write_err(&StoreError::Json(e)))?;
        let sizes: Vec<usize> = rows.iter().map(|(_, bytes)| bytes.len()).collect();
        tracing::trace!(entries = rows.len(), "log append");
        let store = self.store.clone();
        let committed = self.unsaved_committed.take();
        let result = store::blocking(move || write_entries(&store, &rows, committed)).await;
        match result {
            Ok(()) => {
                self.tail().push(entries.into_iter().zip(sizes).collect());
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
        self.tail().retain(|index| index < log_id.index);
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
        self.tail().retain(|index| index > log_id.index);
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

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn check_run(indexes: std::ops::Range<u64>) -> Vec<(Entry, usize)> {
        indexes
            .map(|i| {
                (
                    Entry {
                        log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
                        payload: EntryPayload::Blank,
                    },
                    10,
                )
            })
            .collect()
    }

    fn check_indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|es| es.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn the_tail_serves_only_ranges_it_holds_whole() {
        let mut tail = Tail::default();
        assert_eq!(check_indexes(tail.get(&(1..3))), None, "empty");
        tail.push(check_run(5..10));
        assert_eq!(check_indexes(tail.get(&(5..8))), Some(vec![5, 6, 7]));
        assert_eq!(check_indexes(tail.get(&(7..))), Some(vec![7, 8, 9]), "open end: up to the last entry");
        assert_eq!(check_indexes(tail.get(&(6..=9))), Some(vec![6, 7, 8, 9]));
        assert_eq!(check_indexes(tail.get(&(4..7))), None, "starts before the tail");
        assert_eq!(check_indexes(tail.get(&(8..12))), None, "ends past the log");
        assert_eq!(check_indexes(tail.get(&(..7))), None, "open start: LMDB knows the first entry");

        tail.push(check_run(10..12));
        assert_eq!(check_indexes(tail.get(&(9..12))), Some(vec![9, 10, 11]), "a following run extends it");
        tail.push(check_run(20..22));
        assert_eq!(check_indexes(tail.get(&(9..12))), None, "a gap replaces it");
        assert_eq!(check_indexes(tail.get(&(20..22))), Some(vec![20, 21]));

        tail.retain(|i| i < 21);
        assert_eq!(check_indexes(tail.get(&(20..))), Some(vec![20]), "truncated from 21");
        tail.retain(|i| i > 20);
        assert_eq!(check_indexes(tail.get(&(20..))), None, "purged up to 20");
    }

    #[test]
    fn the_tail_stays_within_its_bounds() {
        let mut tail = Tail::default();
        tail.push(check_run(0..(TAIL_ENTRIES as u64 + 5)));
        assert_eq!(tail.entries.len(), TAIL_ENTRIES);
        assert_eq!(tail.bytes, TAIL_ENTRIES * 10);
        let big = vec![(check_run(TAIL_ENTRIES as u64 + 5..TAIL_ENTRIES as u64 + 6).remove(0).0, TAIL_BYTES)];
        tail.push(big);
        assert_eq!(tail.entries.len(), 1, "one entry of the whole budget leaves room for nothing else");
        assert_eq!(tail.bytes, TAIL_BYTES);
    }
}
