//! KV, session and transaction transitions (part of `apply`, so deterministic: the only time
//! they know is the `now_ms` carried by the command).
//!
//! Consul's rules (`agent/consul/state/kvs.go`, `session.go`, `txn.go`): a plain set keeps the
//! key's lock; `cas` 0 creates only; `lock` needs a live session and no lock-delay and bumps
//! `LockIndex` on a new holder; `unlock` needs the holder; a transaction applies every
//! operation or none and reports every failure. A session dies when destroyed or expired, when
//! its node goes away, or when a check it is bound to goes critical or away; its locks are then
//! released or deleted (its `Behavior`) and enter their lock-delay.

use super::txn_service;
use crate::catalog::command::{CommandResponse, KvOp, KvWrite, TxnError, TxnOp, TxnResult};
use crate::catalog::kv::{KvEntry, LockDelay, MAX_KEY_BYTES, Session};
use crate::catalog::{CatalogState, Change, HealthStatus, key};

/// Why a KV operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fail {
    /// A condition did not hold (CAS mismatch, lock held): a single write answers `false`.
    Failed(String),
    /// The request itself is invalid (unknown session, key too long): an error.
    Invalid(String),
}

impl Fail {
    fn text(self) -> String {
        match self {
            Self::Failed(s) | Self::Invalid(s) => s,
        }
    }
}

/// One KV write: `Bool(outcome)`, or `Rejected` for an invalid request.
pub(super) fn kv_write(
    state: &mut CatalogState,
    index: u64,
    op: &KvOp,
    now_ms: u64,
    changes: &mut Vec<Change>,
) -> CommandResponse {
    // A rejection must leave the state untouched, clock settling included.
    let (before, from) = (state.clone(), changes.len());
    state.kv_mut().settle_clock(now_ms, changes);
    match run_op(state, index, op, now_ms, changes) {
        Ok(_) => CommandResponse::Bool(true),
        Err(Fail::Failed(_)) => CommandResponse::Bool(false),
        Err(Fail::Invalid(msg)) => {
            *state = before;
            changes.truncate(from);
            CommandResponse::Rejected(msg)
        }
    }
}

/// A transaction: every operation on a copy of the state; adopted only if all succeeded.
pub(super) fn txn(
    state: &mut CatalogState,
    index: u64,
    ops: &[TxnOp],
    now_ms: u64,
    changes: &mut Vec<Change>,
) -> CommandResponse {
    let mut work = state.clone();
    let mut local = Vec::new();
    work.kv_mut().settle_clock(now_ms, &mut local);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let r = match op {
            TxnOp::Kv(op) => run_op(&mut work, index, op, now_ms, &mut local),
            TxnOp::NodeGet(n) => match work.node(n) {
                Some(node) => Ok(vec![TxnResult::Node(node.name.clone())]),
                None => Err(Fail::Failed(format!("node {n:?} doesn't exist"))),
            },
            TxnOp::ServiceGet(n, id) => match work.service(n, id) {
                Some(s) => Ok(vec![TxnResult::Service(s.node.clone(), s.id.clone())]),
                None => Err(Fail::Failed(format!("service {id:?} on node {n:?} doesn't exist"))),
            },
            TxnOp::CheckGet(n, id) => match work.check(n, id) {
                Some(c) => Ok(vec![TxnResult::Check(c.node.clone(), c.check_id.clone())]),
                None => Err(Fail::Failed(format!("check {id:?} on node {n:?} doesn't exist"))),
            },
            TxnOp::ServiceSet(s) => {
                txn_service::set(&mut work, index, s, None, &mut local).map_err(Fail::Failed)
            }
            TxnOp::ServiceCas(s, i) => {
                txn_service::set(&mut work, index, s, Some(*i), &mut local).map_err(Fail::Failed)
            }
            TxnOp::ServiceDelete(s) => {
                txn_service::delete(&mut work, index, s, None, &mut local).map_err(Fail::Failed)
            }
            TxnOp::ServiceDeleteCas(s, i) => {
                txn_service::delete(&mut work, index, s, Some(*i), &mut local).map_err(Fail::Failed)
            }
        };
        match r {
            Ok(r) => results.extend(r),
            Err(f) => errors.push(TxnError { op_index: i, what: f.text() }),
        }
    }
    if !errors.is_empty() {
        return CommandResponse::Txn(Err(errors));
    }
    *state = work;
    let from = changes.len();
    changes.extend(local);
    // A deleted service instance takes its checks, and sessions bound to them, with it.
    invalidate_for_catalog(state, index, from, changes);
    CommandResponse::Txn(Ok(results))
}

fn check_key(key: &str) -> Result<(), Fail> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Fail::Invalid(format!("Key is longer than {MAX_KEY_BYTES} bytes")));
    }
    Ok(())
}

fn stored(entry: &KvEntry, with_value: bool) -> TxnResult {
    let mut e = entry.clone();
    if !with_value {
        e.value.clear();
    }
    TxnResult::Kv(e, with_value)
}

fn new_entry(w: &KvWrite, old: Option<&KvEntry>) -> KvEntry {
    KvEntry {
        key: w.key.clone(),
        value: w.value.clone(),
        flags: w.flags,
        lock_index: old.map_or(0, |o| o.lock_index),
        session: old.map(|o| o.session.clone()).unwrap_or_default(),
        create_index: 0,
        modify_index: 0,
    }
}

/// Writes `entry` and returns its result (without the value, as Consul's write verbs).
fn write(state: &mut CatalogState, index: u64, entry: KvEntry, changes: &mut Vec<Change>) -> Vec<TxnResult> {
    let k = entry.key.clone();
    state.kv_mut().put_entry(index, entry, changes);
    state.kv().entry(&k).map(|e| stored(e, false)).into_iter().collect()
}

/// One KV verb on `state`: the write verbs (set, cas, lock, unlock), the reads and checks a
/// transaction may hold (get, check-index, check-session, check-not-exists) and the deletes.
fn run_op(
    state: &mut CatalogState,
    index: u64,
    op: &KvOp,
    now_ms: u64,
    changes: &mut Vec<Change>,
) -> Result<Vec<TxnResult>, Fail> {
    check_key(op.key())?;
    let old = state.kv().entry(op.key()).map(|e| (**e).clone());
    let old = old.as_ref();
    match op {
        KvOp::Set(w) => Ok(write(state, index, new_entry(w, old), changes)),
        KvOp::Cas(w) => cas(w, old).map(|e| write(state, index, e, changes)),
        KvOp::Lock(w) => lock(state, w, old, now_ms).map(|e| write(state, index, e, changes)),
        KvOp::Unlock(w) => unlock(w, old).map(|e| write(state, index, e, changes)),
        KvOp::Get(k) => get(k, old),
        KvOp::GetOrEmpty(_) => Ok(old.iter().map(|e| stored(e, true)).collect()),
        KvOp::GetTree(p) => Ok(state.kv().prefix(p).map(|e| stored(e, true)).collect()),
        KvOp::CheckIndex(k, i) => check_index(k, *i, old),
        KvOp::CheckSession(k, s) => check_session(k, s, old),
        KvOp::CheckNotExists(k) => check_not_exists(k, old),
        KvOp::Delete(k) => {
            state.kv_mut().delete_entry(index, k, changes);
            Ok(Vec::new())
        }
        KvOp::DeleteTree(p) => delete_tree(state, index, p, changes),
        KvOp::DeleteCas(k, i) => delete_cas(state, index, k, *i, old, changes),
    }
}

/// `cas`: the entry to write, only if the key's ModifyIndex is `w.index` (0: only if the key
/// is absent).
fn cas(w: &KvWrite, old: Option<&KvEntry>) -> Result<KvEntry, Fail> {
    let ok = match old {
        None => w.index == 0,
        Some(o) => w.index != 0 && o.modify_index == w.index,
    };
    if !ok {
        return Err(Fail::Failed(format!("failed to set key {:?}, index is stale", w.key)));
    }
    Ok(new_entry(w, old))
}

/// `lock`: the entry to write; needs a live session and no lock-delay in effect at `now_ms`;
/// a new holder bumps `LockIndex`, the holder itself may write again.
fn lock(state: &CatalogState, w: &KvWrite, old: Option<&KvEntry>, now_ms: u64) -> Result<KvEntry, Fail> {
    if w.session.is_empty() {
        // Consul's words for a lock without a session (live on 1.8.7, KV PUT and txn alike).
        return Err(Fail::Invalid("missing session".into()));
    }
    if state.kv().session(&w.session).is_none() {
        return Err(Fail::Invalid(format!("invalid session {:?}", w.session)));
    }
    if let Some(LockDelay { until_ms, .. }) = state.kv().lock_delay(&w.key)
        && until_ms.is_none_or(|u| u > now_ms)
    {
        return Err(Fail::Failed(format!("failed to lock key {:?}, lock delay in effect", w.key)));
    }
    let mut e = new_entry(w, old);
    match old {
        Some(o) if o.session == w.session => {}
        Some(o) if !o.session.is_empty() => {
            return Err(Fail::Failed(format!("failed to lock key {:?}, lock is already held", w.key)));
        }
        _ => {
            e.lock_index += 1;
            e.session.clone_from(&w.session);
        }
    }
    Ok(e)
}

/// `unlock`: the entry to write (the value, the lock released); needs the holder's session.
fn unlock(w: &KvWrite, old: Option<&KvEntry>) -> Result<KvEntry, Fail> {
    match old {
        Some(o) if o.session == w.session => {}
        _ => {
            return Err(Fail::Failed(format!(
                "failed to unlock key {:?}, lock isn't held, or is held by another session",
                w.key
            )));
        }
    }
    let mut e = new_entry(w, old);
    e.session.clear();
    Ok(e)
}

/// `get`: the entry with its value; fails when the key is missing.
fn get(k: &str, old: Option<&KvEntry>) -> Result<Vec<TxnResult>, Fail> {
    match old {
        Some(e) => Ok(vec![stored(e, true)]),
        None => Err(Fail::Failed(format!("key {k:?} doesn't exist"))),
    }
}

/// `check-index`: fails unless the key's ModifyIndex is `i`.
fn check_index(k: &str, i: u64, old: Option<&KvEntry>) -> Result<Vec<TxnResult>, Fail> {
    match old {
        Some(e) if e.modify_index == i => Ok(vec![stored(e, false)]),
        Some(e) => Err(Fail::Failed(format!(
            "failed index check for key {k:?}, current modify index {} != {i}",
            e.modify_index
        ))),
        None => Err(Fail::Failed(format!("failed to check index, key {k:?} doesn't exist"))),
    }
}

/// `check-session`: fails unless the key is locked by session `s`.
fn check_session(k: &str, s: &str, old: Option<&KvEntry>) -> Result<Vec<TxnResult>, Fail> {
    match old {
        Some(e) if e.session == *s => Ok(vec![stored(e, false)]),
        Some(e) => Err(Fail::Failed(format!(
            "failed session check for key {k:?}, current session {:?} != {s:?}",
            e.session
        ))),
        None => Err(Fail::Failed(format!("failed to check session, key {k:?} doesn't exist"))),
    }
}

/// `check-not-exists`: fails if the key exists.
fn check_not_exists(k: &str, old: Option<&KvEntry>) -> Result<Vec<TxnResult>, Fail> {
    match old {
        Some(_) => Err(Fail::Failed(format!("key {k:?} exists"))),
        None => Ok(Vec::new()),
    }
}

/// `delete-tree`: deletes every key under prefix `p`.
fn delete_tree(
    state: &mut CatalogState,
    index: u64,
    p: &str,
    changes: &mut Vec<Change>,
) -> Result<Vec<TxnResult>, Fail> {
    let keys: Vec<String> = state.kv().prefix(p).map(|e| e.key.clone()).collect();
    for k in keys {
        state.kv_mut().delete_entry(index, &k, changes);
    }
    Ok(Vec::new())
}

/// `delete-cas`: deletes only if the key's ModifyIndex is `i` (0 never deletes); a missing
/// key succeeds.
fn delete_cas(
    state: &mut CatalogState,
    index: u64,
    k: &str,
    i: u64,
    old: Option<&KvEntry>,
    changes: &mut Vec<Change>,
) -> Result<Vec<TxnResult>, Fail> {
    match old {
        None => Ok(Vec::new()),
        Some(e) if i != 0 && e.modify_index == i => {
            state.kv_mut().delete_entry(index, k, changes);
            Ok(Vec::new())
        }
        Some(_) => Err(Fail::Failed(format!("failed to delete key {k:?}, index is stale"))),
    }
}

/// Creates a session after Consul's checks: the node exists, every bound check exists on it
/// and is not critical.
pub(super) fn session_create(
    state: &mut CatalogState,
    index: u64,
    s: &Session,
    now_ms: u64,
    changes: &mut Vec<Change>,
) -> Result<(), String> {
    if s.id.is_empty() {
        return Err("Must provide a session ID".into());
    }
    if state.kv().session(&s.id).is_some() {
        return Err(format!("Session {:?} already exists", s.id));
    }
    let Some(node) = state.node(&s.node) else {
        return Err("Missing node registration".into());
    };
    let node_name = node.name.clone();
    for c in s.node_checks.iter().chain(s.service_checks.iter().flatten()) {
        let Some(check) = state.check(&node_name, c) else {
            return Err(format!("Missing check '{c}' registration"));
        };
        if check.status == HealthStatus::Critical {
            return Err(format!("Check '{c}' is in critical state"));
        }
    }
    state.kv_mut().settle_clock(now_ms, changes);
    let mut s = s.clone();
    s.node = node_name;
    state.kv_mut().upsert_session(index, s, changes);
    Ok(())
}

/// Destroys a session (explicitly or by TTL expiry) at time `now_ms`.
pub(super) fn session_destroy(
    state: &mut CatalogState,
    index: u64,
    id: &str,
    now_ms: u64,
    changes: &mut Vec<Change>,
) {
    state.kv_mut().settle_clock(now_ms, changes);
    invalidate(state, index, id, changes);
    state.kv_mut().settle_clock(now_ms, changes);
}

/// Releases or deletes a session's locks (with their lock-delay) and removes the session.
fn invalidate(state: &mut CatalogState, index: u64, id: &str, changes: &mut Vec<Change>) {
    let Some(s) = state.kv().session(id).cloned() else {
        return;
    };
    let delay_ms = s.lock_delay_ns / 1_000_000;
    for k in state.kv().session_keys(id) {
        match s.behavior {
            crate::catalog::kv::SessionBehavior::Release => {
                if let Some(e) = state.kv().entry(&k) {
                    let mut e = (**e).clone();
                    e.session.clear();
                    state.kv_mut().put_entry(index, e, changes);
                }
            }
            crate::catalog::kv::SessionBehavior::Delete => {
                state.kv_mut().delete_entry(index, &k, changes);
            }
        }
        if delay_ms > 0 {
            state.kv_mut().set_lock_delay(&k, LockDelay { until_ms: None, delay_ms }, changes);
        }
    }
    state.kv_mut().remove_session(index, id, changes);
}

/// After a catalog write: invalidates the sessions whose node went away or whose bound check
/// went critical or away (looking at the rows the write touched, `changes[from..]`).
pub(super) fn invalidate_for_catalog(
    state: &mut CatalogState,
    index: u64,
    from: usize,
    changes: &mut Vec<Change>,
) {
    if state.kv().sessions().next().is_none() {
        return;
    }
    let mut doomed: Vec<String> = Vec::new();
    for c in changes.get(from..).unwrap_or_default() {
        match c {
            Change::Node(nk) if state.node_row(nk).is_none() => {
                doomed.extend(state.kv().sessions().filter(|s| key(&s.node) == *nk).map(|s| s.id.clone()));
            }
            Change::Check(ck) => {
                let dead = state.check_row(ck).is_none_or(|c| c.status == HealthStatus::Critical);
                if dead {
                    doomed.extend(
                        state
                            .kv()
                            .sessions()
                            .filter(|s| key(&s.node) == ck.0 && s.binds_check(&ck.1))
                            .map(|s| s.id.clone()),
                    );
                }
            }
            _ => {}
        }
    }
    doomed.sort();
    doomed.dedup();
    for id in doomed {
        invalidate(state, index, &id, changes);
    }
}

#[cfg(test)]
mod tests;
