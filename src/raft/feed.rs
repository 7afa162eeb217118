//! The server side of the replica stream: the last applied entries, in order, kept in memory.
//!
//! Input: each batch the state machine applied (`push`, after its LMDB commit and before it
//! publishes), and each snapshot install (`reset`). Output: `since(index)` for subscribers,
//! and a watch channel that changes on every push or reset.
//!
//! Invariants: entries are contiguous: the ring holds every index in `base+1 ..= last`
//! (blank and membership entries as `None`); an install drops them all (`base` moves to the
//! snapshot's index), so a subscriber behind `base` must restart from a full dump. The ring is
//! bounded in entries and in KV value bytes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::catalog::Command;

/// Most entries kept.
const MAX_ENTRIES: usize = 4096;
/// Most KV value bytes kept (the values dominate an entry's size).
const MAX_VALUE_BYTES: usize = 64 << 20;

/// One applied log entry: its index and its command (`None` for a blank or membership entry).
pub(crate) type FeedEntry = (u64, Option<Arc<Command>>);

#[derive(Debug, Default)]
struct Ring {
    /// The index just before the first entry held.
    base: u64,
    entries: VecDeque<FeedEntry>,
    value_bytes: usize,
}

/// What `since` found.
#[derive(Debug)]
pub(crate) enum Since {
    /// The entries after the asked index (possibly none yet).
    Entries(Vec<FeedEntry>),
    /// The asked index is older than what the ring holds: restart from a full dump.
    TooOld,
}

/// The feed of applied entries (servers only).
#[derive(Debug)]
pub(crate) struct Feed {
    ring: Mutex<Ring>,
    /// The last index pushed (or reset to); changes wake subscribers.
    last: watch::Sender<u64>,
}

impl Feed {
    /// An empty feed whose state is at `index` (what the state machine loaded).
    pub(crate) fn new(index: u64) -> Self {
        let (last, _) = watch::channel(index);
        Self { ring: Mutex::new(Ring { base: index, ..Ring::default() }), last }
    }

    /// Appends the entries of one applied batch (contiguous, after the last one).
    pub(crate) fn push(&self, batch: Vec<FeedEntry>) {
        let Some(&(last, _)) = batch.last() else { return };
        if let Ok(mut ring) = self.ring.lock() {
            let expected = ring.base + ring.entries.len() as u64 + 1;
            if batch.first().is_some_and(|(i, _)| *i != expected) {
                // Not contiguous (cannot happen with openraft's in-order applies): start over.
                ring.entries.clear();
                ring.value_bytes = 0;
                ring.base = last;
            } else {
                for e in batch {
                    ring.value_bytes += e.1.as_ref().map_or(0, |c| c.value_bytes());
                    ring.entries.push_back(e);
                }
            }
            while ring.entries.len() > MAX_ENTRIES
                || (ring.value_bytes > MAX_VALUE_BYTES && ring.entries.len() > 1)
            {
                if let Some((i, c)) = ring.entries.pop_front() {
                    ring.value_bytes -= c.as_ref().map_or(0, |c| c.value_bytes());
                    ring.base = i;
                }
            }
        }
        self.last.send_replace(last);
    }

    /// A snapshot was installed at `index`: what the ring held no longer leads there.
    pub(crate) fn reset(&self, index: u64) {
        if let Ok(mut ring) = self.ring.lock() {
            ring.entries.clear();
            ring.value_bytes = 0;
            ring.base = index;
        }
        self.last.send_replace(index);
    }

    /// The entries after `index`, or `TooOld` when the ring no longer reaches back to it.
    pub(crate) fn since(&self, index: u64) -> Since {
        let Ok(ring) = self.ring.lock() else { return Since::TooOld };
        if index < ring.base {
            return Since::TooOld;
        }
        let skip = usize::try_from(index - ring.base).unwrap_or(usize::MAX);
        Since::Entries(ring.entries.iter().skip(skip).cloned().collect())
    }

    /// A receiver that changes on every push or reset.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> FeedEntry {
        (i, Some(Arc::new(Command::QueryDelete(format!("q{i}")))))
    }

    fn indexes(s: Since) -> Option<Vec<u64>> {
        match s {
            Since::Entries(e) => Some(e.into_iter().map(|(i, _)| i).collect()),
            Since::TooOld => None,
        }
    }

    #[test]
    fn since_returns_what_follows_and_too_old_past_the_ring() {
        let feed = Feed::new(10);
        feed.push(vec![entry(11), (12, None), entry(13)]);
        assert_eq!(indexes(feed.since(10)), Some(vec![11, 12, 13]));
        assert_eq!(indexes(feed.since(12)), Some(vec![13]));
        assert_eq!(indexes(feed.since(13)), Some(vec![]));
        assert_eq!(indexes(feed.since(20)), Some(vec![]));
        assert_eq!(indexes(feed.since(9)), None);
        feed.push((14..14 + MAX_ENTRIES as u64).map(entry).collect());
        // 4,099 entries: the oldest three were dropped.
        assert_eq!(indexes(feed.since(12)), None);
        assert_eq!(indexes(feed.since(13)).map(|v| v.len()), Some(MAX_ENTRIES));
        feed.reset(50_000);
        assert_eq!(indexes(feed.since(14)), None);
        assert_eq!(indexes(feed.since(50_000)), Some(vec![]));
        assert_eq!(*feed.subscribe().borrow(), 50_000);
    }
}
