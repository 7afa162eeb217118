//! Criterion micro-benchmarks of the DNS path, stage by stage and whole.
//!
//! For each question and transport: `parse` (bytes -> `Request`), `route` (name -> `Route`),
//! `answer` (route + snapshot -> `Answer`), `encode` (`Answer` -> bytes), `handle` (the pure
//! core: all four in a row), and the UDP loops' answer cache: `cache_hit` (stored bytes
//! copied, ID patched) and `cache_miss` (a fresh cache renders and stores the reply). The stages are called through
//! `cairn::testing::bench_support`, which forwards to the same functions `handle` calls.
//!
//! The catalog: 1,000 nodes (one node check each) carrying 2,000 background services of 5
//! instances, plus `web` (5 instances) and `big` (100 instances); every instance has a
//! passing service check, so 10,105 instances in all. Default `dns_config` (Consul's: no
//! truncation flag, 3 answers over classic UDP, node meta TXT on). The RNG is seeded.
//!
//!   cargo bench --bench dns_path [-- FILTER]

use std::hint::black_box;

use cairn::CatalogSnapshot;
use cairn::DnsConfig;
use cairn::testing::bench_support::{answer, encode, parse, route};
use cairn::testing::handle;
use cairn::{AnswerCache, DnsContext, Transport};
use cairn::{CatalogDump, CatalogState, Check, HealthStatus, Node, Service};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NODES: usize = 1_000;
const BACKGROUND_SERVICES: usize = 2_000;

fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

fn catalog() -> CatalogSnapshot {
    let mut dump = CatalogDump::default();
    for i in 0..NODES {
        let name = node_name(i);
        dump.nodes.push(Node::new(&name, &format!("10.0.{}.{}", i / 250, i % 250 + 1), "dc1"));
        dump.checks.push(Check::new(&name, "serfHealth", "", HealthStatus::Passing));
    }
    let mut instance = |service: &str, n: usize, offset: usize| {
        for j in 0..n {
            let node = node_name((offset + j) % NODES);
            let id = format!("{service}-{j}");
            dump.services.push(Service::new(&node, &id, service, 8080).with_tags(&["v1"]));
            let mut check = Check::new(&node, &format!("service:{id}"), &id, HealthStatus::Passing);
            check.service_name = service.to_owned();
            dump.checks.push(check);
        }
    };
    for s in 0..BACKGROUND_SERVICES {
        instance(&format!("svc-{s:04}"), 5, s * 5);
    }
    instance("web", 5, 0);
    instance("big", 100, 0);
    CatalogSnapshot { index: 1, catalog: CatalogState::from_dump(dump) }
}

fn context() -> DnsContext {
    DnsContext {
        domain: "consul.".into(),
        alt_domain: None,
        datacenter: "dc1".into(),
        node_name: "node-0000".into(),
        dns_config: DnsConfig::default(),
        recursors: Vec::new(),
        soa_serial: 1,
        generation: 0,
        zones: std::sync::Arc::default(),
    }
}

fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).expect("valid name"), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().expect("query encodes")
}

/// One question: a label, the name and type, and what the reply must hold.
struct Case {
    label: &'static str,
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    /// Answer count over UDP without EDNS and with EDNS 1232.
    answers: (usize, usize),
}

const CASES: &[Case] = &[
    Case {
        label: "srv5",
        name: "web.service.consul.",
        qtype: RecordType::SRV,
        rcode: ResponseCode::NoError,
        answers: (3, 5),
    },
    Case {
        label: "a5",
        name: "web.service.consul.",
        qtype: RecordType::A,
        rcode: ResponseCode::NoError,
        answers: (3, 5),
    },
    Case {
        label: "a100",
        name: "big.service.consul.",
        qtype: RecordType::A,
        rcode: ResponseCode::NoError,
        answers: (3, 73),
    },
    Case {
        label: "nxdomain",
        name: "missing.service.consul.",
        qtype: RecordType::A,
        rcode: ResponseCode::NXDomain,
        answers: (0, 0),
    },
    Case {
        label: "node_a",
        name: "node-0042.node.consul.",
        qtype: RecordType::A,
        rcode: ResponseCode::NoError,
        answers: (1, 1),
    },
];

fn dns_path(c: &mut Criterion) {
    let snap = catalog();
    let ctx = context();
    let mut rng = StdRng::seed_from_u64(7);
    for case in CASES {
        for (transport, edns, want) in
            [("udp", None, case.answers.0), ("edns1232", Some(1232), case.answers.1)]
        {
            let bytes = query(case.name, case.qtype, edns);
            // The fixture must give the answer the label promises, or the figures mean nothing.
            let reply = handle(&bytes, Transport::Udp, &ctx, &snap, &mut rng).expect("a reply");
            let msg = Message::from_vec(&reply).expect("reply decodes");
            assert_eq!(msg.metadata.response_code, case.rcode, "{} {transport}", case.label);
            assert_eq!(msg.answers.len(), want, "{} {transport}: answers", case.label);

            let req = parse(&bytes).expect("request parses");
            let routed = route(&req, &ctx);
            let ans = answer(&req, &routed, &ctx, &snap, &mut rng).expect("an answer");
            let mut g = c.benchmark_group(format!("dns/{}/{transport}", case.label));
            g.bench_function("parse", |b| b.iter(|| parse(black_box(&bytes))));
            g.bench_function("route", |b| b.iter(|| route(black_box(&req), &ctx)));
            g.bench_function("answer", |b| {
                b.iter(|| answer(black_box(&req), &routed, &ctx, &snap, &mut rng))
            });
            g.bench_function("encode", |b| {
                b.iter_batched(
                    || ans.clone(),
                    |a| encode(black_box(&req), a, Transport::Udp, &ctx),
                    BatchSize::SmallInput,
                );
            });
            g.bench_function("handle", |b| {
                b.iter(|| handle(black_box(&bytes), Transport::Udp, &ctx, &snap, &mut rng));
            });
            // The UDP loops answer through the answer cache: a hit copies stored bytes; a miss
            // (here: every request against a fresh cache) renders through the same stages.
            let shared = std::sync::Arc::new(snap.clone());
            let mut cache = AnswerCache::new();
            let mut out = Vec::with_capacity(4096);
            g.bench_function("cache_hit", |b| {
                b.iter(|| cache.respond(black_box(&bytes), Transport::Udp, &ctx, &shared, &mut out));
            });
            g.bench_function("cache_miss", |b| {
                b.iter_batched(
                    AnswerCache::new,
                    |mut fresh| {
                        fresh.respond(black_box(&bytes), Transport::Udp, &ctx, &shared, &mut out);
                        fresh
                    },
                    BatchSize::SmallInput,
                );
            });
            g.finish();
        }
    }
}

criterion_group!(benches, dns_path);
criterion_main!(benches);
