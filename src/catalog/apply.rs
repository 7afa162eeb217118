//! `apply`: the pure catalog transition `(CatalogState, index, Command) -> CatalogState'`.
//!
//! Invariant: deterministic. It reads no clock, no randomness and does no IO; the state
//! machine calls it for each committed entry and persists the `Change`s it reports.
//! A rejected command leaves the catalog untouched (validation happens before any mutation).

use crate::catalog::{CatalogState, Change, is_uuid, key};

use super::command::{CheckUpdate, Command, CommandResponse, Deregistration, QueryUpsert, Registration};

/// Longest node name, service ID, service name or check ID accepted, in bytes. The store keys
/// rows by these (a `(node, id)` pair fits LMDB's 511-byte key limit); rejecting longer ones
/// here, deterministically, keeps an oversized registration from failing the LMDB write and
/// stopping Raft.
pub(crate) const MAX_NAME_BYTES: usize = 240;

fn check_len(what: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_NAME_BYTES {
        return Err(format!("{what} is longer than {MAX_NAME_BYTES} bytes"));
    }
    Ok(())
}

/// Applies one command at Raft log index `index`, recording touched rows in `changes`.
pub fn apply(
    state: &mut CatalogState,
    index: u64,
    cmd: &Command,
    changes: &mut Vec<Change>,
) -> CommandResponse {
    let from = changes.len();
    let result = match cmd {
        Command::Register(r) => register(state, index, r, changes),
        Command::Deregister(d) => deregister(state, index, d, changes),
        Command::UpdateCheck(u) => update_check(state, index, u, changes),
        Command::Kv { op, now_ms } => return kv::kv_write(state, index, op, *now_ms, changes),
        Command::Txn { ops, now_ms } => return kv::txn(state, index, ops, *now_ms, changes),
        Command::SessionCreate { session, now_ms } => {
            kv::session_create(state, index, session, *now_ms, changes)
        }
        Command::SessionDestroy { id, now_ms } => {
            kv::session_destroy(state, index, id, *now_ms, changes);
            Ok(())
        }
        Command::KvReap(upto) => {
            state.kv_mut().reap_tombstones(*upto, changes);
            Ok(())
        }
        Command::QueryUpsert(q) => query_upsert(state, index, q, changes),
        Command::QueryDelete(id) => {
            state.delete_query(index, id, changes);
            Ok(())
        }
        Command::Acl(a) => acl::apply_acl(state, index, a, changes),
        Command::AutopilotSet { config, cas } => {
            return CommandResponse::Bool(state.operator_mut().set_autopilot(index, config, *cas, changes));
        }
        Command::CoordinateBatch(entries) => {
            let known: std::collections::BTreeSet<String> =
                entries.iter().filter(|e| state.node(&e.node).is_some()).map(|e| key(&e.node)).collect();
            state.operator_mut().update_coordinates(index, entries, |n| known.contains(&key(n)), changes);
            Ok(())
        }
        Command::ConfigEntrySet { entry, cas } => {
            return CommandResponse::Bool(state.config_entries_mut().set(index, entry, *cas, changes));
        }
        Command::ConfigEntryDelete { kind, name } => {
            state.config_entries_mut().delete(index, kind, name, changes);
            Ok(())
        }
        Command::Restore(dump) => {
            state.restore(index, (**dump).clone(), changes);
            Ok(())
        }
        Command::Batch(cmds) => {
            let responses = cmds
                .iter()
                .map(|c| match c {
                    Command::Batch(_) => CommandResponse::Rejected("nested command batch".into()),
                    c => apply(state, index, c, changes),
                })
                .collect();
            return CommandResponse::Batch(responses);
        }
    };
    if let (Ok(()), Command::Deregister(d)) = (&result, cmd)
        && d.service_id.is_none()
        && d.check_id.is_none()
    {
        // A deregistered node's coordinates go with it (Consul's `deleteNodeTxn`).
        state.operator_mut().remove_node(index, &d.node, changes);
    }
    if result.is_ok()
        && matches!(cmd, Command::Register(_) | Command::Deregister(_) | Command::UpdateCheck(_))
    {
        kv::invalidate_for_catalog(state, index, from, changes);
    }
    match result {
        Ok(()) => CommandResponse::Applied,
        Err(msg) => CommandResponse::Rejected(msg),
    }
}

/// Runs a read-only transaction against `state` (left untouched): the read path of
/// `/v1/txn`, with exactly the rules a proposed transaction follows.
pub(crate) fn read_txn(state: &CatalogState, ops: &[super::command::TxnOp]) -> CommandResponse {
    let mut copy = state.clone();
    let mut changes = Vec::new();
    kv::txn(&mut copy, 0, ops, 0, &mut changes)
}

fn register(
    state: &mut CatalogState,
    index: u64,
    r: &Registration,
    changes: &mut Vec<Change>,
) -> Result<(), String> {
    // Validate everything first so a rejection changes nothing.
    if r.node.name.is_empty() {
        return Err("Must provide node".into());
    }
    check_len("Node name", &r.node.name)?;
    // Consul: `SkipNodeUpdate` only spares an existing node; a missing one is created from the
    // request as it stands (its address may be empty) [live on 1.8.7].
    let node_exists = state.node(&r.node.name).is_some();
    if !r.skip_node_update && r.node.address.is_empty() {
        return Err("Must provide address if SkipNodeUpdate is not set".into());
    }
    if let Some(s) = &r.service {
        if s.name.is_empty() {
            return Err("Must provide service name".into());
        }
        check_len("Service name", &s.name)?;
        check_len("Service ID", &s.id)?;
        if !s.node.eq_ignore_ascii_case(&r.node.name) {
            return Err(format!("Service node {:?} does not match node {:?}", s.node, r.node.name));
        }
    }
    for c in &r.checks {
        if !c.node.eq_ignore_ascii_case(&r.node.name) {
            return Err(format!("Check node {:?} does not match node {:?}", c.node, r.node.name));
        }
        if c.check_id.is_empty() {
            return Err("Must provide check ID".into());
        }
        check_len("Check ID", &c.check_id)?;
        if !c.service_id.is_empty() {
            let in_request = r.service.as_ref().is_some_and(|s| key(&s.id) == key(&c.service_id));
            if !in_request && state.service(&r.node.name, &c.service_id).is_none() {
                return Err(format!("Unknown service ID '{}' for check ID '{}'", c.service_id, c.check_id));
            }
        }
    }

    if !r.skip_node_update || !node_exists {
        let mut node = r.node.clone();
        // Keep the existing node ID when the request does not carry one.
        if node.id.is_empty()
            && let Some(old) = state.node(&node.name)
        {
            node.id = old.id.clone();
        }
        state.upsert_node(index, node, changes);
    }
    if let Some(s) = &r.service {
        let mut s = s.clone();
        if let Some(n) = state.node(&r.node.name) {
            s.node = n.name.clone();
        }
        state.upsert_service(index, s, changes);
    }
    for c in &r.checks {
        let mut c = c.clone();
        if let Some(n) = state.node(&r.node.name) {
            c.node = n.name.clone();
        }
        if !c.service_id.is_empty()
            && let Some(s) = state.service(&c.node, &c.service_id)
        {
            c.service_id = s.id.clone();
            c.service_name = s.name.clone();
            c.service_tags = s.tags.clone();
        }
        state.upsert_check(index, c, changes);
    }
    Ok(())
}

fn deregister(
    state: &mut CatalogState,
    index: u64,
    d: &Deregistration,
    changes: &mut Vec<Change>,
) -> Result<(), String> {
    if d.node.is_empty() {
        return Err("Must provide node".into());
    }
    // Consul treats deregistering something that is already gone as success.
    match (&d.service_id, &d.check_id) {
        (Some(sid), _) => {
            state.delete_service(index, &d.node, sid, changes);
        }
        (None, Some(cid)) => {
            state.delete_check(index, &d.node, cid, changes);
        }
        (None, None) => {
            state.delete_node(index, &d.node, changes);
        }
    }
    Ok(())
}

fn update_check(
    state: &mut CatalogState,
    index: u64,
    u: &CheckUpdate,
    changes: &mut Vec<Change>,
) -> Result<(), String> {
    let Some(old) = state.check(&u.node, &u.check_id) else {
        return Err(format!("Unknown check ID {:?}", u.check_id));
    };
    let mut c = (**old).clone();
    c.status = u.status;
    c.output.clone_from(&u.output);
    state.upsert_check(index, c, changes);
    Ok(())
}

/// Consul's prepared-query rules (`parseQuery`, `preparedQuerySetTxn`): a service to query,
/// a name no other query uses, and a name that is not another query's ID.
fn query_upsert(
    state: &mut CatalogState,
    index: u64,
    u: &QueryUpsert,
    changes: &mut Vec<Change>,
) -> Result<(), String> {
    let q = &u.query;
    if q.id.is_empty() {
        return Err("Must provide a query ID".into());
    }
    check_len("Query ID", &q.id)?;
    check_len("Query name", &q.name)?;
    let existing = state.query(&q.id).is_some();
    if u.update && !existing {
        return Err(format!("Cannot modify non-existent prepared query: '{}'", q.id));
    }
    if !u.update && existing {
        return Err(format!("Prepared query '{}' already exists", q.id));
    }
    if q.service.service.is_empty() {
        return Err("Must provide a Service name to query".into());
    }
    if !q.name.is_empty() {
        if state.query_by_name(&q.name).is_some_and(|other| key(&other.id) != key(&q.id)) {
            return Err(format!("name '{}' aliases an existing query name", q.name));
        }
        if is_uuid(&q.name) && state.query(&q.name).is_some() {
            return Err(format!("name '{}' aliases an existing query ID", q.name));
        }
    }
    state.upsert_query(index, q.clone(), changes);
    Ok(())
}

mod acl;
mod kv;
mod txn_service;

#[cfg(test)]
mod tests;
