//! Raft storage conformance (openraft's `Suite`) and the open/propose/restart path.
//!
//! Input: fresh temp dirs. Output: pass/fail.
//! Invariant checked: the LMDB log store and state machine satisfy openraft's contract, a
//! reopened server serves the catalog from LMDB before any new write, every storage write is
//! synced and the applied rows ride along with the next one, and entries logged past the
//! stored last-applied id are re-applied on open.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, LogId, Membership, RaftSnapshotBuilder, StorageError, Vote,
};
use tempfile::TempDir;

use super::log_store::{LogStore, write_entries};
use super::state_machine::StateMachine;
use super::{Entry, RaftOptions, Server, TypeConfig};
use crate::catalog::HealthStatus;
use crate::catalog::testing::{health_check, node, register, service};
use crate::consensus::Consensus;
use crate::snapshot::SnapshotHandle;
use crate::store::{META_LAST_APPLIED, Store};

/// Builds a log store and state machine on a fresh temp dir (kept alive by the guard).
struct LmdbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for LmdbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let (dir, store) = check_fresh_store();
        let sm = StateMachine::open(store.clone(), Arc::new(SnapshotHandle::default()))
            .expect("state machine opens");
        Ok((dir, LogStore::new(store), sm))
    }
}

fn check_fresh_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store opens");
    (dir, store)
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(LmdbBuilder).expect("openraft storage suite passes");
}

impl RaftOptions {
    /// A single self-bootstrapping server with the default snapshot settings.
    pub(crate) fn single(data_dir: std::path::PathBuf, node_id: u64, raft_addr: SocketAddr) -> Self {
        Self {
            data_dir,
            node_id,
            raft_addr,
            bootstrap_expect: 1,
            snapshot_threshold: crate::config::DEFAULT_SNAPSHOT_THRESHOLD,
            trailing_logs: crate::config::DEFAULT_TRAILING_LOGS,
            rpc_auth: crate::rpc::Auth::open(),
        }
    }
}

/// Opens a server and its consensus handle (leader once this returns).
async fn open_consensus(opts: RaftOptions) -> (Arc<Server>, Consensus) {
    let server = super::open(opts).await.expect("raft opens");
    (server.clone(), Consensus::new(server))
}

fn check_opts(dir: &TempDir) -> RaftOptions {
    let raft_addr: SocketAddr = "127.0.0.1:8300".parse().expect("literal address");
    RaftOptions::single(dir.path().to_path_buf(), 1, raft_addr)
}

/// Reopens the LMDB environment once the previous Raft's background tasks, which finish
/// shortly after `shutdown` returns, have released it (heed allows one open per process).
async fn reopen_store(path: &std::path::Path) -> Store {
    for _ in 0..200 {
        match Store::open(path) {
            Ok(store) => return store,
            Err(crate::store::StoreError::Lmdb(heed::Error::EnvAlreadyOpened)) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("store reopens: {e:?}"),
        }
    }
    panic!("the LMDB environment was not released within 2 s of shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_propose_restart_serves_data_immediately() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cmd = register(
        node("n1", "10.0.0.1"),
        Some(service("n1", "web-1", "web", 80, &[])),
        vec![health_check("n1", "web-ttl", "web-1", HealthStatus::Passing)],
    );
    let applied_at = {
        let (server, raft) = open_consensus(check_opts(&dir)).await;
        assert!(raft.known_leader());
        assert_eq!(raft.leader_addr().as_deref(), Some("127.0.0.1:8300"));
        assert_eq!(raft.peer_addrs(), vec!["127.0.0.1:8300".to_owned()]);
        assert_eq!(raft.last_contact_ms(), 0);
        raft.propose(cmd).await.expect("proposal commits");
        let snap = raft.snapshots().load_full();
        assert!(snap.catalog.service("n1", "web-1").is_some(), "published after apply");
        assert_eq!(raft.applied_index(), snap.index);
        server.shutdown().await.expect("shutdown");
        snap.index
    };

    // The state machine alone (no Raft) publishes the stored catalog on open.
    {
        let store = reopen_store(&dir.path().join("raft")).await;
        let handle = Arc::new(SnapshotHandle::default());
        let _sm = StateMachine::open(store, handle.clone()).expect("state machine reopens");
        let snap = handle.load_full();
        assert_eq!(snap.index, applied_at);
        assert!(snap.catalog.service("n1", "web-1").is_some(), "served from LMDB before Raft starts");
    }

    drop(reopen_store(&dir.path().join("raft")).await);
    let (server, raft) = open_consensus(check_opts(&dir)).await;
    let snap = raft.snapshots().load_full();
    assert!(snap.catalog.node("n1").is_some());
    assert!(snap.catalog.check("n1", "web-ttl").is_some());
    assert!(snap.index >= applied_at);
    // The log survived too: a new write lands after the old one.
    raft.propose(register(node("n2", "10.0.0.2"), None, vec![]))
        .await
        .expect("proposal after restart commits");
    let n2 = raft.snapshots().load().catalog.node("n2").cloned().expect("n2 registered");
    assert!(n2.create_index > applied_at);
    server.shutdown().await.expect("shutdown");
}

/// Concurrent proposals all commit, each once, and the published snapshot holds them all;
/// they are grouped into fewer log entries than proposals (group commit, `raft::batch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_all_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, raft) = open_consensus(check_opts(&dir)).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let raft = raft.clone();
        tasks.push(tokio::spawn(async move {
            raft.propose(register(node(&format!("n{i}"), "10.0.0.1"), None, vec![])).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("proposal commits");
    }
    let snap = raft.snapshots().load_full();
    assert_eq!(snap.catalog.node_count(), 64);
    let mut created: Vec<u64> = snap.catalog.nodes().map(|n| n.create_index).collect();
    created.sort_unstable();
    created.dedup();
    // 64 proposals are queued within microseconds while each group takes an fsync, so they
    // share entries.
    assert!(created.len() < 64, "proposals were grouped: {} log entries for 64 writes", created.len());
    server.shutdown().await.expect("shutdown");
}

/// A log for node 1 at 127.0.0.1:8300 as `initialize` starts it (the membership at index 0),
/// then one node registration per name in term 1 (index 1, 2, ...).
fn check_log(names: &[&str]) -> Vec<Entry> {
    let id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
    let members = BTreeMap::from([(1, BasicNode::new("127.0.0.1:8300"))]);
    let mut log = vec![Entry {
        log_id: LogId::new(CommittedLeaderId::new(0, 0), 0),
        payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], members)),
    }];
    for (i, name) in names.iter().enumerate() {
        log.push(Entry {
            log_id: id(i as u64 + 1),
            payload: EntryPayload::Normal(register(node(name, "10.0.0.1"), None, vec![])),
        });
    }
    log
}

/// The entries serialised as `append` stores them.
fn check_rows(entries: &[Entry]) -> Vec<(u64, Vec<u8>)> {
    entries.iter().map(|e| (e.log_id.index, serde_json::to_vec(e).expect("entry encodes"))).collect()
}

/// Every log-store write and both snapshot writes are synced. The state machine's apply
/// writes nothing: its rows ride along with the next log append (or a snapshot build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_rows_ride_along_with_the_next_synced_commit() {
    let (dir, store) = check_fresh_store();
    let mut log = LogStore::new(store.clone());
    let mut sm = StateMachine::open(store.clone(), Arc::new(SnapshotHandle::default())).expect("sm opens");
    let entries = check_log(&["n2", "n3"]);
    let last = entries[2].log_id;
    let stored_applied = |store: &Store| -> Option<LogId<u64>> {
        let rtxn = store.read_txn().expect("read txn");
        store.meta_get::<Option<LogId<u64>>>(&rtxn, META_LAST_APPLIED).expect("meta").flatten()
    };
    assert_eq!(store.sync_count(), 0);

    log.save_vote(&Vote::new_committed(1, 1)).await.expect("vote saved");
    assert_eq!(store.sync_count(), 1, "save_vote syncs");
    write_entries(&store, &check_rows(&entries), Some(Some(last))).expect("append");
    assert_eq!(store.sync_count(), 2, "append syncs");

    sm.apply(entries.clone()).await.expect("apply");
    assert_eq!(store.sync_count(), 2, "apply does not sync");
    assert_eq!(stored_applied(&store), None, "apply commits nothing");
    assert!(store.has_deferred());

    // The next log write takes the applied rows into its own synced transaction.
    write_entries(&store, &check_rows(&check_log(&["n2", "n3", "n4"])[3..]), None).expect("append");
    assert_eq!(store.sync_count(), 3, "append syncs");
    assert_eq!(stored_applied(&store), Some(last), "the applied rows rode along");
    assert!(!store.has_deferred());

    // A snapshot build writes what is still deferred before the log can be purged to it.
    let n4 = check_log(&["n2", "n3", "n4"])[3].clone();
    sm.apply(vec![n4.clone()]).await.expect("apply");
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.expect("snapshot built");
    assert_eq!(store.sync_count(), 4, "snapshot build syncs");
    assert_eq!(stored_applied(&store), Some(n4.log_id), "the build wrote the deferred rows");
    assert_eq!(snapshot.meta.last_log_id, Some(n4.log_id));
    log.purge(entries[1].log_id).await.expect("purge");
    assert_eq!(store.sync_count(), 5, "purge syncs");
    log.truncate(LogId::new(CommittedLeaderId::new(1, 1), 3)).await.expect("truncate");
    assert_eq!(store.sync_count(), 6, "truncate syncs");
    sm.install_snapshot(&snapshot.meta, snapshot.snapshot).await.expect("snapshot installed");
    assert_eq!(store.sync_count(), 7, "snapshot install syncs");

    // Everything is in the environment when it is opened again.
    drop((log, sm, store));
    let store = reopen_store(dir.path()).await;
    let handle = Arc::new(SnapshotHandle::default());
    let _sm = StateMachine::open(store.clone(), handle.clone()).expect("sm reopens");
    assert_eq!(handle.load_full().index, n4.log_id.index);
    assert!(handle.load_full().catalog.node("n4").is_some());
    let rtxn = store.read_txn().expect("read txn");
    let kept: Vec<u64> = store.log_range(&rtxn, &(..)).expect("log").into_iter().map(|(i, _)| i).collect();
    assert_eq!(kept, vec![2], "purged up to 1, truncated from 3");
}

/// Rows applied before a snapshot install never land over the installed catalog, even when
/// the next commit comes after the install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_discards_rows_applied_before_it() {
    let (_dir, store) = check_fresh_store();
    let mut sm = StateMachine::open(store.clone(), Arc::new(SnapshotHandle::default())).expect("sm opens");
    let entries = check_log(&["n2", "n3"]);
    write_entries(&store, &check_rows(&entries), None).expect("append");
    sm.apply(entries[..2].to_vec()).await.expect("apply n2");
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.expect("snapshot of n2");
    sm.apply(entries[2..].to_vec()).await.expect("apply n3");
    assert!(store.has_deferred(), "n3's rows wait");

    sm.install_snapshot(&snapshot.meta, snapshot.snapshot).await.expect("install n2's snapshot");
    assert!(!store.has_deferred(), "the install dropped n3's rows");
    write_entries(&store, &check_rows(&check_log(&["n2", "n3", "n4"])[3..]), None).expect("append");
    let rtxn = store.read_txn().expect("read txn");
    let dump = store.load_catalog(&rtxn).expect("catalog");
    assert!(dump.nodes.iter().any(|n| n.name == "n2"));
    assert!(!dump.nodes.iter().any(|n| n.name == "n3"), "no stale row over the installed catalog");
    let applied: Option<LogId<u64>> =
        store.meta_get::<Option<LogId<u64>>>(&rtxn, META_LAST_APPLIED).expect("meta").flatten();
    assert_eq!(applied, snapshot.meta.last_log_id);
}

/// The durable state a crash can leave behind since applied rows are deferred: the log holds
/// (and has committed) entries the state machine's stored last-applied id is behind. Opening
/// the server re-applies them from the log, at their own indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reapplies_logged_entries_past_last_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let entries = check_log(&["n2", "n3", "n4"]);
    {
        let store = Store::open(&dir.path().join("raft")).expect("store opens");
        let mut log = LogStore::new(store.clone());
        let mut sm =
            StateMachine::open(store.clone(), Arc::new(SnapshotHandle::default())).expect("sm opens");
        log.save_vote(&Vote::new_committed(1, 1)).await.expect("vote saved");
        write_entries(&store, &check_rows(&entries), Some(Some(entries[3].log_id))).expect("append");
        // The first two were applied and written before the "crash"; the third was applied
        // but its deferred rows died with the process.
        sm.apply(entries[..2].to_vec()).await.expect("apply");
        store.flush_deferred().expect("rows written");
        sm.apply(entries[2..3].to_vec()).await.expect("apply");
        assert!(store.has_deferred());
    }
    {
        let store = reopen_store(&dir.path().join("raft")).await;
        let handle = Arc::new(SnapshotHandle::default());
        let _sm = StateMachine::open(store, handle.clone()).expect("sm reopens");
        let snap = handle.load_full();
        assert_eq!(snap.index, 1);
        assert!(snap.catalog.node("n2").is_some() && snap.catalog.node("n3").is_none());
    }

    let (server, raft) = open_consensus(check_opts(&dir)).await;
    let snap = raft.snapshots().load_full();
    assert!(snap.index >= 3, "re-applied up to the committed entry, at {}", snap.index);
    for (name, index) in [("n2", 1), ("n3", 2), ("n4", 3)] {
        let n = snap.catalog.node(name).unwrap_or_else(|| panic!("{name} re-applied"));
        assert_eq!(n.create_index, index, "{name} applied at its own log index");
    }
    server.shutdown().await.expect("shutdown");
}
