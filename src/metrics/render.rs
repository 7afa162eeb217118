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
