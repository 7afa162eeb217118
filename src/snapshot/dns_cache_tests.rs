//! Published snapshots and the DNS answer cache: the cache never serves what the current
//! snapshot would not answer. After every kind of write (through the real `catalog::apply`),
//! a cached reply carries the same records as the full path's. Replies are compared as record sets (answers are shuffled), with EDNS so
//! that nothing is cut.

use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use proptest::prelude::*;

use super::CatalogSnapshot;
use crate::catalog::apply::apply;
use crate::catalog::{CatalogState, Check, HealthStatus, Node, PreparedQuery, QueryService, Service};
use crate::catalog::{CheckUpdate, Command, Deregistration, QueryUpsert, Registration};
use crate::dns::cache_tests::ctx;
use crate::dns::{AnswerCache, DnsContext, Transport, handle};

/// A catalog written only through `apply`, as the state machine does.
#[derive(Default)]
struct World {
    state: CatalogState,
    index: u64,
}

impl World {
    fn apply(&mut self, cmd: &Command) -> Arc<CatalogSnapshot> {
        self.index += 1;
        apply(&mut self.state, self.index, cmd, &mut Vec::new());
        self.snapshot()
    }

    fn snapshot(&self) -> Arc<CatalogSnapshot> {
        Arc::new(CatalogSnapshot { index: self.index, catalog: self.state.clone() })
    }
}

fn node(name: &str, addr: &str) -> Node {
    Node::new(name, addr, "dc1")
}

fn register(n: Node, service: Option<Service>, checks: Vec<Check>) -> Command {
    Command::Register(Registration { node: n, skip_node_update: false, service, checks })
}

fn instance(n: &str, addr: &str, id: &str, name: &str, tags: &[&str]) -> Command {
    register(node(n, addr), Some(Service::new(n, id, name, 8000).with_tags(tags)), Vec::new())
}

fn check_status(n: &str, check_id: &str, status: HealthStatus) -> Command {
    Command::UpdateCheck(CheckUpdate {
        node: n.into(),
        check_id: check_id.into(),
        status,
        output: String::new(),
    })
}

fn query(id: &str, name: &str, service: &str) -> Command {
    let q = PreparedQuery {
        id: id.into(),
        name: name.into(),
        session: String::new(),
        token: String::new(),
        service: QueryService { service: service.into(), ..QueryService::default() },
        dns_ttl: String::new(),
        create_index: 0,
        modify_index: 0,
    };
    Command::QueryUpsert(QueryUpsert { query: q, update: false })
}

fn request(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new(0x1234, MessageType::Query, OpCode::Query);
    msg.queries.push(Query::query(Name::from_ascii(name).expect("name"), qtype));
    let mut e = Edns::new();
    e.set_max_payload(4096);
    msg.edns = Some(e);
    msg.to_vec().expect("encode")
}

/// A reply as comparable text: header flags and RCODE, then each section's records sorted.
fn normal(reply: &[u8]) -> String {
    let msg = Message::from_vec(reply).expect("decode");
    let section = |records: &[hickory_proto::rr::Record]| {
        let mut v: Vec<String> = records.iter().map(ToString::to_string).collect();
        v.sort();
        v.join(" | ")
    };
    format!(
        "{:?} aa={} tc={}\nAN: {}\nNS: {}\nAR: {}",
        msg.metadata.response_code,
        msg.metadata.authoritative,
        msg.metadata.truncation,
        section(&msg.answers),
        section(&msg.authorities),
        section(&msg.additionals)
    )
}

/// Asks `cache` and the full path the same question; they must agree. Returns the reply.
fn check(
    cache: &mut AnswerCache,
    ctx: &DnsContext,
    snap: &Arc<CatalogSnapshot>,
    name: &str,
    qtype: RecordType,
) -> String {
    let req = request(name, qtype);
    let mut out = Vec::new();
    let pending = cache.respond(&req, Transport::Udp, ctx, snap, &mut out);
    assert!(pending.is_none(), "{name} {qtype}: expected a reply, got {pending:?}");
    let full = handle(&req, Transport::Udp, ctx, snap, &mut rand::rng()).expect("reply");
    let (cached, full) = (normal(&out), normal(&full));
    assert_eq!(cached, full, "{name} {qtype}: the cached reply differs from the full path's");
    cached
}

/// Asks every question twice (so the second answer comes from the cache when it can).
fn check_all(
    cache: &mut AnswerCache,
    ctx: &DnsContext,
    snap: &Arc<CatalogSnapshot>,
    questions: &[(&str, RecordType)],
) -> Vec<String> {
    questions
        .iter()
        .map(|(name, qtype)| {
            check(cache, ctx, snap, name, *qtype);
            check(cache, ctx, snap, name, *qtype)
        })
        .collect()
}

const WEB: [(&str, RecordType); 4] = [
    ("web.service.consul.", RecordType::SRV),
    ("web.service.consul.", RecordType::A),
    ("v1.web.service.consul.", RecordType::SRV),
    ("web.service.consul.", RecordType::AAAA),
];

/// `web` on n1 (10.0.0.1, tag v1) and n2 (10.0.0.2, tag v2), each with a passing check, and
/// `db` on n1.
fn base() -> World {
    let mut w = World::default();
    for (n, addr, tag) in [("n1", "10.0.0.1", "v1"), ("n2", "10.0.0.2", "v2")] {
        let check = Check::new(n, &format!("chk-{n}"), "web", HealthStatus::Passing);
        w.apply(&register(
            node(n, addr),
            Some(Service::new(n, "web", "web", 8000).with_tags(&[tag])),
            vec![check],
        ));
    }
    w.apply(&instance("n1", "10.0.0.1", "db", "db", &[]));
    w
}

#[test]
fn registering_and_deregistering_an_instance_changes_the_cached_answers() {
    let (ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    let before = check_all(&mut cache, &ctx, &w.snapshot(), &WEB);
    let snap = w.apply(&instance("n3", "10.0.0.3", "web", "web", &["v1"]));
    let after = check_all(&mut cache, &ctx, &snap, &WEB);
    assert_ne!(before[0], after[0]);
    assert!(after[2].contains("n3.node"), "{}", after[2]);
    let snap = w.apply(&Command::Deregister(Deregistration {
        node: "n3".into(),
        service_id: Some("web".into()),
        check_id: None,
    }));
    assert_eq!(check_all(&mut cache, &ctx, &snap, &WEB), before);
}

#[test]
fn a_service_check_going_critical_drops_its_instance_from_cached_answers() {
    let (ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    check_all(&mut cache, &ctx, &w.snapshot(), &WEB);
    let snap = w.apply(&check_status("n2", "chk-n2", HealthStatus::Critical));
    let after = check_all(&mut cache, &ctx, &snap, &WEB);
    assert!(!after[0].contains("n2.node"), "{}", after[0]);
    let snap = w.apply(&check_status("n2", "chk-n2", HealthStatus::Passing));
    let again = check_all(&mut cache, &ctx, &snap, &WEB);
    assert!(again[0].contains("n2.node"), "{}", again[0]);
}

#[test]
fn a_node_check_going_critical_drops_every_service_on_the_node() {
    let (ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    let questions = [("web.service.consul.", RecordType::SRV), ("db.service.consul.", RecordType::A)];
    let before = check_all(&mut cache, &ctx, &w.snapshot(), &questions);
    assert!(before[1].contains("10.0.0.1"), "{}", before[1]);
    let serf = Check::new("n1", "serfHealth", "", HealthStatus::Passing);
    let snap = w.apply(&register(node("n1", "10.0.0.1"), None, vec![serf]));
    assert_eq!(
        check_all(&mut cache, &ctx, &snap, &questions),
        before,
        "a passing node check changes nothing"
    );
    let snap = w.apply(&check_status("n1", "serfHealth", HealthStatus::Critical));
    let after = check_all(&mut cache, &ctx, &snap, &questions);
    assert!(!after[0].contains("n1.node"), "{}", after[0]);
    assert!(after[1].starts_with("NXDomain"), "{}", after[1]);
}

#[test]
fn a_node_address_change_reaches_cached_service_and_node_answers() {
    let (ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    let questions = [
        ("web.service.consul.", RecordType::A),
        ("web.service.consul.", RecordType::SRV),
        ("n1.node.consul.", RecordType::A),
        ("db.service.consul.", RecordType::A),
    ];
    check_all(&mut cache, &ctx, &w.snapshot(), &questions);
    let snap = w.apply(&register(node("n1", "10.9.9.9"), None, Vec::new()));
    for reply in check_all(&mut cache, &ctx, &snap, &questions) {
        assert!(reply.contains("10.9.9.9") && !reply.contains("10.0.0.1"), "{reply}");
    }
}

#[test]
fn a_tag_change_reaches_cached_tag_filtered_answers() {
    let (ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    let v2 = [("v2.web.service.consul.", RecordType::SRV)];
    let before = check_all(&mut cache, &ctx, &w.snapshot(), &v2);
    assert!(before[0].contains("n2.node") && !before[0].contains("n1.node"), "{}", before[0]);
    let snap = w.apply(&instance("n1", "10.0.0.1", "web", "web", &["v2"]));
    let after = check_all(&mut cache, &ctx, &snap, &v2);
    assert!(after[0].contains("n1.node"), "{}", after[0]);
}

#[test]
fn a_prepared_query_change_reaches_its_cached_answer() {
    let (ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    let q = [("pq.query.consul.", RecordType::A)];
    assert!(check_all(&mut cache, &ctx, &w.snapshot(), &q)[0].starts_with("NXDomain"));
    let id = "00000000-0000-0000-0000-000000000001";
    let snap = w.apply(&query(id, "pq", "db"));
    let db = check_all(&mut cache, &ctx, &snap, &q);
    assert!(db[0].contains("10.0.0.1") && !db[0].contains("10.0.0.2"), "{}", db[0]);
    let mut cmd = query(id, "pq", "web");
    if let Command::QueryUpsert(u) = &mut cmd {
        u.update = true;
    }
    let snap = w.apply(&cmd);
    let web = check_all(&mut cache, &ctx, &snap, &q);
    assert!(web[0].contains("10.0.0.2"), "{}", web[0]);
    let snap = w.apply(&Command::QueryDelete(id.into()));
    assert!(check_all(&mut cache, &ctx, &snap, &q)[0].starts_with("NXDomain"));
}

#[test]
fn a_new_service_replaces_its_cached_nxdomain() {
    let (ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    let q = [("late.service.consul.", RecordType::A), ("late.node.consul.", RecordType::A)];
    let before = check_all(&mut cache, &ctx, &w.snapshot(), &q);
    assert!(before.iter().all(|r| r.starts_with("NXDomain")), "{before:?}");
    let snap = w.apply(&instance("late", "10.0.0.7", "late", "late", &[]));
    for reply in check_all(&mut cache, &ctx, &snap, &q) {
        assert!(reply.contains("10.0.0.7"), "{reply}");
    }
}

#[test]
fn a_reload_re_renders_with_the_new_dns_config() {
    let (mut ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    let snap = w.apply(&check_status("n2", "chk-n2", HealthStatus::Warning));
    assert!(check_all(&mut cache, &ctx, &snap, &WEB)[0].contains("n2.node"));
    ctx.dns_config.only_passing = true;
    ctx.generation += 1;
    let after = check_all(&mut cache, &ctx, &snap, &WEB);
    assert!(!after[0].contains("n2.node"), "{}", after[0]);
}

#[test]
fn writes_that_change_nothing_an_answer_shows_keep_it_cached() {
    // Single-instance answers (one per tag) are not shuffled, so every miss is a staleness.
    let single = [
        ("v1.web.service.consul.", RecordType::SRV),
        ("v2.web.service.consul.", RecordType::SRV),
        ("v2.web.service.consul.", RecordType::A),
    ];
    let (ctx, mut w, mut cache) = (ctx(), base(), AnswerCache::new());
    check_all(&mut cache, &ctx, &w.snapshot(), &single);
    let misses = cache.stats().misses;
    assert_eq!(misses, 3);
    // Passing -> warning with equal weights: same records, same SRV weights.
    let snap = w.apply(&check_status("n2", "chk-n2", HealthStatus::Warning));
    check_all(&mut cache, &ctx, &snap, &single);
    // A write to another service, and a new check output.
    let snap = w.apply(&instance("n3", "10.0.0.3", "api", "api", &[]));
    check_all(&mut cache, &ctx, &snap, &single);
    let snap = w.apply(&Command::UpdateCheck(CheckUpdate {
        node: "n2".into(),
        check_id: "chk-n2".into(),
        status: HealthStatus::Warning,
        output: "slow".into(),
    }));
    check_all(&mut cache, &ctx, &snap, &single);
    assert_eq!(cache.stats().misses, misses, "no answer rendered again");

    // With a warning weight of 0 the SRV weight changes: the service's answers (the digest
    // covers all its instances) render again.
    let mut svc = Service::new("n1", "web", "web", 8000).with_tags(&["v1"]);
    svc.weights.warning = 0;
    let snap = w.apply(&register(node("n1", "10.0.0.1"), Some(svc), Vec::new()));
    check_all(&mut cache, &ctx, &snap, &single);
    let before = cache.stats().misses;
    let snap = w.apply(&check_status("n1", "chk-n1", HealthStatus::Warning));
    let after = check_all(&mut cache, &ctx, &snap, &single);
    assert_eq!(cache.stats().misses, before + 3, "every answer about web renders again");
    assert!(after[0].contains(" 1 0 8000 n1.node"), "{}", after[0]);
}

/// One write in a random sequence over a small world.
#[derive(Debug, Clone)]
enum Op {
    Register { node: u8, service: u8, tag: u8, port: u16 },
    DeregisterService { node: u8, service: u8 },
    DeregisterNode { node: u8 },
    ServiceCheck { node: u8, service: u8, status: u8 },
    NodeCheck { node: u8, status: u8 },
    NodeAddress { node: u8, last: u8 },
    Query { service: u8 },
    DeleteQuery,
}

const NODES: u8 = 3;
const SERVICES: u8 = 3;
const STATUSES: [HealthStatus; 3] = [HealthStatus::Passing, HealthStatus::Warning, HealthStatus::Critical];
const TAGS: [&str; 2] = ["v1", "v2"];
const QUERY_ID: &str = "00000000-0000-0000-0000-0000000000aa";

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..NODES, 0..SERVICES, 0..3u8, 8000..8002u16).prop_map(|(node, service, tag, port)| Op::Register {
            node,
            service,
            tag,
            port
        }),
        (0..NODES, 0..SERVICES).prop_map(|(node, service)| Op::DeregisterService { node, service }),
        (0..NODES).prop_map(|node| Op::DeregisterNode { node }),
        (0..NODES, 0..SERVICES, 0..3u8).prop_map(|(node, service, status)| Op::ServiceCheck {
            node,
            service,
            status
        }),
        (0..NODES, 0..3u8).prop_map(|(node, status)| Op::NodeCheck { node, status }),
        (0..NODES, 1..3u8).prop_map(|(node, last)| Op::NodeAddress { node, last }),
        (0..SERVICES).prop_map(|service| Op::Query { service }),
        Just(Op::DeleteQuery),
    ]
}

fn node_addr(node: u8, last: u8) -> String {
    format!("10.0.{node}.{last}")
}

/// The command for `op`, or `None` when it would be refused (a check on a missing instance).
fn command(op: &Op, w: &World) -> Option<Command> {
    let name = |n: u8| format!("n{n}");
    let svc = |s: u8| format!("s{s}");
    let current = |n: u8| w.state.node(&name(n)).map_or_else(|| node_addr(n, 1), |x| x.address.clone());
    Some(match *op {
        Op::Register { node: n, service: s, tag, port } => {
            let tags: Vec<&str> = TAGS.iter().take(usize::from(tag)).copied().collect();
            let mut service = Service::new(&name(n), &svc(s), &svc(s), port).with_tags(&tags);
            service.weights.warning = u32::from(s);
            register(node(&name(n), &current(n)), Some(service), Vec::new())
        }
        Op::DeregisterService { node: n, service: s } => {
            w.state.service(&name(n), &svc(s))?;
            Command::Deregister(Deregistration { node: name(n), service_id: Some(svc(s)), check_id: None })
        }
        Op::DeregisterNode { node: n } => {
            w.state.node(&name(n))?;
            Command::Deregister(Deregistration { node: name(n), service_id: None, check_id: None })
        }
        Op::ServiceCheck { node: n, service: s, status } => {
            w.state.service(&name(n), &svc(s))?;
            let check = Check::new(&name(n), &format!("chk-{s}"), &svc(s), STATUSES[usize::from(status)]);
            register(node(&name(n), &current(n)), None, vec![check])
        }
        Op::NodeCheck { node: n, status } => {
            w.state.node(&name(n))?;
            let check = Check::new(&name(n), "serfHealth", "", STATUSES[usize::from(status)]);
            register(node(&name(n), &current(n)), None, vec![check])
        }
        Op::NodeAddress { node: n, last } => {
            w.state.node(&name(n))?;
            register(node(&name(n), &node_addr(n, last)), None, Vec::new())
        }
        Op::Query { service } => {
            let mut cmd = query(QUERY_ID, "pq", &svc(service));
            if let Command::QueryUpsert(u) = &mut cmd {
                u.update = w.state.query(QUERY_ID).is_some();
            }
            cmd
        }
        Op::DeleteQuery => {
            w.state.query(QUERY_ID)?;
            Command::QueryDelete(QUERY_ID.into())
        }
    })
}

fn questions() -> Vec<(String, RecordType)> {
    let mut q = Vec::new();
    for s in 0..SERVICES {
        for qtype in [RecordType::SRV, RecordType::A] {
            q.push((format!("s{s}.service.consul."), qtype));
        }
        q.push((format!("v1.s{s}.service.consul."), RecordType::SRV));
    }
    for n in 0..NODES {
        q.push((format!("n{n}.node.consul."), RecordType::A));
    }
    q.push(("pq.query.consul.".into(), RecordType::SRV));
    q.push(("consul.".into(), RecordType::NS));
    q
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After any sequence of writes, with or without `only_passing`, every cached answer is
    /// the one the full path gives for the current snapshot.
    #[test]
    fn cached_answers_follow_any_sequence_of_writes(
        ops in proptest::collection::vec(op(), 1..40),
        only_passing in any::<bool>(),
    ) {
        let mut ctx = ctx();
        ctx.dns_config.only_passing = only_passing;
        let questions = questions();
        let mut w = World::default();
        let mut cache = AnswerCache::new();
        for op in &ops {
            if let Some(cmd) = command(op, &w) {
                w.apply(&cmd);
            }
            let snap = w.snapshot();
            for (name, qtype) in &questions {
                check(&mut cache, &ctx, &snap, name, *qtype);
            }
        }
    }
}
