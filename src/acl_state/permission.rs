//! PERMISSIONS OF A WRITE: the one map from a `Command` to the ACL permissions Consul's
//! endpoint for that write checks (spec §1.6), used by the HTTP layer before it proposes and
//! by a server before it commits a write forwarded to it (`serve_rpc`), so both refuse the
//! same writes.
//!
//! Input: the caller's `Authorizer`, the catalog the write would change, the command. Output:
//! `Ok`, or a `Refusal` carrying Consul's text (403 `Permission denied`; 500 `Unknown service
//! 'x'`; a transaction's per-operation errors, answered with 409).
//!
//! | Command | Needs |
//! |---|---|
//! | `Register` | `node:write` when it changes the node; `service:write` on the service (and on the name it replaces) and on each check's service; `node:write` for a node check |
//! | `Deregister` | `node:write`, or `service:write` for a service or its check |
//! | `UpdateCheck` | `service:write` on a service check's service, else `node:write` |
//! | `Kv` | `key:write` (`DeleteTree`: write on the prefix and under it; `check-index` and `check-session`: `key:read`) |
//! | `Txn` | per operation as `Kv`; reads are filtered on output instead |
//! | `SessionCreate`, `SessionDestroy` | `session:write` on the session's node |
//! | `QueryUpsert`, `QueryDelete` | `query:write` on the name (new and old; a nameless query needs none) |
//! | `Acl` | `acl:write`, but `Bootstrap` needs none (it is allowed once) |
//! | `Restore`, `KvReap`, `Batch` of these | `acl:write` (management); a `Batch`: each command |
//!
//! Invariants: pure (no IO); a refusal changes nothing; the same map serves every caller.

use crate::acl::Authorizer;
use crate::catalog::command::TxnError;
use crate::catalog::{
    AclCommand, CatalogState, Command, Deregistration, KvOp, Node, PreparedQuery, Registration, TxnOp,
};

/// Consul's text for a missing permission.
pub(crate) const PERMISSION_DENIED: &str = "Permission denied";

/// Why a write is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// 403 `Permission denied`.
    #[error("Permission denied")]
    Denied,
    /// 500: the write names a service or check the catalog does not hold (Consul's
    /// `Unknown service 'x'` / `Unknown check 'x'`).
    #[error("{0}")]
    Unknown(String),
    /// A transaction with operations the token may not run: one `Permission denied` error per
    /// such operation (409).
    #[error("Permission denied")]
    Txn(Vec<TxnError>),
}

fn require(allowed: bool) -> Result<(), Refusal> {
    if allowed { Ok(()) } else { Err(Refusal::Denied) }
}

/// Whether `a` may make the write `cmd` to `cat`.
pub(crate) fn authorize(a: &Authorizer, cat: &CatalogState, cmd: &Command) -> Result<(), Refusal> {
    match cmd {
        Command::Register(reg) => vet_register(a, cat, reg),
        Command::Deregister(d) => vet_deregister(a, cat, d),
        Command::UpdateCheck(u) => match cat.check(&u.node, &u.check_id) {
            Some(c) if !c.service_name.is_empty() => require(a.service_write(&c.service_name)),
            _ => require(a.node_write(&u.node)),
        },
        Command::Batch(cmds) => cmds.iter().try_for_each(|c| authorize(a, cat, c)),
        Command::QueryUpsert(q) => {
            require(query_write(a, &q.query))?;
            match cat.query(&q.query.id) {
                Some(old) => require(query_write(a, old)),
                None => Ok(()),
            }
        }
        Command::QueryDelete(id) => cat.query(id).map_or(Ok(()), |old| require(query_write(a, old))),
        Command::Restore(_) | Command::KvReap(_) => require(a.acl_write()),
        Command::Kv { op, .. } => require(kv_op(a, op)),
        Command::Txn { ops, .. } => {
            let errors = txn_refusals(a, ops);
            if errors.is_empty() { Ok(()) } else { Err(Refusal::Txn(errors)) }
        }
        Command::SessionCreate { session, .. } => require(a.session_write(&session.node)),
        Command::SessionDestroy { id, .. } => {
            // An unknown session is a no-op write.
            cat.kv().session(id).map_or(Ok(()), |s| require(a.session_write(&s.node)))
        }
        Command::Acl(AclCommand::Bootstrap { .. }) => Ok(()),
        Command::Acl(_) => require(a.acl_write()),
        Command::AutopilotSet { .. } => require(a.operator_write()),
        Command::CoordinateBatch(entries) => entries.iter().try_for_each(|e| require(a.node_write(&e.node))),
        Command::ConfigEntrySet { entry, .. } => require(config_entry_write(a, &entry.kind, &entry.name)),
        Command::ConfigEntryDelete { kind, name } => require(config_entry_write(a, kind, name)),
    }
}

/// Whether `a` may run the KV verb `op` (Consul's `kvsPreApply`): `get` and `get-tree` are
/// filtered on output; `check-index` and `check-session` reveal a key's state, so they need
/// `key:read`; a tree delete needs write on the prefix and on every rule under it; anything
/// else (`check-not-exists` included, as in Consul) `key:write`.
/// Consul's config-entry `CanWrite`: `proxy-defaults` and the gateways need `operator:write`,
/// the service kinds `service:write` on the entry's name.
pub(crate) fn config_entry_write(a: &Authorizer, kind: &str, name: &str) -> bool {
    match kind {
        "service-defaults" | "service-router" | "service-splitter" | "service-resolver" => {
            a.service_write(name)
        }
        _ => a.operator_write(),
    }
}

pub(crate) fn kv_op(a: &Authorizer, op: &KvOp) -> bool {
    match op {
        KvOp::Get(_) | KvOp::GetTree(_) => true,
        KvOp::CheckIndex(k, _) | KvOp::CheckSession(k, _) => a.key_read(k),
        KvOp::DeleteTree(k) => a.key_write_prefix(k),
        other => a.key_write(other.key()),
    }
}

/// The operations of a transaction `a` may not run, as Consul reports them.
pub(crate) fn txn_refusals(a: &Authorizer, ops: &[TxnOp]) -> Vec<TxnError> {
    ops.iter()
        .enumerate()
        .filter(|(_, op)| match op {
            TxnOp::Kv(kv) => !kv_op(a, kv),
            // Catalog reads are filtered on output.
            TxnOp::NodeGet(_) | TxnOp::ServiceGet(..) | TxnOp::CheckGet(..) => false,
            // Consul's `vetServiceTxnOp`: `service:write` on the service name.
            TxnOp::ServiceSet(s)
            | TxnOp::ServiceCas(s, _)
            | TxnOp::ServiceDelete(s)
            | TxnOp::ServiceDeleteCas(s, _) => !a.service_write(&s.name),
        })
        .map(|(op_index, _)| TxnError { op_index, what: PERMISSION_DENIED.to_owned() })
        .collect()
}

/// Whether `a` may create, change or delete `q`: `query:write` on its name; a nameless query
/// needs none (its ID is the capability).
pub(crate) fn query_write(a: &Authorizer, q: &PreparedQuery) -> bool {
    q.name.is_empty() || a.query_write(&q.name)
}

/// Vets a catalog registration (Consul's `vetRegisterWithACL`): `node:write` when it changes
/// the node, `service:write` on the service (and on the name it replaces), and on each check's
/// service, or `node:write` for a node check.
pub(crate) fn vet_register(a: &Authorizer, cat: &CatalogState, reg: &Registration) -> Result<(), Refusal> {
    let node = &reg.node.name;
    if !reg.skip_node_update && changes_node(cat.node(node).map(|n| &**n), &reg.node) {
        require(a.node_write(node))?;
    }
    if let Some(s) = &reg.service {
        require(a.service_write(&s.name))?;
        if let Some(old) = cat.service(node, &s.id).filter(|old| old.name != s.name) {
            require(a.service_write(&old.name))?;
        }
    }
    for c in &reg.checks {
        if c.service_id.is_empty() {
            require(a.node_write(node))?;
            continue;
        }
        let name = match &reg.service {
            Some(s) if s.id.eq_ignore_ascii_case(&c.service_id) => Some(s.name.as_str()),
            _ => cat.service(node, &c.service_id).map(|s| s.name.as_str()),
        };
        // A check on an unknown service is refused by validation; it needs no rule here.
        if let Some(name) = name {
            require(a.service_write(name))?;
        }
        if let Some(old) = cat.check(node, &c.check_id).filter(|old| !old.service_name.is_empty()) {
            require(a.service_write(&old.service_name))?;
        }
    }
    Ok(())
}

/// Whether registering `new` changes what the catalog holds for the node (or creates it).
fn changes_node(old: Option<&Node>, new: &Node) -> bool {
    old.is_none_or(|old| {
        old.address != new.address
            || old.tagged_addresses != new.tagged_addresses
            || old.meta != new.meta
            || (!new.id.is_empty() && old.id != new.id)
    })
}

/// Vets a catalog deregistration as Consul's `vetDeregisterWithACL` does: `node:write` on
/// the node allows anything on it; otherwise a service (or a service's check) needs
/// `service:write`, a node check `node:write`, and an unknown service or check is Consul's 500
/// `Unknown service 'x'` / `Unknown check 'x'` [live on 1.8.7].
pub(crate) fn vet_deregister(a: &Authorizer, cat: &CatalogState, d: &Deregistration) -> Result<(), Refusal> {
    if a.node_write(&d.node) {
        return Ok(());
    }
    if let Some(id) = &d.service_id {
        let s =
            cat.service(&d.node, id).ok_or_else(|| Refusal::Unknown(format!("Unknown service '{id}'")))?;
        return require(a.service_write(&s.name));
    }
    if let Some(id) = &d.check_id {
        let c = cat.check(&d.node, id).ok_or_else(|| Refusal::Unknown(format!("Unknown check '{id}'")))?;
        return require(!c.service_id.is_empty() && a.service_write(&c.service_name));
    }
    Err(Refusal::Denied)
}

#[cfg(test)]
mod tests;
