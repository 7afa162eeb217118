//! TEST SUPPORT: builders for catalog records and commands, and proptest strategies.
//!
//! Input: short names. Output: `Node`/`Service`/`Check`/`Command` values with defaults.
//! Invariant: test-only (`#[cfg(test)]`); indexes are left 0 because `apply` sets them.

use proptest::prelude::*;

use super::command::{CheckUpdate, Command, Deregistration, KvOp, KvWrite, Registration, TxnOp};
use crate::catalog::kv::{Session, SessionBehavior};

use crate::catalog::{Check, HealthStatus, Node, Service};

pub(crate) fn node(name: &str, address: &str) -> Node {
    Node::new(name, address, "dc1")
}

pub(crate) fn service(node: &str, id: &str, name: &str, port: u16, tags: &[&str]) -> Service {
    Service::new(node, id, name, port).with_tags(tags)
}

pub(crate) fn health_check(node: &str, id: &str, service_id: &str, status: HealthStatus) -> Check {
    Check { check_type: "ttl".to_owned(), ..Check::new(node, id, service_id, status) }
}

pub(crate) fn register(node: Node, service: Option<Service>, checks: Vec<Check>) -> Command {
    Command::Register(Registration { node, skip_node_update: false, service, checks })
}

pub(crate) fn deregister(node: &str, service_id: Option<&str>, check_id: Option<&str>) -> Command {
    Command::Deregister(Deregistration {
        node: node.to_owned(),
        service_id: service_id.map(str::to_owned),
        check_id: check_id.map(str::to_owned),
    })
}

pub(crate) fn update_check(node: &str, check_id: &str, status: HealthStatus, output: &str) -> Command {
    Command::UpdateCheck(CheckUpdate {
        node: node.to_owned(),
        check_id: check_id.to_owned(),
        status,
        output: output.to_owned(),
    })
}

fn status() -> impl Strategy<Value = HealthStatus> {
    prop_oneof![Just(HealthStatus::Passing), Just(HealthStatus::Warning), Just(HealthStatus::Critical)]
}

/// Random commands over a small name space (with case variants) so they collide often.
pub(crate) fn arb_command() -> impl Strategy<Value = Command> {
    let node_name = prop::sample::select(vec!["n1", "N1", "n2", "n3"]);
    let addr = prop::sample::select(vec!["10.0.0.1", "10.0.0.2", ""]);
    let sid = prop::sample::select(vec!["web", "WEB", "db", "web-2"]);
    let sname = prop::sample::select(vec!["web", "db", "Web"]);
    let tags = prop::sample::subsequence(vec!["a", "b", "primary"], 0..=3);
    let cid = prop::sample::select(vec!["serfHealth", "c1", "c2"]);
    let reg = (
        node_name.clone(),
        addr,
        any::<bool>(),
        prop::option::of((sid.clone(), sname, 1u16..3, tags)),
        prop::collection::vec((cid.clone(), prop::option::of(sid.clone()), status()), 0..3),
    )
        .prop_map(|(n, a, skip, svc, checks)| {
            let service = svc.map(|(id, name, port, tags)| service(n, id, name, port, &tags));
            let checks =
                checks.into_iter().map(|(id, s, st)| health_check(n, id, s.unwrap_or(""), st)).collect();
            Command::Register(Registration { node: node(n, a), skip_node_update: skip, service, checks })
        });
    let dereg = (node_name.clone(), prop::option::of(sid), prop::option::of(cid.clone()))
        .prop_map(|(n, s, c)| deregister(n, s, c));
    let upd = (node_name, cid, status(), prop::sample::select(vec!["", "ok", "boom"]))
        .prop_map(|(n, c, st, out)| update_check(n, c, st, out));
    let qid = prop::sample::select(vec!["q1", "Q1", "q2"]);
    let query = (qid.clone(), prop::sample::select(vec!["", "web", "WEB", "other"]), any::<bool>()).prop_map(
        |(id, name, update)| {
            let query = crate::catalog::PreparedQuery {
                id: id.to_owned(),
                name: name.to_owned(),
                session: String::new(),
                token: String::new(),
                service: crate::catalog::QueryService { service: "web".into(), ..Default::default() },
                dns_ttl: String::new(),
                create_index: 0,
                modify_index: 0,
            };
            Command::QueryUpsert(super::QueryUpsert { query, update })
        },
    );
    let qdel = qid.prop_map(|id| Command::QueryDelete(id.to_owned()));
    prop_oneof![3 => reg, 1 => dereg, 2 => upd, 1 => query, 1 => qdel, 4 => arb_kv_command()]
}

/// A session on `n1`/`n2` bound to `serfHealth` or nothing, with a TTL and lock-delay.
pub(crate) fn session(id: &str, node: &str, checks: &[&str], behavior: SessionBehavior) -> Session {
    Session {
        id: id.to_owned(),
        name: String::new(),
        node: node.to_owned(),
        lock_delay_ns: 1_000_000_000,
        behavior,
        ttl: "10s".to_owned(),
        node_checks: checks.iter().map(|c| (*c).to_owned()).collect(),
        service_checks: None,
        create_index: 0,
        modify_index: 0,
    }
}

/// A KV write of `value` to `key`.
pub(crate) fn kv_write(key: &str, value: &[u8], index: u64, session: &str) -> KvWrite {
    KvWrite { key: key.to_owned(), value: value.to_vec(), flags: 7, index, session: session.to_owned() }
}

/// Random KV, session and transaction commands over a few keys, sessions and times.
pub(crate) fn arb_kv_command() -> impl Strategy<Value = Command> {
    let key = prop::sample::select(vec!["a", "a/b", "a/c", "b", "lock"]);
    let sid = prop::sample::select(vec!["s1", "s2"]);
    let now = 0u64..5_000;
    let value = prop::sample::select(vec![&b""[..], b"v1", b"\x00\xff"]);
    let op = (0u8..13, key, value, 0u64..12, sid.clone()).prop_map(|(verb, k, v, i, s)| {
        let w = kv_write(k, v, i, s);
        match verb {
            0 => KvOp::Set(w),
            1 => KvOp::Cas(w),
            2 => KvOp::Lock(w),
            3 => KvOp::Unlock(w),
            4 => KvOp::Get(k.to_owned()),
            5 => KvOp::GetOrEmpty(k.to_owned()),
            6 => KvOp::GetTree(k.to_owned()),
            7 => KvOp::CheckIndex(k.to_owned(), i),
            8 => KvOp::CheckSession(k.to_owned(), s.to_owned()),
            9 => KvOp::CheckNotExists(k.to_owned()),
            10 => KvOp::Delete(k.to_owned()),
            11 => KvOp::DeleteTree(k.to_owned()),
            _ => KvOp::DeleteCas(k.to_owned(), i),
        }
    });
    let single = (op.clone(), now.clone()).prop_map(|(op, now_ms)| Command::Kv { op, now_ms });
    let txn = (prop::collection::vec(op, 1..4), now.clone())
        .prop_map(|(ops, now_ms)| Command::Txn { ops: ops.into_iter().map(TxnOp::Kv).collect(), now_ms });
    let create = (
        sid.clone(),
        prop::sample::select(vec!["n1", "n2"]),
        prop::sample::subsequence(vec!["serfHealth", "c1"], 0..=2),
        any::<bool>(),
        now.clone(),
    )
        .prop_map(|(id, n, checks, delete, now_ms)| {
            let b = if delete { SessionBehavior::Delete } else { SessionBehavior::Release };
            Command::SessionCreate { session: session(id, n, &checks, b), now_ms }
        });
    let destroy = (sid, now).prop_map(|(id, now_ms)| Command::SessionDestroy { id: id.to_owned(), now_ms });
    let reap = (0u64..40).prop_map(Command::KvReap);
    // A restore of a small saved store (one locked key, its session, a tombstone).
    let restore = Just(()).prop_map(|()| {
        let mut saved = crate::catalog::CatalogState::default();
        let mut changes = Vec::new();
        let cmds = [
            Command::Register(Registration {
                node: node("n1", "10.0.0.9"),
                skip_node_update: false,
                service: None,
                checks: vec![],
            }),
            Command::SessionCreate { session: session("s1", "n1", &[], SessionBehavior::Release), now_ms: 0 },
            Command::Kv { op: KvOp::Lock(kv_write("lock", b"x", 0, "s1")), now_ms: 0 },
            Command::Kv { op: KvOp::Set(kv_write("a", b"x", 0, "")), now_ms: 0 },
            Command::Kv { op: KvOp::Delete("a".into()), now_ms: 0 },
        ];
        for (i, c) in cmds.iter().enumerate() {
            super::apply::apply(&mut saved, i as u64 + 1, c, &mut changes);
        }
        Command::Restore(Box::new(saved.dump()))
    });
    prop_oneof![3 => single, 1 => txn, 2 => create, 1 => destroy, 1 => reap, 1 => restore]
}
