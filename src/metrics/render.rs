//! A [`Report`] as Consul's `/v1/agent/metrics` JSON (go-metrics' in-memory sink shape:
//! `Timestamp`, `Gauges`, `Points`, `Counters`, `Samples`) or as the Prometheus text format.
//!
//! Counters are cumulative since the agent started (Consul's are per 10 s interval); each
//! increment is 1, so their `Sum` is their `Count`. Samples are built from histograms: `Count`,
//! `Sum` and `Mean` are exact, `Min`, `Max` and `Stddev` are estimated from bucket bounds.
//! Times in the JSON are milliseconds (as Consul's), in Prometheus seconds.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{HistogramSnapshot, LATENCY_BOUNDS_NS, Report};
use crate::metrics::dns::DnsTotals;
use crate::metrics::rcode_name;

/// The DNS latency histogram as a [`HistogramSnapshot`].
fn dns_latency(d: &DnsTotals) -> HistogramSnapshot {
    HistogramSnapshot {
        bounds: &LATENCY_BOUNDS_NS,
        buckets: d.latency.to_vec(),
        sum_ns: d.latency_sum_ns,
        count: d.latency.iter().sum(),
    }
}

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;

/// Gauges of the report: (name, labels, value).
fn gauges(r: &Report) -> Vec<(&'static str, Labels, u64)> {
    let c = &r.catalog;
    vec![
        ("catalog.nodes", vec![], c.nodes),
        ("catalog.services", vec![], c.services),
        ("catalog.service_instances", vec![], c.service_instances),
        ("health.checks", vec![("status", "passing".into())], c.checks_passing),
        ("health.checks", vec![("status", "warning".into())], c.checks_warning),
        ("health.checks", vec![("status", "critical".into())], c.checks_critical),
        ("raft.applied_index", vec![], c.index),
    ]
}

/// Non-zero DNS query cells: (type, rcode, count).
fn dns_cells(d: &DnsTotals) -> impl Iterator<Item = (&'static str, String, u64)> + '_ {
    d.queries.iter().enumerate().flat_map(|(t, row)| {
        row.iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(move |(rc, &n)| (DnsTotals::type_name(t), rcode_name(rc), n))
    })
}

fn labels_json(labels: &[(&str, String)]) -> Value {
    Value::Object(labels.iter().map(|(k, v)| ((*k).to_string(), Value::String(v.clone()))).collect())
}

fn counter_json(name: &str, labels: &[(&str, String)], n: u64) -> Value {
    let count = n as f64;
    json!({"Name": name, "Count": n, "Sum": count, "Min": 1.0, "Max": 1.0, "Mean": 1.0, "Stddev": 0.0,
           "Labels": labels_json(labels)})
}

/// Count, sum, min, max, mean and standard deviation (ms) of a histogram, estimated from
/// bucket bounds (the midpoint of each bucket; the last, unbounded one at its lower bound).
fn sample_json(name: &str, h: &HistogramSnapshot) -> Value {
    let ms = |ns: u64| ns as f64 / 1e6;
    let lower = |i: usize| if i == 0 { 0 } else { h.bounds.get(i - 1).copied().unwrap_or(0) };
    let upper = |i: usize| h.bounds.get(i).copied().unwrap_or_else(|| lower(i));
    let nonempty: Vec<usize> =
        h.buckets.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, _)| i).collect();
    let (min, max) = match (nonempty.first(), nonempty.last()) {
        (Some(&a), Some(&b)) => (ms(lower(a)), ms(upper(b))),
        _ => (0.0, 0.0),
    };
    let mean = if h.count == 0 { 0.0 } else { ms(h.sum_ns) / h.count as f64 };
    let var = if h.count < 2 {
        0.0
    } else {
        let sq: f64 = h
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mid = (ms(lower(i)) + ms(upper(i))) / 2.0;
                n as f64 * (mid - mean).powi(2)
            })
            .sum();
        sq / (h.count - 1) as f64
    };
    json!({"Name": name, "Count": h.count, "Sum": ms(h.sum_ns), "Min": min, "Max": max, "Mean": mean,
           "Stddev": var.sqrt(), "Labels": {}})
}

/// Consul's `/v1/agent/metrics` body. `now_unix` is the timestamp (seconds).
pub fn consul_json(r: &Report, now_unix: u64) -> Value {
    let gauges: Vec<Value> = gauges(r)
        .into_iter()
        .map(|(n, l, v)| json!({"Name": format!("cairn.{n}"), "Value": v as f64, "Labels": labels_json(&l)}))
        .collect();
    let mut counters: Vec<Value> = dns_cells(&r.dns)
        .map(|(t, rc, n)| counter_json("cairn.dns.queries", &[("type", t.to_string()), ("rcode", rc)], n))
        .collect();
    counters.push(counter_json("cairn.dns.cache.hits", &[], r.dns.cache_hits));
    counters.push(counter_json("cairn.dns.cache.misses", &[], r.dns.cache_misses));
    let samples = vec![
        sample_json("cairn.dns.query_time", &dns_latency(&r.dns)),
        sample_json("cairn.raft.apply", &r.raft_apply),
        sample_json("cairn.catalog.snapshot_publish", &r.snapshot_publish),
    ];
    json!({
        "Timestamp": go_timestamp(now_unix),
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": samples,
    })
}

/// `2006-01-02 15:04:05 +0000 UTC`, the format of Consul's `Timestamp`.
fn go_timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC", secs / 3600, secs / 60 % 60, secs % 60)
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
pub fn prometheus(r: &Report) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CatalogGauges, DnsCounters, Histogram, SLOW_BOUNDS_NS};

    fn report() -> Report {
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
        }
    }

    #[test]
    fn consul_shape() {
        let v = consul_json(&report(), 1_700_000_000);
        assert_eq!(v["Timestamp"], "2023-11-14 22:13:20 +0000 UTC");
        assert!(v["Points"].as_array().unwrap().is_empty());
        let counters = v["Counters"].as_array().unwrap();
        let a = counters.iter().find(|c| c["Labels"]["rcode"] == "NXDOMAIN").unwrap();
        assert_eq!(
            (a["Name"].as_str(), a["Count"].as_u64(), a["Labels"]["type"].as_str()),
            (Some("cairn.dns.queries"), Some(1), Some("A"))
        );
        let gauge = |n: &str| {
            v["Gauges"].as_array().unwrap().iter().find(|g| g["Name"] == n).unwrap()["Value"].as_f64()
        };
        assert_eq!(gauge("cairn.catalog.service_instances"), Some(3.0));
        let apply =
            v["Samples"].as_array().unwrap().iter().find(|s| s["Name"] == "cairn.raft.apply").unwrap();
        assert_eq!((apply["Count"].as_u64(), apply["Mean"].as_f64()), (Some(1), Some(2.0)));
    }

    #[test]
    fn prometheus_text() {
        let text = prometheus(&report());
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

    #[test]
    fn timestamps() {
        assert_eq!(go_timestamp(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_timestamp(951_782_400), "2000-02-29 00:00:00 +0000 UTC");
    }
}
