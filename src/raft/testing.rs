//! TEST SUPPORT: builders for catalog records and commands, and proptest strategies.
//!
//! Input: short names. Output: `Node`/`Service`/`Check`/`Command` values with defaults.
//! Invariant: test-only (`#[cfg(test)]`); indexes are left 0 because `apply` sets them.

use proptest::prelude::*;

use super::{CheckUpdate, Command, Deregistration, Registration};
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
    prop_oneof![3 => reg, 1 => dereg, 2 => upd, 1 => query, 1 => qdel]
}
