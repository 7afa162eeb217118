//! STORAGE: the LMDB (heed) environment behind the Raft log, Raft metadata and the catalog.
//!
//! Input: write transactions from `raft::log_store` (log entries, vote, committed, purged) and
//! `raft::state_machine` (snapshots), and the state machine's deferred rows (changed catalog
//! rows, last applied, membership: `deferred`).
//! Output: durable rows, read back on open (`load_catalog`, `meta_get`, `log_range`).
//!
//! Invariants:
//! - One environment per data directory, under `<data_dir>/raft/`, opened without TLS read
//!   transactions so a read transaction may cross threads (tokio).
//! - Durability is explicit. The environment is opened with LMDB's `MDB_NOMETASYNC`: every
//!   commit fdatasyncs its data pages BEFORE it writes the meta page that makes them live, but
//!   does not sync that meta page (one device flush per commit instead of two). So a commit is
//!   always atomic and the file never references unwritten pages (LMDB keeps its integrity
//!   across a power loss), but the LAST commits may be undone by a system crash. A commit that
//!   must survive one goes through `commit_durable` (commit, then `Store::sync`, which
//!   fdatasyncs the whole file including the meta page); callers report such a write as done
//!   only after it returns. Every commit is durable (database creation, log
//!   append/truncate/purge, vote, snapshot build and install) except `flush_deferred`'s.
//! - The state machine's applied rows are not committed by the apply: they wait in memory
//!   (`deferred`) and ride along with the next commit that takes them, normally the next log
//!   append. So LMDB's catalog may lag the applied state. That loses nothing: the entries were
//!   appended (durably) before they were applied, openraft reads the stored last-applied id
//!   on start and re-applies the entries after it (apply is deterministic), and the log is
//!   purged only up to a snapshot whose build wrote the deferred rows first. A process crash
//!   (`kill -9`) loses nothing committed: the page cache survives it.
//! - The catalog tables hold exactly the rows of the state machine's `CatalogState` at the
//!   stored last-applied id: deferred rows are written in the same transaction as the
//!   last-applied id they belong to, so a reload (`load_catalog` + `CatalogState::from_dump`)
//!   reproduces the in-memory state at that log id.
//! - Service and check rows are keyed by `(node key, id key)`, encoded as a 2-byte big-endian
//!   length of the node key, the node key, then the id key: unambiguous for any strings.

use std::collections::BTreeSet;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex};

use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U64};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::catalog::kv::{KvDump, KvEntry, KvIndexes, LockDelay, Session};
use crate::catalog::{CatalogDump, CatalogState, Change, Check, Node, PreparedQuery, Service, TableIndexes};
use crate::codec::{self, Row};

mod deferred;
mod secret_file;
pub(crate) use deferred::Deferred;
pub(crate) use secret_file::write_secret_file;

/// Virtual size of the memory map. Sparse: the file only grows with the data written.
pub(crate) const MAP_SIZE: usize = 4 << 30;
/// Named databases in the environment (room for later tables, e.g. a KV store).
const MAX_DBS: u32 = 16;

/// Meta key: the Raft vote.
pub(crate) const META_VOTE: &str = "raft.vote";
/// Meta key: the last committed log id.
pub(crate) const META_COMMITTED: &str = "raft.committed";
/// Meta key: the last purged log id.
pub(crate) const META_PURGED: &str = "raft.purged";
/// Meta key: the state machine's last applied log id.
pub(crate) const META_LAST_APPLIED: &str = "sm.last_applied";
/// Meta key: the state machine's last applied membership.
pub(crate) const META_MEMBERSHIP: &str = "sm.membership";
/// Meta key: the current Raft snapshot's metadata.
pub(crate) const META_SNAPSHOT_META: &str = "sm.snapshot.meta";
/// Meta key: the current Raft snapshot's data (raw bytes, not JSON-wrapped).
pub(crate) const META_SNAPSHOT_DATA: &str = "sm.snapshot.data";
/// Meta key: the catalog's table indexes.
const META_TABLES: &str = "catalog.tables";
/// Meta key: the KV and session table indexes.
const META_KV_INDEXES: &str = "kv.indexes";
/// Meta key: the keys inside a lock-delay.
const META_KV_LOCK_DELAYS: &str = "kv.lock_delays";
/// Meta key: the ACL tables, one row (`catalog::acl`: small, rarely written).
const META_ACL: &str = "acl.state";
/// Meta key: the operator tables (autopilot configuration, coordinates), one row
/// (`catalog::operator`).
const META_OPERATOR: &str = "operator.state";
const META_CONFIG_ENTRIES: &str = "config-entries.state";

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StoreError {
    /// LMDB (or heed's encoding) failed.
    #[error("lmdb: {0}")]
    Lmdb(#[from] heed::Error),
    /// Creating the data directory failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A stored value could not be (de)serialised.
    #[error("json: {0}")]
    Json(#[from] codec::CodecError),
    /// A blocking storage task panicked or was cancelled.
    #[error("storage task: {0}")]
    Task(String),
    /// A key is too long for the encoding.
    #[error("key too long: {0} bytes")]
    KeyTooLong(usize),
}

/// Handle to the environment and its databases; cheap to clone (the environment is shared).
#[derive(Clone)]
pub(crate) struct Store {
    env: Env<WithoutTls>,
    log: Database<'static, U64<BigEndian>, Bytes>,
    meta: Database<'static, Str, Bytes>,
    nodes: Database<'static, Str, Row<Node>>,
    services: Database<'static, Bytes, Row<Service>>,
    checks: Database<'static, Bytes, Row<Check>>,
    service_indexes: Database<'static, Str, U64<BigEndian>>,
    /// Prepared queries by ID key (created on open, so older stores gain it empty).
    queries: Database<'static, Str, Row<PreparedQuery>>,
    /// KV entries by key.
    kv: Database<'static, Str, Row<KvEntry>>,
    /// Deleted KV keys -> delete index.
    kv_tombstones: Database<'static, Str, U64<BigEndian>>,
    /// Sessions by ID.
    sessions: Database<'static, Str, Row<Session>>,
    /// Applied rows waiting for the next commit that takes them (`deferred`).
    deferred: Arc<Mutex<deferred::Slot>>,
    /// How many times `sync` ran (tests check which commits are made durable).
    #[cfg(test)]
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.env.path()).finish_non_exhaustive()
    }
}

/// Encodes a `(node key, id key)` pair as a row key.
pub(crate) fn pair_key(a: &str, b: &str) -> Result<Vec<u8>, StoreError> {
    let len = u16::try_from(a.len()).map_err(|_| StoreError::KeyTooLong(a.len()))?;
    let mut k = Vec::with_capacity(2 + a.len() + b.len());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(a.as_bytes());
    k.extend_from_slice(b.as_bytes());
    Ok(k)
}

impl Store {
    /// Opens (creating if needed) the environment in directory `dir` and its databases.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(MAP_SIZE).max_dbs(MAX_DBS);
        // SAFETY: heed marks the sync-relaxing flags unsafe because they weaken durability.
        // `NO_META_SYNC` keeps LMDB's integrity (data pages are synced before the meta page
        // that references them is written) and only defers the meta page's flush; every
        // commit whose durability is promised to Raft goes through `commit_durable`, which
        // syncs it (see the module invariants). `NO_SYNC` is deliberately NOT used: it would
        // let a meta page reach the disk before its data pages and corrupt the file on a
        // power loss.
        #[allow(unsafe_code)]
        unsafe {
            options.flags(EnvFlags::NO_META_SYNC);
        }
        // SAFETY: LMDB requires that the memory-mapped file is not modified outside LMDB and
        // that this process does not open the same environment with other options. The
        // directory is private to this server's data dir, only this module opens it, always
        // with the same options (heed deduplicates a second open of the same path).
        #[allow(unsafe_code)]
        let env = unsafe { options.open(dir)? };
        let wtxn = env.write_txn()?;
        let dbs = env
            .create_databases_and_commit(wtxn, |wdo, wtxn| -> Result<_, heed::Error> {
                Ok(CommitOrAbort::<_, ()>::Commit((
                    wdo.create_database(wtxn, Some("raft-log"))?,
                    wdo.create_database(wtxn, Some("meta"))?,
                    wdo.create_database(wtxn, Some("catalog-nodes"))?,
                    wdo.create_database(wtxn, Some("catalog-services"))?,
                    wdo.create_database(wtxn, Some("catalog-checks"))?,
                    wdo.create_database(wtxn, Some("catalog-service-indexes"))?,
                    wdo.create_database(wtxn, Some("catalog-queries"))?,
                    wdo.create_database(wtxn, Some("kv"))?,
                    wdo.create_database(wtxn, Some("kv-tombstones"))?,
                    wdo.create_database(wtxn, Some("sessions"))?,
                )))
            })?
            .commit();
        let Some((log, meta, nodes, services, checks, service_indexes, queries, kv, kv_tombstones, sessions)) =
            dbs
        else {
            return Err(StoreError::Task("database creation aborted".into()));
        };
        // The databases' creation is durable before anything uses them.
        env.force_sync()?;
        Ok(Self {
            env,
            deferred: Arc::default(),
            #[cfg(test)]
            syncs: Arc::default(),
            log,
            meta,
            nodes,
            services,
            checks,
            service_indexes,
            queries,
            kv,
            kv_tombstones,
            sessions,
        })
    }

    /// A read transaction (`Send`: the environment has no TLS readers).
    pub(crate) fn read_txn(&self) -> Result<RoTxn<'_, WithoutTls>, StoreError> {
        Ok(self.env.read_txn()?)
    }

    /// The write transaction; LMDB serialises writers, so this may wait for another one.
    /// Its plain `commit` is atomic but not durable against a system crash: use
    /// `commit_durable` for anything reported to Raft as persisted.
    pub(crate) fn write_txn(&self) -> Result<RwTxn<'_>, StoreError> {
        Ok(self.env.write_txn()?)
    }

    /// Commits `wtxn` and syncs the environment: once this returns, the transaction (and every
    /// commit before it) survives a system crash.
    pub(crate) fn commit_durable(&self, wtxn: RwTxn<'_>) -> Result<(), StoreError> {
        wtxn.commit()?;
        self.sync()
    }

    /// Flushes the whole environment (data and meta pages of every commit so far) to disk
    /// (`mdb_env_sync(env, 1)`; safe beside concurrent transactions).
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.env.force_sync()?;
        #[cfg(test)]
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// How many times `sync` ran on this handle and its clones.
    #[cfg(test)]
    pub(crate) fn sync_count(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    // ----- Raft log ----------------------------------------------------------------------

    /// Stores one serialised log entry at `index`.
    pub(crate) fn log_put(&self, wtxn: &mut RwTxn<'_>, index: u64, entry: &[u8]) -> Result<(), StoreError> {
        Ok(self.log.put(wtxn, &index, entry)?)
    }

    /// Serialised log entries whose index is in `range`, in index order.
    pub(crate) fn log_range<R: RangeBounds<u64>>(
        &self,
        rtxn: &RoTxn<'_>,
        range: &R,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for row in self.log.range(rtxn, range)? {
            let (k, v) = row?;
            out.push((k, v.to_vec()));
        }
        Ok(out)
    }

    /// The last log entry, if any.
    pub(crate) fn log_last(&self, rtxn: &RoTxn<'_>) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self.log.last(rtxn)?.map(|(k, v)| (k, v.to_vec())))
    }

    /// Deletes log entries with index in `range`.
    pub(crate) fn log_delete<R: RangeBounds<u64>>(
        &self,
        wtxn: &mut RwTxn<'_>,
        range: &R,
    ) -> Result<(), StoreError> {
        self.log.delete_range(wtxn, range)?;
        Ok(())
    }

    // ----- meta --------------------------------------------------------------------------

    /// A JSON meta value.
    pub(crate) fn meta_get<T: DeserializeOwned>(
        &self,
        rtxn: &RoTxn<'_>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.meta.get(rtxn, key)? {
            Some(bytes) => Ok(Some(codec::Format::Meta.decode(bytes)?)),
            None => Ok(None),
        }
    }

    /// Stores a JSON meta value.
    pub(crate) fn meta_put<T: Serialize>(
        &self,
        wtxn: &mut RwTxn<'_>,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = codec::Format::Meta.encode(value)?;
        Ok(self.meta.put(wtxn, key, &bytes)?)
    }

    /// A raw meta value.
    pub(crate) fn meta_get_raw(&self, rtxn: &RoTxn<'_>, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(rtxn, key)?.map(<[u8]>::to_vec))
    }

    /// Stores a raw meta value.
    pub(crate) fn meta_put_raw(
        &self,
        wtxn: &mut RwTxn<'_>,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        Ok(self.meta.put(wtxn, key, value)?)
    }

    // ----- catalog -----------------------------------------------------------------------

    /// Writes or deletes every row named in `changes`, reading its current value from `state`.
    pub(crate) fn write_changes(
        &self,
        wtxn: &mut RwTxn<'_>,
        state: &CatalogState,
        changes: &[Change],
    ) -> Result<(), StoreError> {
        let unique: BTreeSet<&Change> = changes.iter().collect();
        for change in unique {
            match change {
                Change::Node(k) => match state.node_row(k) {
                    Some(n) => self.nodes.put(wtxn, k, n)?,
                    None => {
                        self.nodes.delete(wtxn, k)?;
                    }
                },
                Change::Service(k) => {
                    let key = pair_key(&k.0, &k.1)?;
                    match state.service_row(k) {
                        Some(s) => self.services.put(wtxn, &key, s)?,
                        None => {
                            self.services.delete(wtxn, &key)?;
                        }
                    }
                }
                Change::Check(k) => {
                    let key = pair_key(&k.0, &k.1)?;
                    match state.check_row(k) {
                        Some(c) => self.checks.put(wtxn, &key, c)?,
                        None => {
                            self.checks.delete(wtxn, &key)?;
                        }
                    }
                }
                Change::ServiceIndex(k) => match state.service_index_row(k) {
                    Some(i) => self.service_indexes.put(wtxn, k, &i)?,
                    None => {
                        self.service_indexes.delete(wtxn, k)?;
                    }
                },
                Change::TableIndexes => self.meta_put(wtxn, META_TABLES, &state.table_indexes())?,
                Change::Query(k) => match state.query_row(k) {
                    Some(q) => self.queries.put(wtxn, k, q)?,
                    None => {
                        self.queries.delete(wtxn, k)?;
                    }
                },
                Change::Kv(k) => match state.kv().entry(k) {
                    Some(e) => self.kv.put(wtxn, k, e)?,
                    None => {
                        self.kv.delete(wtxn, k)?;
                    }
                },
                Change::KvTombstone(k) => match state.kv().tombstone_row(k) {
                    Some(i) => self.kv_tombstones.put(wtxn, k, &i)?,
                    None => {
                        self.kv_tombstones.delete(wtxn, k)?;
                    }
                },
                Change::Session(id) => match state.kv().session(id) {
                    Some(s) => self.sessions.put(wtxn, id, s)?,
                    None => {
                        self.sessions.delete(wtxn, id)?;
                    }
                },
                Change::KvMeta => {
                    let kv = state.kv();
                    self.meta_put(wtxn, META_KV_INDEXES, &kv.indexes())?;
                    let delays: Vec<(String, LockDelay)> = kv.dump_lock_delays();
                    self.meta_put(wtxn, META_KV_LOCK_DELAYS, &delays)?;
                }
                Change::Acl => self.meta_put(wtxn, META_ACL, &state.acl().dump())?,
                Change::Operator => self.meta_put(wtxn, META_OPERATOR, &state.operator().dump())?,
                Change::ConfigEntries => {
                    self.meta_put(wtxn, META_CONFIG_ENTRIES, &state.config_entries().dump())?;
                }
            }
        }
        Ok(())
    }

    /// Replaces every catalog table with the content of `dump`.
    pub(crate) fn replace_catalog(&self, wtxn: &mut RwTxn<'_>, dump: &CatalogDump) -> Result<(), StoreError> {
        self.nodes.clear(wtxn)?;
        self.services.clear(wtxn)?;
        self.checks.clear(wtxn)?;
        self.service_indexes.clear(wtxn)?;
        self.queries.clear(wtxn)?;
        for q in &dump.queries {
            self.queries.put(wtxn, &crate::catalog::key(&q.id), q)?;
        }
        for n in &dump.nodes {
            self.nodes.put(wtxn, &crate::catalog::key(&n.name), n)?;
        }
        for s in &dump.services {
            let k = pair_key(&crate::catalog::key(&s.node), &crate::catalog::key(&s.id))?;
            self.services.put(wtxn, &k, s)?;
        }
        for c in &dump.checks {
            let k = pair_key(&crate::catalog::key(&c.node), &crate::catalog::key(&c.check_id))?;
            self.checks.put(wtxn, &k, c)?;
        }
        for (name, index) in &dump.service_indexes {
            self.service_indexes.put(wtxn, name, index)?;
        }
        self.kv.clear(wtxn)?;
        self.kv_tombstones.clear(wtxn)?;
        self.sessions.clear(wtxn)?;
        for e in &dump.kv.entries {
            self.kv.put(wtxn, &e.key, e)?;
        }
        for (k, i) in &dump.kv.tombstones {
            self.kv_tombstones.put(wtxn, k, i)?;
        }
        for s in &dump.kv.sessions {
            self.sessions.put(wtxn, &s.id, s)?;
        }
        self.meta_put(wtxn, META_KV_INDEXES, &dump.kv.indexes)?;
        self.meta_put(wtxn, META_KV_LOCK_DELAYS, &dump.kv.lock_delays)?;
        self.meta_put(wtxn, META_ACL, &dump.acl)?;
        self.meta_put(wtxn, META_OPERATOR, &dump.operator)?;
        self.meta_put(wtxn, META_CONFIG_ENTRIES, &dump.config_entries)?;
        self.meta_put(wtxn, META_TABLES, &dump.tables)
    }

    /// Reads every catalog table.
    pub(crate) fn load_catalog(&self, rtxn: &RoTxn<'_>) -> Result<CatalogDump, StoreError> {
        let mut dump = CatalogDump::default();
        for row in self.nodes.iter(rtxn)? {
            dump.nodes.push(row?.1);
        }
        for row in self.services.iter(rtxn)? {
            dump.services.push(row?.1);
        }
        for row in self.checks.iter(rtxn)? {
            dump.checks.push(row?.1);
        }
        for row in self.service_indexes.iter(rtxn)? {
            let (k, v) = row?;
            dump.service_indexes.push((k.to_owned(), v));
        }
        for row in self.queries.iter(rtxn)? {
            dump.queries.push(row?.1);
        }
        dump.tables = self.meta_get::<TableIndexes>(rtxn, META_TABLES)?.unwrap_or_default();
        dump.kv = self.load_kv(rtxn)?;
        dump.acl = self.meta_get(rtxn, META_ACL)?.unwrap_or_default();
        dump.operator = self.meta_get(rtxn, META_OPERATOR)?.unwrap_or_default();
        dump.config_entries = self.meta_get(rtxn, META_CONFIG_ENTRIES)?.unwrap_or_default();
        Ok(dump)
    }

    fn load_kv(&self, rtxn: &RoTxn<'_>) -> Result<KvDump, StoreError> {
        let mut kv = KvDump::default();
        for row in self.kv.iter(rtxn)? {
            kv.entries.push(row?.1);
        }
        for row in self.kv_tombstones.iter(rtxn)? {
            let (k, i) = row?;
            kv.tombstones.push((k.to_owned(), i));
        }
        for row in self.sessions.iter(rtxn)? {
            kv.sessions.push(row?.1);
        }
        kv.indexes = self.meta_get::<KvIndexes>(rtxn, META_KV_INDEXES)?.unwrap_or_default();
        kv.lock_delays = self.meta_get(rtxn, META_KV_LOCK_DELAYS)?.unwrap_or_default();
        Ok(kv)
    }
}

/// Runs blocking LMDB work (commits and their syncs) off the async worker threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Task(e.to_string()))?
}
