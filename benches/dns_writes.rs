//! Criterion benchmark of the UDP loops' answer cache while writes are published (goal G6:
//! DNS keeps >= 0.9x of its throughput under 1,000 registrations/s).
//!
//! The catalog is the write-load fixture of `benches/dns/run`, built through `catalog::apply`
//! so every row carries real indexes: 1,000 services (`svc0000`..) of 5 instances on 1,000
//! nodes, tags `v1`/`v2`, one passing service check per instance. The query mix cycles over
//! SRV, A and AAAA of every service name and its `v1` tag name, plus 10 % names that do not
//! exist, all with EDNS 4096.
//!
//! The writes are the script's: even writes flip one instance's check between warning and
//! passing (stride 7919, so a different service each time; the answers keep their records),
//! odd writes register a new instance of `churn` (never asked for). The snapshots are built
//! before timing. One iteration answers `QUERIES_PER_WRITE` queries from one cache:
//!
//! - `idle`: all from the same snapshot;
//! - `writes`: from the next snapshot in the sequence (one write later), as the loop sees a
//!   new snapshot after each publish at 1,000 writes/s and about 270k queries/s.
//!
//! Hit and miss counts of each run are printed beside Criterion's times.
//!
//!   cargo bench --bench dns_writes

use std::hint::black_box;
use std::sync::Arc;

use cairn::CatalogSnapshot;
use cairn::DnsConfig;
use cairn::apply;
use cairn::{AnswerCache, DnsContext, Transport};
use cairn::{CatalogState, Check, HealthStatus, Node, Service};
use cairn::{Command, Registration};
use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

const SERVICES: usize = 1_000;
const INSTANCES: usize = 5;
const NODES: usize = 1_000;
/// Queries answered between two writes: about 270k queries/s over 1,000 writes/s.
const QUERIES_PER_WRITE: usize = 270;
/// Snapshots built ahead (the `writes` run wraps around; a wrap is one more change).
const WRITES: usize = 2_000;

fn node(k: usize) -> Node {
    Node::new(
        &format!("node{k:04}"),
        &format!("10.{}.{}.{}", k / 62_500, (k / 250) % 250, k % 250 + 1),
        "dc1",
    )
}

fn instance_node(i: usize) -> usize {
    i % NODES
}

fn register(n: Node, service: Option<Service>, checks: Vec<Check>) -> Command {
    Command::Register(Registration { node: n, skip_node_update: false, service, checks })
}

fn check(i: usize, status: HealthStatus) -> Command {
    let (svc, j) = (i / INSTANCES, i % INSTANCES);
    let n = node(instance_node(i));
    let id = format!("svc{svc:04}-{j}");
    let c = Check::new(&n.name, &format!("check-{id}"), &id, status);
    register(n, None, vec![c])
}

fn write(n: usize) -> Command {
    if n.is_multiple_of(2) {
        let i = (n / 2 * 7919) % (SERVICES * INSTANCES);
        let visit = (n / 2) / (SERVICES * INSTANCES);
        return check(i, if visit.is_multiple_of(2) { HealthStatus::Warning } else { HealthStatus::Passing });
    }
    let m = n / 2;
    let k = m % NODES;
    let s = Service::new(&node(k).name, &format!("churn-{m}"), "churn", 7000);
    register(node(k), Some(s), Vec::new())
}

/// The catalog after setup, and the snapshots after each of `WRITES` writes.
fn snapshots() -> (Arc<CatalogSnapshot>, Vec<Arc<CatalogSnapshot>>) {
    let mut state = CatalogState::default();
    let mut index = 0;
    let mut step = |state: &mut CatalogState, cmd: &Command| {
        index += 1;
        apply(state, index, cmd, &mut Vec::new());
        Arc::new(CatalogSnapshot { index, catalog: state.clone() })
    };
    for i in 0..SERVICES * INSTANCES {
        let (svc, j) = (i / INSTANCES, i % INSTANCES);
        let n = node(instance_node(i));
        let tags: &[&str] = if j.is_multiple_of(2) { &["v1"] } else { &["v2"] };
        let s =
            Service::new(&n.name, &format!("svc{svc:04}-{j}"), &format!("svc{svc:04}"), 8000).with_tags(tags);
        step(&mut state, &register(n, Some(s), Vec::new()));
    }
    let mut base = None;
    for i in 0..SERVICES * INSTANCES {
        base = Some(step(&mut state, &check(i, HealthStatus::Passing)));
    }
    let base = base.expect("a catalog");
    let after = (0..WRITES).map(|n| step(&mut state, &write(n))).collect();
    (base, after)
}

fn context() -> DnsContext {
    DnsContext {
        domain: "consul.".into(),
        alt_domain: None,
        datacenter: "dc1".into(),
        node_name: "node0000".into(),
        dns_config: DnsConfig::default(),
        recursors: Vec::new(),
        soa_serial: 1,
        generation: 0,
        zones: Arc::default(),
    }
}

fn queries() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in 0..SERVICES {
        for qtype in [RecordType::SRV, RecordType::A, RecordType::AAAA] {
            out.push(query(&format!("svc{s:04}.service.consul."), qtype));
            if s.is_multiple_of(3) {
                out.push(query(&format!("v1.svc{s:04}.service.consul."), qtype));
            }
            if s % 3 == 1 {
                out.push(query(&format!("missing{s:04}.service.consul."), qtype));
            }
        }
    }
    // A fixed interleaving, so consecutive queries ask about different services.
    let n = out.len();
    (0..n).map(|k| out[(k * 7919) % n].clone()).collect()
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(Name::from_ascii(name).expect("valid name"), qtype));
    let mut e = Edns::new();
    e.set_max_payload(4096);
    msg.set_edns(e);
    msg.to_vec().expect("query encodes")
}

fn dns_writes(c: &mut Criterion) {
    let (base, after) = snapshots();
    let ctx = context();
    let qs = queries();
    let mut group = c.benchmark_group("dns_writes");
    group.throughput(criterion::Throughput::Elements(QUERIES_PER_WRITE as u64));
    for mode in ["idle", "writes"] {
        let mut cache = AnswerCache::new();
        let mut out = Vec::with_capacity(4096);
        // Warm: every key asked a few times from the starting snapshot.
        for q in qs.iter().cycle().take(qs.len() * 4) {
            black_box(cache.respond(q, Transport::Udp, &ctx, &base, &mut out));
        }
        let warm = cache.stats();
        let (mut next_q, mut next_w) = (0, 0);
        group.bench_function(mode, |b| {
            b.iter(|| {
                let snap = if mode == "idle" {
                    &base
                } else {
                    next_w = (next_w + 1) % after.len();
                    &after[next_w]
                };
                for _ in 0..QUERIES_PER_WRITE {
                    let q = &qs[next_q];
                    next_q = (next_q + 1) % qs.len();
                    black_box(cache.respond(q, Transport::Udp, &ctx, snap, &mut out));
                }
            });
        });
        let s = cache.stats();
        let (hits, misses) = (s.hits - warm.hits, s.misses - warm.misses);
        let total = (hits + misses).max(1);
        #[allow(clippy::cast_precision_loss)]
        let rate = 100.0 * hits as f64 / total as f64;
        println!("dns_writes/{mode}: {hits} hits, {misses} misses ({rate:.2} % hits)");
    }
    group.finish();
}

criterion_group!(benches, dns_writes);
criterion_main!(benches);
