//! Raft storage conformance (openraft's `Suite`) and the open/propose/restart path.
//!
//! Input: fresh temp dirs. Output: pass/fail.
//! Invariant checked: the LMDB log store and state machine satisfy openraft's contract, and
//! a reopened server serves the catalog from LMDB before any new write.

use std::net::SocketAddr;
use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::testing::{health_check, node, register, service};
use super::{RaftOptions, TypeConfig};
use crate::catalog::HealthStatus;
use crate::snapshot::SnapshotHandle;
use crate::store::Store;

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
        let raft = super::open(check_opts(&dir)).await.expect("raft opens");
        assert!(raft.known_leader());
        assert_eq!(raft.leader_addr().as_deref(), Some("127.0.0.1:8300"));
        assert_eq!(raft.peer_addrs(), vec!["127.0.0.1:8300".to_owned()]);
        assert_eq!(raft.last_contact_ms(), 0);
        raft.propose(cmd).await.expect("proposal commits");
        let snap = raft.snapshots().load_full();
        assert!(snap.catalog.service("n1", "web-1").is_some(), "published after apply");
        assert_eq!(raft.applied_index(), snap.index);
        raft.shutdown().await.expect("shutdown");
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
    let raft = super::open(check_opts(&dir)).await.expect("raft reopens");
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
    raft.shutdown().await.expect("shutdown");
}

/// Concurrent proposals all commit, each once, and the published snapshot holds them all;
/// they are grouped into fewer log entries than proposals (group commit, `raft::batch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_all_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let raft = super::open(check_opts(&dir)).await.expect("raft opens");
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
    raft.shutdown().await.expect("shutdown");
}
