//! STATE MACHINE: openraft's `RaftStateMachine` over the in-memory `CatalogState` + LMDB.
//!
//! Input: committed log entries (batches) from openraft; Raft snapshots to build or install.
//! Output: the catalog rows in LMDB, and a `CatalogSnapshot` published to readers.
//!
//! Invariants:
//! - `apply` runs `catalog::apply::apply` for each normal entry of a batch (index = log index) on
//!   a copy of the state, hands exactly the changed rows, the last-applied log id and the
//!   membership to the store as ONE deferred write (`store::Deferred`), adopts the new state
//!   and publishes it. It opens no transaction and waits for no disk: the rows reach LMDB,
//!   together, inside the next commit that takes them (normally the next log append).
//! - So LMDB may lag the applied state (`store`'s invariants): a crash loses the deferred
//!   rows, and openraft re-applies their entries from the durable log on start. A snapshot
//!   build writes the deferred rows in its own synced commit (the log is purged on its
//!   strength); an install discards them first.
//! - Blank and membership entries advance last-applied too.
//! - Deterministic: no clock, no randomness; timestamps travel inside commands.
//! - On open the catalog is loaded from LMDB and published, so a restart serves data before
//!   Raft has started.
//! - A Raft snapshot is the JSON of `SnapshotPayload`; installing one replaces all catalog
//!   tables in one transaction and publishes.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::feed::Feed;
use super::{Entry, TypeConfig};
use crate::catalog::{CatalogDump, CatalogState};
use crate::catalog::{CommandResponse, apply};
use crate::codec;
use crate::snapshot::{CatalogSnapshot, SnapshotHandle};
use crate::store::{
    self, Deferred, META_LAST_APPLIED, META_MEMBERSHIP, META_SNAPSHOT_DATA, META_SNAPSHOT_META, Store,
    StoreError,
};

#[doc(hidden)]
pub(crate) mod bench_support;

type StorageResult<T> = Result<T, StorageError<u64>>;
/// openraft's membership as stored with our node type.
pub(crate) type Membership = StoredMembership<u64, openraft::BasicNode>;
type Meta = SnapshotMeta<u64, openraft::BasicNode>;

/// The serialised content of a Raft snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotPayload {
    /// The whole catalog.
    pub catalog: CatalogDump,
    /// Last log id applied into `catalog`.
    pub last_applied: Option<LogId<u64>>,
    /// Membership as of `last_applied`.
    pub membership: Membership,
}

/// `apply::apply` of one log entry's command, timed under Consul's names: the entry as a
/// whole (`consul.raft.fsm.apply`) and each command by kind (`consul.fsm.*`,
/// `metrics::commands`). A group commit's commands are applied one by one here, exactly as
/// `apply`'s own `Batch` arm does (a nested batch is rejected), so each is timed alone.
/// Timing only: nothing applied depends on the clock.
fn timed_apply(
    state: &mut CatalogState,
    index: u64,
    cmd: &crate::catalog::Command,
    changes: &mut Vec<crate::catalog::Change>,
) -> CommandResponse {
    use crate::catalog::Command;
    let one = |state: &mut CatalogState, c: &Command, changes: &mut Vec<crate::catalog::Change>| {
        let started = std::time::Instant::now();
        let response = apply::apply(state, index, c, changes);
        if let Some((name, labels)) = crate::metrics::commands::fsm_timer(c) {
            crate::metrics::measure(name, labels, started.elapsed());
        }
        response
    };
    let started = std::time::Instant::now();
    let response = match cmd {
        Command::Batch(cmds) => CommandResponse::Batch(
            cmds.iter()
                .map(|c| match c {
                    // `apply`'s own rule for a nested batch, word for word.
                    Command::Batch(_) => CommandResponse::Rejected("nested command batch".into()),
                    c => one(state, c, changes),
                })
                .collect(),
        ),
        c => one(state, c, changes),
    };
    crate::metrics::measure("consul.raft.fsm.apply", Vec::new(), started.elapsed());
    response
}

fn sm_write_err(e: &StoreError) -> StorageError<u64> {
    StorageIOError::write_state_machine(AnyError::new(e)).into()
}

fn sm_read_err(e: &StoreError) -> StorageError<u64> {
    StorageIOError::read_state_machine(AnyError::new(e)).into()
}

/// The catalog state machine.
#[derive(Debug)]
pub(crate) struct StateMachine {
    store: Store,
    state: CatalogState,
    last_applied: Option<LogId<u64>>,
    membership: Membership,
    snapshots: Arc<SnapshotHandle>,
    /// The applied entries kept for client replicas (`raft::feed`), once `feed` was asked.
    feed: Option<Arc<Feed>>,
}

impl StateMachine {
    /// Loads the state machine from `store` and publishes what it holds to `snapshots`.
    pub(crate) fn open(store: Store, snapshots: Arc<SnapshotHandle>) -> Result<Self, StoreError> {
        // Rows an earlier state machine on this environment deferred belong to what it holds.
        store.flush_deferred()?;
        let (dump, last_applied, membership) = {
            let rtxn = store.read_txn()?;
            let dump = store.load_catalog(&rtxn)?;
            let last_applied: Option<LogId<u64>> =
                store.meta_get::<Option<LogId<u64>>>(&rtxn, META_LAST_APPLIED)?.flatten();
            let membership: Membership = store.meta_get(&rtxn, META_MEMBERSHIP)?.unwrap_or_default();
            (dump, last_applied, membership)
        };
        let sm = Self {
            store,
            state: CatalogState::from_dump(dump),
            last_applied,
            membership,
            snapshots,
            feed: None,
        };
        sm.publish();
        Ok(sm)
    }

    /// The feed of applied entries client replicas subscribe to; from now on every applied
    /// batch is pushed to it before it is published, and a snapshot install resets it.
    pub(crate) fn feed(&mut self) -> Arc<Feed> {
        let index = self.last_applied.map_or(0, |l| l.index);
        self.feed.get_or_insert_with(|| Arc::new(Feed::new(index))).clone()
    }

    /// The in-memory catalog (what was last published).
    #[cfg(test)]
    pub(crate) fn state(&self) -> &CatalogState {
        &self.state
    }

    fn publish(&self) {
        let started = std::time::Instant::now();
        let index = self.last_applied.map_or(0, |l| l.index);
        self.snapshots.publish(CatalogSnapshot { index, catalog: self.state.clone() });
        crate::metrics::global().snapshot_publish.observe(started.elapsed());
    }

    fn read_current_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let rtxn = self.store.read_txn()?;
        let Some(meta) = self.store.meta_get::<Meta>(&rtxn, META_SNAPSHOT_META)? else {
            return Ok(None);
        };
        let data = self.store.meta_get_raw(&rtxn, META_SNAPSHOT_DATA)?.unwrap_or_default();
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// Builds a Raft snapshot from a frozen (O(1)-cloned) copy of the state.
#[derive(Debug)]
pub(crate) struct SnapshotBuilder {
    store: Store,
    state: CatalogState,
    last_applied: Option<LogId<u64>>,
    membership: Membership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let payload = SnapshotPayload {
            catalog: self.state.dump(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        };
        let data = codec::Format::Snapshot.encode(&payload).map_err(|e| sm_read_err(&StoreError::Json(e)))?;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "0-0-0".to_owned(),
        };
        let meta =
            Meta { last_log_id: self.last_applied, last_membership: self.membership.clone(), snapshot_id };
        let store = self.store.clone();
        let (m, d) = (meta.clone(), data.clone());
        store::blocking(move || {
            let mut wtxn = store.write_txn()?;
            store.meta_put(&mut wtxn, META_SNAPSHOT_META, &m)?;
            store.meta_put_raw(&mut wtxn, META_SNAPSHOT_DATA, &d)?;
            // The log may be purged up to this snapshot once it returns: the applied rows
            // still deferred (up to this snapshot's last log id, or later) go first.
            store.commit_with_deferred(wtxn, true)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<u64>>, Membership)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<CommandResponse>>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        // Timing only (metrics); nothing applied depends on it.
        let started = std::time::Instant::now();
        let mut state = self.state.clone();
        let mut membership = self.membership.clone();
        let mut last_applied = self.last_applied;
        let mut changes = Vec::new();
        let mut responses = Vec::new();
        let mut fed = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            last_applied = Some(log_id);
            let (response, cmd) = match entry.payload {
                EntryPayload::Blank => (CommandResponse::Applied, None),
                EntryPayload::Normal(cmd) => {
                    (timed_apply(&mut state, log_id.index, &cmd, &mut changes), Some(Arc::new(cmd)))
                }
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(log_id), m);
                    (CommandResponse::Applied, None)
                }
            };
            if self.feed.is_some() {
                fed.push((log_id.index, cmd));
            }
            responses.push(response);
        }
        if responses.is_empty() {
            return Ok(responses);
        }
        // Written by the next commit that takes deferred rows (normally the next log append).
        let meta = vec![
            (
                META_LAST_APPLIED,
                codec::Format::Meta.encode(&last_applied).map_err(|e| sm_write_err(&e.into()))?,
            ),
            (META_MEMBERSHIP, codec::Format::Meta.encode(&membership).map_err(|e| sm_write_err(&e.into()))?),
        ];
        self.store.defer(Deferred::new(state.clone(), changes, meta));
        self.state = state;
        self.membership = membership;
        self.last_applied = last_applied;
        crate::metrics::global().raft_apply.observe(started.elapsed());
        if let Some(feed) = &self.feed {
            feed.push(fed);
        }
        self.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            state: self.state.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<Cursor<Vec<u8>>>) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let payload: SnapshotPayload = codec::Format::Snapshot.decode(&data).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&StoreError::Json(e)))
        })?;
        let last_applied = meta.last_log_id;
        let membership = meta.last_membership.clone();
        let store = self.store.clone();
        let (m, mem) = (meta.clone(), membership.clone());
        let dump = payload.catalog.clone();
        // Rows applied before the install describe a catalog it replaces.
        self.store.discard_deferred();
        store::blocking(move || {
            let mut wtxn = store.write_txn()?;
            store.replace_catalog(&mut wtxn, &dump)?;
            store.meta_put(&mut wtxn, META_LAST_APPLIED, &last_applied)?;
            store.meta_put(&mut wtxn, META_MEMBERSHIP, &mem)?;
            store.meta_put(&mut wtxn, META_SNAPSHOT_META, &m)?;
            store.meta_put_raw(&mut wtxn, META_SNAPSHOT_DATA, &data)?;
            store.commit_durable(wtxn)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)))?;
        self.state = CatalogState::from_dump(payload.catalog);
        self.last_applied = last_applied;
        self.membership = membership;
        if let Some(feed) = &self.feed {
            feed.reset(last_applied.map_or(0, |l| l.index));
        }
        self.publish();
        tracing::info!(snapshot = %meta.snapshot_id, index = last_applied.map_or(0, |l| l.index), "installed a Raft snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        self.read_current_snapshot().map_err(|e| sm_read_err(&e))
    }
}

#[cfg(test)]
mod tests;
