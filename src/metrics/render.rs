//! A [`Report`] as series: gauges, DNS query cells, histograms, and the Prometheus text
//! format (times in seconds). Consul's JSON shape of the same series is built in
//! `http::metrics` (Consul's JSON lives only in the HTTP layer).
//!
//! Why not `prometheus` (0.14) or `prometheus-client` (0.26): both keep each metric as shared
//! atomics in their own registry, while cairn's DNS counters are single-writer cells per UDP
//! loop, summed only at scrape (`metrics::dns`), and the summed `Report` also feeds Consul's
//! JSON at `/v1/agent/metrics`. Either crate would only serve as an encoder, fed families built
//! from the report at each scrape. prometheus-client writes only OpenMetrics (a `# EOF` line,
//! counter `TYPE` lines named without `_total`, a period added to each `HELP`), so the text
//! scrapers read today would change; prometheus 0.14 writes this 0.0.4 format but brings
//! protobuf (a default feature), lazy_static, parking_lot and fnv to replace the 70 lines
//! below. The format they cover is small and fixed: `HELP`/`TYPE` lines, label values with `\`
//! and `"` escaped (they are fixed names here: query types, response codes, check states),
//! cumulative buckets ending in `+Inf`, times in seconds.

use std::fmt::Write as _;

use super::named::{Timing, prometheus_name};
use super::{HistogramSnapshot, LATENCY_BOUNDS_NS, Report};
use crate::metrics::dns::DnsTotals;
use crate::metrics::rcode_name;

/// The DNS latency histogram as a [`HistogramSnapshot`].
pub(crate) fn dns_latency(d: &DnsTotals) -> HistogramSnapshot {
    HistogramSnapshot {
        bounds: &LATENCY_BOUNDS_NS,
        buckets: d.latency.to_vec(),
        sum_ns: d.latency_sum_ns,
        count: d.latency.iter().sum(),
    }
}

/// Label pairs of one series.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// The DNS latency of PTR queries (`consul.dns.ptr_query`).
pub(crate) fn dns_ptr_latency(d: &DnsTotals) -> HistogramSnapshot {
    HistogramSnapshot {
        bounds: &LATENCY_BOUNDS_NS,
        buckets: d.ptr_latency.to_vec(),
        sum_ns: d.ptr_latency_sum_ns,
        count: d.ptr_latency.iter().sum(),
    }
}

/// The DNS latency of every other query (`consul.dns.domain_query`).
pub(crate) fn dns_domain_latency(d: &DnsTotals) -> HistogramSnapshot {
    HistogramSnapshot {
        bounds: &LATENCY_BOUNDS_NS,
        buckets: d.latency.iter().zip(&d.ptr_latency).map(|(a, p)| a.saturating_sub(*p)).collect(),
        sum_ns: d.latency_sum_ns.saturating_sub(d.ptr_latency_sum_ns),
        count: d.latency.iter().sum::<u64>().saturating_sub(d.ptr_latency.iter().sum()),
    }
}

/// Consul's series of a report: gauges, counters, timers and the DNS timers (histograms),
/// each with Consul's name and labels; only what was observed (a timer or counter appears
/// once it has counted something, as in Consul).
#[derive(Debug, Default)]
pub(crate) struct ConsulSeries {
    /// Gauges.
    pub gauges: Vec<(String, Labels, f64)>,
    /// Counters.
    pub counters: Vec<(String, Labels, u64)>,
    /// Timers kept exactly (milliseconds).
    pub timers: Vec<(String, Labels, Timing)>,
    /// Timers kept as histograms (the DNS path's single-writer cells).
    pub histograms: Vec<(String, Labels, HistogramSnapshot)>,
}

/// The Consul-named series of `r`.
pub(crate) fn consul_series(r: &Report) -> ConsulSeries {
    let mut gauges = vec![("consul.session_ttl.active".to_owned(), vec![], r.sessions_ttl_active as f64)];
    if let Some(t) = r.tasks {
        gauges.push(("consul.runtime.num_goroutines".to_owned(), vec![], t as f64));
    }
    if let Some(h) = r.heap {
        gauges.push(("consul.runtime.alloc_bytes".to_owned(), vec![], h.alloc_bytes as f64));
        gauges.push(("consul.runtime.sys_bytes".to_owned(), vec![], h.sys_bytes as f64));
    }
    let node: Labels = vec![("node", r.node_name.clone())];
    let histograms = [
        ("consul.dns.domain_query", dns_domain_latency(&r.dns)),
        ("consul.dns.ptr_query", dns_ptr_latency(&r.dns)),
    ]
    .into_iter()
    .filter(|(_, h)| h.count > 0)
    .map(|(n, h)| (n.to_owned(), node.clone(), h))
    .collect();
    ConsulSeries {
        gauges,
        counters: r.named.counters.iter().map(|((n, l), v)| (n.clone(), l.clone(), *v)).collect(),
        timers: r.named.timers.iter().map(|((n, l), t)| (n.clone(), l.clone(), *t)).collect(),
        histograms,
    }
}

/// Consul's series in the Prometheus text format: dots (and every other character Prometheus
/// refuses) become `_`; timers are summaries in milliseconds (`_sum`, `_count`), as Consul's.
fn prom_consul(out: &mut String, c: &ConsulSeries) {
    let mut last = String::new();
    let mut head = |out: &mut String, name: &str, kind: &str| {
        if name != last {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            name.clone_into(&mut last);
        }
    };
    for (n, l, v) in &c.gauges {
        let p = prometheus_name(n);
        head(out, &p, "gauge");
        let _ = writeln!(out, "{p}{} {v}", prom_labels(l));
    }
    for (n, l, v) in &c.counters {
        let p = prometheus_name(n);
        head(out, &p, "counter");
        let _ = writeln!(out, "{p}{} {v}", prom_labels(l));
    }
    let timers = c.timers.iter().map(|(n, l, t)| (n, l, t.sum, t.count));
    let hists = c.histograms.iter().map(|(n, l, h)| (n, l, h.sum_ns as f64 / 1e6, h.count));
    for (n, l, sum, count) in timers.chain(hists) {
        let p = prometheus_name(n);
        head(out, &p, "summary");
        let labels = prom_labels(l);
        let _ = writeln!(out, "{p}_sum{labels} {sum}\n{p}_count{labels} {count}");
    }
}

/// Gauges of the report: (name, labels, value).
pub(crate) fn gauges(r: &Report) -> Vec<(&'static str, Labels, u64)> {
    let c = &r.catalog;
    let mut out = vec![
        ("catalog.nodes", vec![], c.nodes),
        ("catalog.services", vec![], c.services),
        ("catalog.service_instances", vec![], c.service_instances),
        ("health.checks", vec![("status", "passing".into())], c.checks_passing),
        ("health.checks", vec![("status", "warning".into())], c.checks_warning),
        ("health.checks", vec![("status", "critical".into())], c.checks_critical),
        ("raft.applied_index", vec![], c.index),
    ];
    if let Some(r) = &r.replica {
        out.extend([
            ("replica.lag_index", vec![], r.lag_index),
            ("replica.last_contact_ms", vec![], r.last_contact_ms),
            ("replica.dumps", vec![], r.dumps),
            ("replica.resumes", vec![], r.resumes),
            ("replica.connects", vec![], r.connects),
            ("replica.entries", vec![], r.entries),
        ]);
    }
    out
}

/// Non-zero DNS query cells: (type, rcode, count).
pub(crate) fn dns_cells(d: &DnsTotals) -> impl Iterator<Item = (&'static str, String, u64)> + '_ {
    d.queries.iter().enumerate().flat_map(|(t, row)| {
        row.iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(move |(rc, &n)| (DnsTotals::type_name(t), rcode_name(rc), n))
    })
}

fn prom_labels(labels: &[(&str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn prom_histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        let le = h.bounds.get(i).map_or_else(|| "+Inf".to_string(), |&b| format!("{}", b as f64 / 1e9));
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum_ns as f64 / 1e9, h.count);
}

/// The Prometheus text exposition format (version 0.0.4).
pub(crate) fn prometheus(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP cairn_dns_queries_total DNS replies by question type and response code.\n# TYPE cairn_dns_queries_total counter"
    );
    for (t, rc, n) in dns_cells(&r.dns) {
        let _ = writeln!(
            out,
            "cairn_dns_queries_total{} {n}",
            prom_labels(&[("type", t.to_string()), ("rcode", rc)])
        );
    }
    for (name, help, v) in [
        ("cairn_dns_answer_cache_hits_total", "DNS answers copied from the answer cache.", r.dns.cache_hits),
        ("cairn_dns_answer_cache_misses_total", "DNS answers rendered by the full path.", r.dns.cache_misses),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    }
    prom_histogram(
        &mut out,
        "cairn_dns_query_duration_seconds",
        "Time to answer a DNS query, from receipt to reply.",
        &dns_latency(&r.dns),
    );
    prom_histogram(
        &mut out,
        "cairn_raft_apply_duration_seconds",
        "Time of a state machine apply (one batch of entries, LMDB commit included).",
        &r.raft_apply,
    );
    prom_histogram(
        &mut out,
        "cairn_snapshot_publish_duration_seconds",
        "Time to publish a new catalog snapshot to readers.",
        &r.snapshot_publish,
    );
    let mut last = "";
    for (name, labels, v) in gauges(r) {
        let prom = format!("cairn_{}", name.replace('.', "_"));
        if name != last {
            let _ = writeln!(out, "# TYPE {prom} gauge");
            last = name;
        }
        let _ = writeln!(out, "{prom}{} {v}", prom_labels(&labels));
    }
    prom_consul(&mut out, &consul_series(r));
    out
}

/// A small report for the renderers' tests (here and in `http::metrics`).
#[cfg(test)]
pub(crate) fn sample_report() -> Report {
    use crate::metrics::{CatalogGauges, DnsCounters, Histogram, SLOW_BOUNDS_NS};
    let c = DnsCounters::default();
    // An A query for "." answered NOERROR in 3 µs, then a NXDOMAIN.
    c.record(&[0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1], 3_000);
    c.record(&[0, 0, 0x84, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1], 3_000);
    c.set_cache(1, 1);
    let apply = Histogram::new(SLOW_BOUNDS_NS);
    apply.observe(std::time::Duration::from_millis(2));
    Report {
        dns: c.totals(),
        raft_apply: apply.snapshot(),
        snapshot_publish: Histogram::new(SLOW_BOUNDS_NS).snapshot(),
        catalog: CatalogGauges {
            index: 7,
            nodes: 1,
            services: 2,
            service_instances: 3,
            checks_passing: 1,
            ..Default::default()
        },
        replica: None,
        named: crate::metrics::named::NamedSeries::default(),
        sessions_ttl_active: 1,
        tasks: Some(4),
        heap: None,
        node_name: "n1".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let text = prometheus(&sample_report());
        for line in [
            "cairn_dns_queries_total{type=\"A\",rcode=\"NOERROR\"} 1",
            "cairn_dns_queries_total{type=\"A\",rcode=\"NXDOMAIN\"} 1",
            "cairn_dns_answer_cache_hits_total 1",
            "cairn_dns_query_duration_seconds_bucket{le=\"0.000005\"} 2",
            "cairn_dns_query_duration_seconds_bucket{le=\"+Inf\"} 2",
            "cairn_dns_query_duration_seconds_count 2",
            "cairn_raft_apply_duration_seconds_count 1",
            "cairn_health_checks{status=\"passing\"} 1",
            "cairn_catalog_services 2",
            "cairn_raft_applied_index 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE cairn_health_checks gauge").count(), 1);
    }
}
