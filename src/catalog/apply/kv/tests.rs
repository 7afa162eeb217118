//! Unit tests of the KV, session and transaction transitions: Consul's rules, indexes,
//! lock-delay timing from command clocks, and all-or-nothing transactions.

use crate::catalog::apply::apply;
use crate::catalog::command::{Command, CommandResponse, KvOp, TxnOp};
use crate::catalog::kv::SessionBehavior;
use crate::catalog::testing::{deregister, health_check, kv_write, node, register, session, update_check};
use crate::catalog::{CatalogState, Change, HealthStatus};

/// Applies `cmd` at `index` and returns the response.
fn check_run(state: &mut CatalogState, index: u64, cmd: Command) -> CommandResponse {
    let mut changes = Vec::new();
    apply(state, index, &cmd, &mut changes)
}

fn kv(op: KvOp, now_ms: u64) -> Command {
    Command::Kv { op, now_ms }
}

/// A catalog with node `n1` (serfHealth passing, check `c1` passing) at index 1.
fn check_catalog() -> CatalogState {
    let mut state = CatalogState::default();
    let reg = register(
        node("n1", "10.0.0.1"),
        None,
        vec![
            health_check("n1", "serfHealth", "", HealthStatus::Passing),
            health_check("n1", "c1", "", HealthStatus::Passing),
        ],
    );
    assert_eq!(check_run(&mut state, 1, reg), CommandResponse::Applied);
    state
}

fn check_session(state: &mut CatalogState, index: u64, id: &str, checks: &[&str], b: SessionBehavior) {
    let cmd = Command::SessionCreate { session: session(id, "n1", checks, b), now_ms: 0 };
    assert_eq!(check_run(state, index, cmd), CommandResponse::Applied);
}

#[test]
fn set_cas_and_delete_follow_consul() {
    let mut st = check_catalog();
    assert_eq!(
        check_run(&mut st, 2, kv(KvOp::Cas(kv_write("k", b"v1", 0, "")), 0)),
        CommandResponse::Bool(true)
    );
    assert_eq!(
        check_run(&mut st, 3, kv(KvOp::Cas(kv_write("k", b"v2", 0, "")), 0)),
        CommandResponse::Bool(false)
    );
    assert_eq!(
        check_run(&mut st, 4, kv(KvOp::Cas(kv_write("k", b"v3", 2, "")), 0)),
        CommandResponse::Bool(true)
    );
    let e = st.kv().entry("k").expect("k");
    assert_eq!((e.value.as_slice(), e.create_index, e.modify_index, e.flags), (&b"v3"[..], 2, 4, 7));
    assert_eq!(check_run(&mut st, 5, kv(KvOp::DeleteCas("k".into(), 2), 0)), CommandResponse::Bool(false));
    assert_eq!(check_run(&mut st, 6, kv(KvOp::DeleteCas("k".into(), 4), 0)), CommandResponse::Bool(true));
    assert!(st.kv().entry("k").is_none());
    // The delete's tombstone keeps the prefix index from going backwards.
    assert_eq!(st.kv().prefix_index("k"), 6);
    assert_eq!(st.kv().key_index("k"), 6);
}

#[test]
fn prefix_index_ignores_other_prefixes() {
    let mut st = check_catalog();
    check_run(&mut st, 2, kv(KvOp::Set(kv_write("a/1", b"x", 0, "")), 0));
    check_run(&mut st, 3, kv(KvOp::Set(kv_write("b/1", b"x", 0, "")), 0));
    check_run(&mut st, 4, kv(KvOp::Delete("b/1".into()), 0));
    assert_eq!(st.kv().prefix_index("a/"), 2);
    assert_eq!(st.kv().prefix_index("b/"), 4);
    check_run(&mut st, 5, kv(KvOp::DeleteTree("a/".into()), 0));
    assert_eq!(st.kv().prefix_index("a/"), 5);
    assert_eq!(st.kv().len(), 0);
}

#[test]
fn lock_needs_a_live_session_and_counts_holders() {
    let mut st = check_catalog();
    assert!(matches!(
        check_run(&mut st, 2, kv(KvOp::Lock(kv_write("l", b"", 0, "s1")), 0)),
        CommandResponse::Rejected(_)
    ));
    check_session(&mut st, 3, "s1", &["serfHealth"], SessionBehavior::Release);
    check_session(&mut st, 4, "s2", &[], SessionBehavior::Release);
    assert_eq!(
        check_run(&mut st, 5, kv(KvOp::Lock(kv_write("l", b"a", 0, "s1")), 0)),
        CommandResponse::Bool(true)
    );
    assert_eq!(
        check_run(&mut st, 6, kv(KvOp::Lock(kv_write("l", b"b", 0, "s1")), 0)),
        CommandResponse::Bool(true)
    );
    assert_eq!(st.kv().entry("l").map(|e| e.lock_index), Some(1), "re-acquire by the holder keeps LockIndex");
    assert_eq!(
        check_run(&mut st, 7, kv(KvOp::Lock(kv_write("l", b"c", 0, "s2")), 0)),
        CommandResponse::Bool(false)
    );
    assert_eq!(
        check_run(&mut st, 8, kv(KvOp::Unlock(kv_write("l", b"d", 0, "s2")), 0)),
        CommandResponse::Bool(false)
    );
    // A plain set keeps the lock.
    check_run(&mut st, 9, kv(KvOp::Set(kv_write("l", b"e", 0, "")), 0));
    assert_eq!(st.kv().entry("l").map(|e| e.session.clone()), Some("s1".into()));
    assert_eq!(
        check_run(&mut st, 10, kv(KvOp::Unlock(kv_write("l", b"f", 0, "s1")), 0)),
        CommandResponse::Bool(true)
    );
    let e = st.kv().entry("l").expect("l");
    assert_eq!((e.session.as_str(), e.lock_index, e.value.as_slice()), ("", 1, &b"f"[..]));
    assert_eq!(
        check_run(&mut st, 11, kv(KvOp::Lock(kv_write("l", b"g", 0, "s2")), 0)),
        CommandResponse::Bool(true)
    );
    assert_eq!(st.kv().entry("l").map(|e| e.lock_index), Some(2));
    assert_eq!(st.kv().session_keys("s2"), vec!["l".to_owned()]);
}

#[test]
fn destroy_releases_locks_and_lock_delay_holds_until_its_time() {
    let mut st = check_catalog();
    check_session(&mut st, 2, "s1", &[], SessionBehavior::Release);
    check_session(&mut st, 3, "s2", &[], SessionBehavior::Release);
    check_run(&mut st, 4, kv(KvOp::Lock(kv_write("l", b"a", 0, "s1")), 1_000));
    check_run(&mut st, 5, Command::SessionDestroy { id: "s1".into(), now_ms: 2_000 });
    assert!(st.kv().session("s1").is_none());
    let e = st.kv().entry("l").expect("released, not deleted");
    assert_eq!((e.session.as_str(), e.modify_index), ("", 5));
    // Lock-delay is 1 s from the destroy's clock.
    assert_eq!(
        check_run(&mut st, 6, kv(KvOp::Lock(kv_write("l", b"b", 0, "s2")), 2_999)),
        CommandResponse::Bool(false)
    );
    assert_eq!(
        check_run(&mut st, 7, kv(KvOp::Lock(kv_write("l", b"b", 0, "s2")), 3_000)),
        CommandResponse::Bool(true)
    );
    assert!(st.kv().lock_delay("l").is_none(), "elapsed delays are dropped");
}

#[test]
fn delete_behavior_deletes_held_keys() {
    let mut st = check_catalog();
    check_session(&mut st, 2, "s1", &[], SessionBehavior::Delete);
    check_run(&mut st, 3, kv(KvOp::Lock(kv_write("l", b"a", 0, "s1")), 0));
    check_run(&mut st, 4, kv(KvOp::Set(kv_write("other", b"a", 0, "")), 0));
    check_run(&mut st, 5, Command::SessionDestroy { id: "s1".into(), now_ms: 0 });
    assert!(st.kv().entry("l").is_none());
    assert!(st.kv().entry("other").is_some());
}

#[test]
fn critical_bound_check_invalidates_and_delay_starts_at_the_next_clock() {
    let mut st = check_catalog();
    check_session(&mut st, 2, "s1", &["serfHealth", "c1"], SessionBehavior::Release);
    check_session(&mut st, 3, "s2", &[], SessionBehavior::Release);
    check_run(&mut st, 4, kv(KvOp::Lock(kv_write("l", b"a", 0, "s1")), 0));
    // A warning does not invalidate; critical does, with no clock in the command.
    check_run(&mut st, 5, update_check("n1", "C1", HealthStatus::Warning, ""));
    assert!(st.kv().session("s1").is_some());
    check_run(&mut st, 6, update_check("n1", "c1", HealthStatus::Critical, "down"));
    assert!(st.kv().session("s1").is_none());
    assert!(st.kv().session("s2").is_some(), "an unbound session survives");
    assert_eq!(st.kv().entry("l").map(|e| e.session.clone()), Some(String::new()));
    // The pending delay starts at the first clock seen (10 000) and lasts 1 s.
    assert_eq!(
        check_run(&mut st, 7, kv(KvOp::Lock(kv_write("l", b"", 0, "s2")), 10_000)),
        CommandResponse::Bool(false)
    );
    assert_eq!(
        check_run(&mut st, 8, kv(KvOp::Lock(kv_write("l", b"", 0, "s2")), 10_500)),
        CommandResponse::Bool(false)
    );
    assert_eq!(
        check_run(&mut st, 9, kv(KvOp::Lock(kv_write("l", b"", 0, "s2")), 11_000)),
        CommandResponse::Bool(true)
    );
}

#[test]
fn node_deregistration_and_check_removal_invalidate() {
    let mut st = check_catalog();
    check_session(&mut st, 2, "s1", &["c1"], SessionBehavior::Release);
    check_session(&mut st, 3, "s2", &[], SessionBehavior::Release);
    check_run(&mut st, 4, deregister("n1", None, Some("c1")));
    assert!(st.kv().session("s1").is_none());
    assert!(st.kv().session("s2").is_some());
    check_run(&mut st, 5, deregister("n1", None, None));
    assert!(st.kv().session("s2").is_none());
}

#[test]
fn session_create_checks_node_and_checks() {
    let mut st = check_catalog();
    let create = |id: &str, node: &str, checks: &[&str]| Command::SessionCreate {
        session: session(id, node, checks, SessionBehavior::Release),
        now_ms: 0,
    };
    assert_eq!(
        check_run(&mut st, 2, create("s1", "nope", &[])),
        CommandResponse::Rejected("Missing node registration".into())
    );
    assert_eq!(
        check_run(&mut st, 3, create("s1", "n1", &["missing"])),
        CommandResponse::Rejected("Missing check 'missing' registration".into())
    );
    check_run(&mut st, 4, update_check("n1", "c1", HealthStatus::Critical, ""));
    assert_eq!(
        check_run(&mut st, 5, create("s1", "n1", &["c1"])),
        CommandResponse::Rejected("Check 'c1' is in critical state".into())
    );
    assert!(st.kv().sessions().next().is_none());
    assert_eq!(check_run(&mut st, 6, create("s1", "N1", &["serfHealth"])), CommandResponse::Applied);
    assert_eq!(st.kv().session("s1").map(|s| s.node.clone()), Some("n1".into()));
}

#[test]
fn transaction_is_all_or_nothing_and_reports_every_failure() {
    let mut st = check_catalog();
    check_run(&mut st, 2, kv(KvOp::Set(kv_write("a", b"1", 0, "")), 0));
    let before = st.clone();
    let ops = vec![
        TxnOp::Kv(KvOp::Set(kv_write("b", b"2", 0, ""))),
        TxnOp::Kv(KvOp::Cas(kv_write("a", b"3", 99, ""))),
        TxnOp::Kv(KvOp::Delete("a".into())),
        TxnOp::Kv(KvOp::Get("missing".into())),
    ];
    let mut changes = Vec::new();
    let got = apply(&mut st, 3, &Command::Txn { ops, now_ms: 0 }, &mut changes);
    let CommandResponse::Txn(Err(errors)) = got else { panic!("expected errors, got {got:?}") };
    assert_eq!(errors.iter().map(|e| e.op_index).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(st, before);
    assert!(changes.is_empty());

    let ops = vec![
        TxnOp::Kv(KvOp::Set(kv_write("b", b"2", 0, ""))),
        TxnOp::Kv(KvOp::Cas(kv_write("a", b"3", 2, ""))),
        TxnOp::Kv(KvOp::GetTree(String::new())),
        TxnOp::NodeGet("N1".into()),
    ];
    let got = check_run(&mut st, 4, Command::Txn { ops, now_ms: 0 });
    let CommandResponse::Txn(Ok(results)) = got else { panic!("expected results, got {got:?}") };
    assert_eq!(results.len(), 5, "set, cas, two entries of get-tree, node");
    assert_eq!(st.kv().entry("a").map(|e| e.value.clone()), Some(b"3".to_vec()));
    assert_eq!(st.kv().entry("b").map(|e| e.modify_index), Some(4));
}

#[test]
fn read_txn_leaves_state_untouched() {
    let mut st = check_catalog();
    check_run(&mut st, 2, kv(KvOp::Set(kv_write("a", b"1", 0, "")), 0));
    let before = st.clone();
    let got = crate::catalog::apply::read_txn(&st, &[TxnOp::Kv(KvOp::CheckIndex("a".into(), 2))]);
    assert!(matches!(got, CommandResponse::Txn(Ok(_))));
    let got = crate::catalog::apply::read_txn(&st, &[TxnOp::Kv(KvOp::CheckNotExists("a".into()))]);
    assert!(matches!(got, CommandResponse::Txn(Err(_))));
    assert_eq!(st, before);
}

#[test]
fn overlong_key_is_rejected_deterministically() {
    let mut st = check_catalog();
    let key = "k".repeat(crate::catalog::kv::MAX_KEY_BYTES + 1);
    assert!(matches!(
        check_run(&mut st, 2, kv(KvOp::Set(kv_write(&key, b"", 0, "")), 0)),
        CommandResponse::Rejected(_)
    ));
    assert!(st.kv().is_empty());
}

#[test]
fn reaping_drops_old_tombstones_only() {
    let mut st = check_catalog();
    check_run(&mut st, 2, kv(KvOp::Set(kv_write("p/a", b"", 0, "")), 0));
    check_run(&mut st, 3, kv(KvOp::Set(kv_write("p/b", b"", 0, "")), 0));
    check_run(&mut st, 4, kv(KvOp::Delete("p/a".into()), 0));
    check_run(&mut st, 5, kv(KvOp::Delete("p/b".into()), 0));
    assert_eq!((st.kv().tombstone_count(), st.kv().indexes().tombstones), (2, 5));
    assert_eq!(check_run(&mut st, 6, Command::KvReap(4)), CommandResponse::Applied);
    assert_eq!(st.kv().tombstone_count(), 1);
    assert_eq!(st.kv().prefix_index("p/"), 5);
    check_run(&mut st, 7, Command::KvReap(5));
    // With nothing left under it, a prefix falls back to the table index.
    assert_eq!(st.kv().prefix_index("p/"), st.kv().indexes().kv);
}

#[test]
fn restore_brings_back_keys_and_sessions_and_reports_their_rows() {
    let mut saved = check_catalog();
    check_session(&mut saved, 2, "s1", &[], SessionBehavior::Release);
    check_run(&mut saved, 3, kv(KvOp::Lock(kv_write("kept", b"v", 0, "s1")), 0));
    let dump = saved.dump();

    let mut st = check_catalog();
    check_run(&mut st, 2, kv(KvOp::Set(kv_write("gone", b"", 0, "")), 0));
    let mut changes = Vec::new();
    apply(&mut st, 9, &Command::Restore(Box::new(dump)), &mut changes);
    assert!(st.kv().entry("gone").is_none());
    let e = st.kv().entry("kept").expect("restored key");
    assert_eq!((e.session.as_str(), e.modify_index), ("s1", 3), "rows keep their saved indexes");
    assert_eq!(st.kv().session_keys("s1"), vec!["kept".to_owned()]);
    for c in
        [Change::Kv("gone".into()), Change::Kv("kept".into()), Change::Session("s1".into()), Change::KvMeta]
    {
        assert!(changes.contains(&c), "{c:?} not reported");
    }
    assert_eq!((st.kv().indexes().kv, st.kv().indexes().sessions), (9, 9), "KV watchers wake");
}
