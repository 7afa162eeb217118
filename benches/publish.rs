//! Criterion benchmarks of one catalog change made visible to readers, at three catalog sizes.
//!
//! What is timed is the state machine's path for one log entry minus the LMDB commit:
//! `catalog::apply` on a copy of the state, the frozen copy for the writer, adopting the new
//! state and `SnapshotHandle::publish` (via `raft::state_machine::bench_support`). The goal
//! (issue 4) is under 1 ms and independent of catalog size, hence 1k, 10k and 100k instances.
//!
//! The catalog of N instances: N/5 services of 5 instances on N/10 nodes; every node has a
//! passing `serfHealth` check and every instance a passing service check.
//!
//! - `register`: a new instance (service + its check) on an existing node, sent with the
//!   node as `PUT /v1/catalog/register` does. Each timed register is followed by an untimed
//!   deregister through the same path, so the catalog stays at N.
//! - `check_update`: one service check flips between passing and critical (a TTL update),
//!   a different check each time.
//!
//!   cargo bench --bench publish [-- FILTER]

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn::SnapshotHandle;
use cairn::testing::apply_and_publish;
use cairn::{CatalogDump, CatalogState, Check, HealthStatus, Node, Service};
use cairn::{CheckUpdate, Command, CommandResponse, Deregistration, Registration};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Steps through the checks in an order that is not the map order; prime, so coprime to N.
const STRIDE: usize = 7_919;

fn node(i: usize) -> Node {
    Node::new(
        &format!("node-{i:05}"),
        &format!("10.{}.{}.{}", i / 62_500, (i / 250) % 250, i % 250 + 1),
        "dc1",
    )
}

fn instance_id(i: usize) -> String {
    format!("svc-{:05}-{}", i / 5, i % 5)
}

/// N instances: instance i is the (i % 5)th of service i / 5 and runs on node i % (N / 10).
fn catalog(instances: usize) -> CatalogState {
    let nodes = instances / 10;
    let mut dump = CatalogDump::default();
    for i in 0..nodes {
        let n = node(i);
        dump.checks.push(Check::new(&n.name, "serfHealth", "", HealthStatus::Passing));
        dump.nodes.push(n);
    }
    for i in 0..instances {
        let n = node(i % nodes);
        let (id, name) = (instance_id(i), format!("svc-{:05}", i / 5));
        let mut check = Check::new(&n.name, &format!("service:{id}"), &id, HealthStatus::Passing);
        check.service_name.clone_from(&name);
        dump.checks.push(check);
        dump.services.push(Service::new(&n.name, &id, &name, 8080).with_tags(&["v1"]));
    }
    CatalogState::from_dump(dump)
}

fn applied(response: &CommandResponse) {
    assert_eq!(*response, CommandResponse::Applied, "the bench's command was rejected");
}

fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish");
    for n in SIZES {
        let mut state = catalog(n);
        assert_eq!(state.service_count(), n);
        let snapshots = SnapshotHandle::default();
        let nodes = n / 10;
        let mut index = 1u64;
        let mut seq = 0usize;

        g.bench_with_input(BenchmarkId::new("register", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seq += 1;
                    let on = node((seq * STRIDE) % nodes);
                    let id = format!("bench-{seq}");
                    let mut service = Service::new(&on.name, &id, &format!("svc-{:05}", seq % (n / 5)), 9090);
                    service.tags = vec!["v2".into()];
                    let check = Check::new(&on.name, &format!("service:{id}"), &id, HealthStatus::Passing);
                    let register = Command::Register(Registration {
                        node: on.clone(),
                        skip_node_update: false,
                        service: Some(service),
                        checks: vec![check],
                    });
                    let deregister = Command::Deregister(Deregistration {
                        node: on.name,
                        service_id: Some(id),
                        check_id: None,
                    });
                    index += 1;
                    let start = Instant::now();
                    let (response, rows) = apply_and_publish(&mut state, index, &register, &snapshots);
                    total += start.elapsed();
                    applied(&response);
                    black_box(rows);
                    index += 1;
                    applied(&apply_and_publish(&mut state, index, &deregister, &snapshots).0);
                }
                total
            });
        });
        assert_eq!(state.service_count(), n);

        g.bench_with_input(BenchmarkId::new("check_update", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seq += 1;
                    let i = (seq * STRIDE) % n;
                    let id = instance_id(i);
                    let now = state.check(&node(i % nodes).name, &format!("service:{id}")).map(|c| c.status);
                    let status = match now {
                        Some(HealthStatus::Passing) => HealthStatus::Critical,
                        _ => HealthStatus::Passing,
                    };
                    let update = Command::UpdateCheck(CheckUpdate {
                        node: node(i % nodes).name,
                        check_id: format!("service:{id}"),
                        status,
                        output: String::new(),
                    });
                    index += 1;
                    let start = Instant::now();
                    let (response, rows) = apply_and_publish(&mut state, index, &update, &snapshots);
                    total += start.elapsed();
                    applied(&response);
                    black_box(rows);
                }
                total
            });
        });
    }
    g.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
