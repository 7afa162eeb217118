//! OPERATIONS: Consul's timer names for a write, by catalog command: the time to complete it
//! (proposed until applied: `consul.catalog.register`, `consul.kvs.apply`, …, Consul's RPC
//! endpoint timers) and the time the state machine takes to apply it (`consul.fsm.*`, with
//! Consul's `op` label where Consul has one).
//!
//! Input: a `Command`. Output: names and labels; the callers (`consensus`, `raft`) time.

use super::named::Labels;
use crate::catalog::{AclCommand, Command, KvOp};

/// Consul's `op` label of a KV write (`api.KVOp` strings).
fn kv_op(op: &KvOp) -> &'static str {
    match op {
        KvOp::Set(_) => "set",
        KvOp::Cas(_) => "cas",
        KvOp::Lock(_) => "lock",
        KvOp::Unlock(_) => "unlock",
        KvOp::Delete(_) => "delete",
        KvOp::DeleteTree(_) => "delete-tree",
        KvOp::DeleteCas(..) => "delete-cas",
        KvOp::Get(_) => "get",
        KvOp::GetOrEmpty(_) => "get-or-empty",
        KvOp::GetTree(_) => "get-tree",
        KvOp::CheckIndex(..) => "check-index",
        KvOp::CheckSession(..) => "check-session",
        KvOp::CheckNotExists(_) => "check-not-exists",
    }
}

/// Consul names the timer `consul.fsm.config_entry.<kind>`; the kind travels as a label here
/// because metric names are static.
fn kind_op(kind: &str, op: &str) -> Labels {
    vec![("kind", kind.to_owned()), ("op", op.to_owned())]
}

fn acl_op(a: &AclCommand) -> &'static str {
    match a {
        AclCommand::InitBuiltins { .. } => "init",
        AclCommand::Bootstrap { .. } => "bootstrap",
        AclCommand::TokenSet { .. } => "token-set",
        AclCommand::TokenDelete(_) => "token-delete",
        AclCommand::PolicySet { .. } => "policy-set",
        AclCommand::PolicyDelete(_) => "policy-delete",
        AclCommand::RoleSet { .. } => "role-set",
        AclCommand::RoleDelete(_) => "role-delete",
    }
}

/// The timer of completing `cmd` (proposal to applied), as Consul's endpoint names it.
pub(crate) fn propose_timer(cmd: &Command) -> Option<&'static str> {
    Some(match cmd {
        Command::Register(_) | Command::UpdateCheck(_) => "consul.catalog.register",
        Command::Deregister(_) => "consul.catalog.deregister",
        Command::Kv { .. } => "consul.kvs.apply",
        Command::Txn { .. } => "consul.txn.apply",
        Command::SessionCreate { .. } | Command::SessionDestroy { .. } => "consul.session.apply",
        Command::QueryUpsert(_) | Command::QueryDelete(_) => "consul.prepared-query.apply",
        Command::Acl(_) => "consul.acl.apply",
        Command::KvReap(_) => "consul.leader.reapTombstones",
        Command::Restore(_) => "consul.raft.restoreUserSnapshot",
        Command::ConfigEntrySet { .. } | Command::ConfigEntryDelete { .. } => "consul.config_entry.apply",
        Command::Batch(_) | Command::AutopilotSet { .. } | Command::CoordinateBatch(_) => return None,
    })
}

/// The timer of applying `cmd` in the state machine, with its labels.
pub(crate) fn fsm_timer(cmd: &Command) -> Option<(&'static str, Labels)> {
    let op = |o: &str| vec![("op", o.to_owned())];
    Some(match cmd {
        Command::Register(_) | Command::UpdateCheck(_) => ("consul.fsm.register", vec![]),
        Command::Deregister(_) => ("consul.fsm.deregister", vec![]),
        Command::Kv { op: o, .. } => ("consul.fsm.kvs", op(kv_op(o))),
        Command::Txn { .. } => ("consul.fsm.txn", vec![]),
        Command::SessionCreate { .. } => ("consul.fsm.session", op("create")),
        Command::SessionDestroy { .. } => ("consul.fsm.session", op("destroy")),
        Command::KvReap(_) => ("consul.fsm.tombstone", op("reap")),
        Command::QueryUpsert(q) => {
            ("consul.fsm.prepared-query", op(if q.update { "update" } else { "create" }))
        }
        Command::QueryDelete(_) => ("consul.fsm.prepared-query", op("delete")),
        Command::Acl(a) => ("consul.fsm.acl", op(acl_op(a))),
        Command::AutopilotSet { .. } => ("consul.fsm.autopilot", vec![]),
        Command::CoordinateBatch(_) => ("consul.fsm.coordinate.batch-update", vec![]),
        Command::ConfigEntrySet { entry, .. } => ("consul.fsm.config_entry", kind_op(&entry.kind, "upsert")),
        Command::ConfigEntryDelete { kind, .. } => ("consul.fsm.config_entry", kind_op(kind, "delete")),
        Command::Restore(_) | Command::Batch(_) => return None,
    })
}
