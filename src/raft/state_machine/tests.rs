//! Property tests of the state machine: determinism and LMDB/in-memory agreement.
//!
//! Input: random command sequences (`raft::testing::arb_command`) applied in random batches.
//! Output: pass/fail.
//! Invariants checked: two fresh state machines fed the same log end with identical catalogs,
//! responses and LMDB rows regardless of batching; applying writes nothing until the deferred
//! rows are taken, and what LMDB then holds reloads (`from_dump`) to exactly the in-memory state; the published snapshot is that state at the last index.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use proptest::prelude::*;
use tempfile::TempDir;

use super::StateMachine;
use crate::catalog::testing::arb_command;
use crate::catalog::{CatalogDump, CatalogState};
use crate::catalog::{Command, CommandResponse};
use crate::raft::Entry;
use crate::snapshot::SnapshotHandle;
use crate::store::Store;

fn check_entries(cmds: &[Command]) -> Vec<Entry> {
    cmds.iter()
        .enumerate()
        .map(|(i, c)| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), i as u64 + 1),
            payload: EntryPayload::Normal(c.clone()),
        })
        .collect()
}

struct Applied {
    _dir: TempDir,
    store: Store,
    snapshots: Arc<SnapshotHandle>,
    state: CatalogState,
    responses: Vec<CommandResponse>,
}

/// Applies `entries` to a fresh state machine in batches of `batch` entries.
async fn check_apply_all(entries: Vec<Entry>, batch: usize) -> Applied {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store opens");
    let snapshots = Arc::new(SnapshotHandle::default());
    let mut sm = StateMachine::open(store.clone(), snapshots.clone()).expect("sm opens");
    let mut responses = Vec::new();
    for chunk in entries.chunks(batch.max(1)) {
        responses.extend(sm.apply(chunk.to_vec()).await.expect("apply"));
    }
    Applied { _dir: dir, store, snapshots, state: sm.state().clone(), responses }
}

/// What LMDB holds once the deferred rows are written.
fn check_lmdb_dump(store: &Store) -> CatalogDump {
    store.flush_deferred().expect("deferred rows written");
    let rtxn = store.read_txn().expect("read txn");
    store.load_catalog(&rtxn).expect("load catalog")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn same_log_same_catalog(cmds in prop::collection::vec(arb_command(), 1..40), batch in 1usize..8) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()
            .expect("runtime");
        rt.block_on(async {
            let entries = check_entries(&cmds);
            let a = check_apply_all(entries.clone(), batch).await;
            let b = check_apply_all(entries, 1).await;
            // Applying wrote nothing yet: every batch's rows wait as one deferred write.
            {
                let rtxn = a.store.read_txn().expect("read txn");
                prop_assert_eq!(a.store.load_catalog(&rtxn).expect("catalog"), CatalogDump::default());
            }
            prop_assert_eq!(&a.responses, &b.responses);
            prop_assert_eq!(a.state.dump(), b.state.dump());
            let (da, db) = (check_lmdb_dump(&a.store), check_lmdb_dump(&b.store));
            prop_assert_eq!(&da, &db);
            // LMDB holds exactly the in-memory state.
            prop_assert_eq!(&CatalogState::from_dump(da), &a.state);
            prop_assert_eq!(&CatalogState::from_dump(db), &b.state);
            // The published snapshot is the state at the last index.
            let snap = a.snapshots.load_full();
            prop_assert_eq!(snap.index, cmds.len() as u64);
            prop_assert_eq!(&snap.catalog, &a.state);
            // Reopening the state machine on the same store reproduces the state.
            let handle = Arc::new(SnapshotHandle::default());
            let reopened = StateMachine::open(a.store.clone(), handle).expect("reopen");
            prop_assert_eq!(reopened.state(), &a.state);
            Ok(())
        })?;
    }
}

/// The longest accepted names still fit LMDB's key limit: such a registration persists.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn longest_names_persist() {
    use crate::catalog::HealthStatus;
    use crate::catalog::apply::MAX_NAME_BYTES;
    use crate::catalog::testing::{health_check, node, register, service};

    let long = "é".repeat(MAX_NAME_BYTES / 2);
    let cmd = register(
        node(&long, "10.0.0.1"),
        Some(service(&long, &long, &long, 80, &[])),
        vec![health_check(&long, &long, &long, HealthStatus::Passing)],
    );
    let applied = check_apply_all(check_entries(&[cmd]), 1).await;
    assert_eq!(applied.responses, vec![CommandResponse::Applied]);
    assert_eq!(CatalogState::from_dump(check_lmdb_dump(&applied.store)), applied.state);
    assert_eq!(applied.state.service_count(), 1);
}
