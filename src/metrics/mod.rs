//! OPERATIONS: the agent's counters and histograms, aggregated when scraped.
//!
//! Writers: each DNS UDP loop owns a [`DnsCounters`] (cache-padded, single writer: a plain
//! relaxed load and store per count, no lock, no allocation, no shared cache line); the TCP
//! path and forwarded queries share one more (`fetch_add`, off the hot path); the state
//! machine times its applies and publishes into [`Histogram`]s.
//! Reader: `GET /v1/agent/metrics` (`http::metrics`) sums the loops into a [`Report`], adds
//! gauges computed from the current catalog snapshot, and renders Consul's JSON or the
//! Prometheus text format (`render`).
//!
//! The registry is process-wide ([`global`]): one agent runs per process; in-process tests
//! that start several see their sums.
//!
//! Why not the `metrics` facade (0.24, which hickory-server can feed) with
//! metrics-exporter-prometheus (0.18): a counter there is a shared atomic reached through a
//! global recorder, so every DNS loop would `fetch_add` on the same cache line, or register a
//! series per loop that the exporter then prints apart; the exporter renders histograms as
//! summaries unless buckets are configured; and Consul's JSON still needs the sums. The
//! single-writer cells, the fixed-bound [`Histogram`] and the [`Report`] cost no dependency.

pub(crate) mod commands;
mod dns;
pub(crate) mod memory;
pub(crate) mod named;
pub(crate) mod render;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub(crate) use dns::{DnsCounters, DnsTotals, LATENCY_BOUNDS_NS, rcode_name};
pub(crate) use named::{count, measure};

use crate::catalog::HealthStatus;
use crate::snapshot::CatalogSnapshot;

/// A histogram with fixed bucket bounds (nanoseconds), for events far rarer than DNS
/// queries (Raft applies, snapshot publishes): shared, `fetch_add`.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [u64],
    buckets: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

/// A histogram's contents at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistogramSnapshot {
    /// Upper bounds of the buckets, in nanoseconds (a last, unbounded bucket follows).
    pub bounds: &'static [u64],
    /// Observations per bucket (not cumulative); one more than `bounds`.
    pub buckets: Vec<u64>,
    /// Sum of all observations, in nanoseconds.
    pub sum_ns: u64,
    /// Number of observations.
    pub count: u64,
}

/// Bucket bounds for Raft applies and publishes: 10 µs to 10 s.
pub(crate) const SLOW_BOUNDS_NS: &[u64] = &[
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    10_000_000_000,
];

impl Histogram {
    /// An empty histogram over `bounds` (ascending, nanoseconds).
    pub(crate) fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub(crate) fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self.bounds.partition_point(|&b| b < ns);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        self.sum_ns.fetch_add(ns, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// The current contents.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_ns: self.sum_ns.load(Relaxed),
            count: self.count.load(Relaxed),
        }
    }
}

/// Every metric source of the process.
#[derive(Debug)]
pub(crate) struct Metrics {
    loops: Mutex<Vec<Arc<DnsCounters>>>,
    shared: DnsCounters,
    /// Time of each state machine apply (a batch of entries, LMDB commit included).
    pub raft_apply: Histogram,
    /// Time to publish a new catalog snapshot to readers.
    pub snapshot_publish: Histogram,
}

/// The process-wide registry.
pub(crate) fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        loops: Mutex::new(Vec::new()),
        shared: DnsCounters::default(),
        raft_apply: Histogram::new(SLOW_BOUNDS_NS),
        snapshot_publish: Histogram::new(SLOW_BOUNDS_NS),
    })
}

impl Metrics {
    /// Counters for one new DNS UDP loop (its thread is their only writer).
    pub(crate) fn register_loop(&self) -> Arc<DnsCounters> {
        let c = Arc::new(DnsCounters::default());
        self.loops.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(c.clone());
        c
    }

    /// Counters shared by the TCP path and forwarded queries (several writers).
    pub(crate) fn shared_dns(&self) -> &DnsCounters {
        &self.shared
    }

    /// The DNS counters of every loop and the shared ones, summed.
    pub(crate) fn dns_totals(&self) -> DnsTotals {
        let mut t = self.shared.totals();
        for l in self.loops.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            t.add(&l.totals());
        }
        t
    }

    /// Everything, with catalog gauges from `snap`.
    pub(crate) fn report(&self, snap: &CatalogSnapshot) -> Report {
        let (mut passing, mut warning, mut critical) = (0, 0, 0);
        for c in snap.catalog.checks() {
            match c.status {
                HealthStatus::Passing => passing += 1,
                HealthStatus::Warning => warning += 1,
                HealthStatus::Critical => critical += 1,
            }
        }
        Report {
            dns: self.dns_totals(),
            raft_apply: self.raft_apply.snapshot(),
            snapshot_publish: self.snapshot_publish.snapshot(),
            catalog: CatalogGauges {
                index: snap.index,
                nodes: snap.catalog.node_count() as u64,
                services: snap.catalog.service_names().count() as u64,
                service_instances: snap.catalog.service_count() as u64,
                checks_passing: passing,
                checks_warning: warning,
                checks_critical: critical,
            },
            replica: None,
            named: named::snapshot(),
            sessions_ttl_active: snap.catalog.kv().sessions().filter(|s| !s.ttl.is_empty()).count() as u64,
            tasks: None,
            heap: None,
            node_name: String::new(),
        }
    }
}

/// A client agent's replica stream (`replica::Client`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReplicaGauges {
    /// Raft indexes behind the server's last reported applied index.
    pub lag_index: u64,
    /// Milliseconds since the stream last delivered a frame (plus the server's own time since
    /// it heard from the leader).
    pub last_contact_ms: u64,
    /// Full catalogs received.
    pub dumps: u64,
    /// Streams resumed from the last applied index without a full catalog.
    pub resumes: u64,
    /// Streams opened.
    pub connects: u64,
    /// Entries applied.
    pub entries: u64,
}

/// Catalog sizes and checks by status, from one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CatalogGauges {
    /// Raft index of the snapshot.
    pub index: u64,
    /// Nodes.
    pub nodes: u64,
    /// Distinct service names.
    pub services: u64,
    /// Service instances.
    pub service_instances: u64,
    /// Checks passing.
    pub checks_passing: u64,
    /// Checks warning.
    pub checks_warning: u64,
    /// Checks critical.
    pub checks_critical: u64,
}

/// All metrics at one moment, ready to render.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// DNS, summed over loops.
    pub dns: DnsTotals,
    /// State machine applies.
    pub raft_apply: HistogramSnapshot,
    /// Snapshot publishes.
    pub snapshot_publish: HistogramSnapshot,
    /// Catalog gauges.
    pub catalog: CatalogGauges,
    /// The replica stream, on a client agent.
    pub replica: Option<ReplicaGauges>,
    /// Consul's named counters and timers.
    pub named: named::NamedSeries,
    /// Sessions with a TTL (`consul.session_ttl.active`).
    pub sessions_ttl_active: u64,
    /// Live tasks of the async runtime (`consul.runtime.num_goroutines`), when known.
    pub tasks: Option<u64>,
    /// The heap (`consul.runtime.alloc_bytes`, `sys_bytes`), when the C library can say.
    pub heap: Option<memory::HeapUsage>,
    /// This agent's node name (the `node` label of Consul's DNS timers).
    pub node_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::new(&[10, 100]);
        for ns in [5, 10, 11, 100, 1000] {
            h.observe(Duration::from_nanos(ns));
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![2, 2, 1]);
        assert_eq!((s.count, s.sum_ns), (5, 1126));
    }

    #[test]
    fn loops_are_summed() {
        let m = Metrics {
            loops: Mutex::new(Vec::new()),
            shared: DnsCounters::default(),
            raft_apply: Histogram::new(SLOW_BOUNDS_NS),
            snapshot_publish: Histogram::new(SLOW_BOUNDS_NS),
        };
        let (a, b) = (m.register_loop(), m.register_loop());
        a.set_cache(3, 1);
        b.set_cache(4, 2);
        m.shared_dns().add_cache_shared(0, 5);
        let t = m.dns_totals();
        assert_eq!((t.cache_hits, t.cache_misses), (7, 8));
    }
}
