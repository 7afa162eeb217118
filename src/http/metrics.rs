//! `GET /v1/agent/metrics`: Consul's JSON (go-metrics' in-memory sink shape: `Timestamp`,
//! `Gauges`, `Points`, `Counters`, `Samples`), or with `?format=prometheus` the Prometheus
//! text format (`metrics::render`). Aggregates `metrics::global()` and the current catalog
//! snapshot at scrape time.
//!
//! Counters are cumulative since the agent started (Consul's are per 10 s interval); each
//! increment is 1, so their `Sum` is their `Count`. Samples are built from histograms: `Count`,
//! `Sum` and `Mean` are exact, `Min`, `Max` and `Stddev` are estimated from bucket bounds.
//! Times are milliseconds, as in Consul. Beside cairn's own `cairn.*` series come Consul's
//! names (`metrics::named`, `metrics::render::consul_series`): the timers kept exactly report
//! exact `Min`, `Max` and `Stddev`, the DNS timers (histogram cells) estimated ones.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use serde_json::{Value, json};

use super::token::Acl;
use super::{ApiError, ApiState};
use crate::metrics::render::{consul_series, dns_cells, dns_latency, gauges};
use crate::metrics::{HistogramSnapshot, Report};

pub(super) async fn metrics(State(st): State<ApiState>, acl: Acl, RawQuery(q): RawQuery) -> Response {
    if !acl.agent_read(&st.config.node_name) {
        return ApiError::denied().into_response();
    }
    let prometheus = form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "format" && v == "prometheus");
    let mut report = crate::metrics::global().report(&st.snapshots.load_full());
    report.node_name.clone_from(&st.config.node_name);
    report.tasks = tokio::runtime::Handle::try_current().ok().map(|h| h.metrics().num_alive_tasks() as u64);
    report.heap = crate::metrics::memory::load();
    report.replica = st.replica.as_ref().map(|c| {
        use std::sync::atomic::Ordering::Relaxed;
        let s = c.stats();
        crate::metrics::ReplicaGauges {
            lag_index: c.lag_index(),
            last_contact_ms: c.last_contact_ms(),
            dumps: s.dumps.load(Relaxed),
            resumes: s.resumes.load(Relaxed),
            connects: s.connects.load(Relaxed),
            entries: s.entries.load(Relaxed),
        }
    });
    if prometheus {
        let mut resp = crate::metrics::render::prometheus(&report).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return resp;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    axum::Json(consul_json(&report, now)).into_response()
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
fn sample_json(name: &str, labels: &[(&str, String)], h: &HistogramSnapshot) -> Value {
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
           "Stddev": var.sqrt(), "Labels": labels_json(labels)})
}

/// Consul's `/v1/agent/metrics` body. `now_unix` is the timestamp (seconds).
fn consul_json(r: &Report, now_unix: u64) -> Value {
    let gauges: Vec<Value> = gauges(r)
        .into_iter()
        .map(|(n, l, v)| json!({"Name": format!("cairn.{n}"), "Value": v as f64, "Labels": labels_json(&l)}))
        .collect();
    let mut counters: Vec<Value> = dns_cells(&r.dns)
        .map(|(t, rc, n)| counter_json("cairn.dns.queries", &[("type", t.to_string()), ("rcode", rc)], n))
        .collect();
    counters.push(counter_json("cairn.dns.cache.hits", &[], r.dns.cache_hits));
    counters.push(counter_json("cairn.dns.cache.misses", &[], r.dns.cache_misses));
    let mut samples = vec![
        sample_json("cairn.dns.query_time", &[], &dns_latency(&r.dns)),
        sample_json("cairn.raft.apply", &[], &r.raft_apply),
        sample_json("cairn.catalog.snapshot_publish", &[], &r.snapshot_publish),
    ];
    let consul = consul_series(r);
    let mut gauges = gauges;
    gauges.extend(
        consul.gauges.iter().map(|(n, l, v)| json!({"Name": n, "Value": v, "Labels": labels_json(l)})),
    );
    counters.extend(consul.counters.iter().map(|(n, l, v)| counter_json(n, l, *v)));
    samples.extend(consul.timers.iter().map(|(n, l, t)| {
        json!({"Name": n, "Count": t.count, "Sum": t.sum, "Min": t.min, "Max": t.max, "Mean": t.mean(),
               "Stddev": t.stddev(), "Labels": labels_json(l)})
    }));
    samples.extend(consul.histograms.iter().map(|(n, l, h)| sample_json(n, l, h)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::render::sample_report;

    #[test]
    fn consul_shape() {
        let v = consul_json(&sample_report(), 1_700_000_000);
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
    fn timestamps() {
        assert_eq!(go_timestamp(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_timestamp(951_782_400), "2000-02-29 00:00:00 +0000 UTC");
    }
}
