//! OPERATIONS: Consul's named counters and timers (`consul.kvs.apply`, `consul.http.GET.v1.kv._`,
//! …), kept beside cairn's own series so Consul's dashboards and alerts read the same names.
//!
//! Writers: the code path each name describes calls [`count`] or [`measure`] (HTTP requests,
//! proposals by command kind, state machine applies, sessions, prepared queries, server RPC);
//! these are far rarer than DNS queries, so one mutex-guarded map serves them. DNS timings stay
//! in the single-writer `dns` cells and are named at scrape time (`render`).
//! Reader: the scrape copies the map into the [`Report`](super::Report).
//!
//! Counters are cumulative since the agent started (Consul's in-memory sink keeps 10 s
//! intervals, its Prometheus sink cumulative counts, as here). A timer keeps count, sum, min,
//! max and the sum of squares (milliseconds), so its JSON sample's `Mean` and `Stddev` are exact.
//! The names and labels are Consul 1.8's (`tests/it/data/consul-metrics.txt` lists which ones
//! cairn emits and why the others are left out).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// Label pairs of one series, in the order given.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// One timer's observations (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timing {
    /// Observations.
    pub count: u64,
    /// Sum.
    pub sum: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Sum of squares (for the standard deviation).
    pub sum_sq: f64,
}

impl Timing {
    fn observe(&mut self, ms: f64) {
        if self.count == 0 {
            self.min = ms;
            self.max = ms;
        } else {
            self.min = self.min.min(ms);
            self.max = self.max.max(ms);
        }
        self.count += 1;
        self.sum += ms;
        self.sum_sq += ms * ms;
    }

    /// The mean, or 0 without observations.
    pub(crate) fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum / self.count as f64 }
    }

    /// The sample standard deviation (0 below two observations).
    pub(crate) fn stddev(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        let n = self.count as f64;
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0).sqrt()
    }
}

/// Every named counter and timer at one moment, sorted by name then labels.
#[derive(Debug, Clone, Default)]
pub(crate) struct NamedSeries {
    /// Counters.
    pub counters: BTreeMap<(String, Labels), u64>,
    /// Timers.
    pub timers: BTreeMap<(String, Labels), Timing>,
}

fn series() -> &'static Mutex<NamedSeries> {
    static SERIES: OnceLock<Mutex<NamedSeries>> = OnceLock::new();
    SERIES.get_or_init(Mutex::default)
}

/// Adds one to counter `name` with `labels`.
pub(crate) fn count(name: impl Into<String>, labels: Labels) {
    let mut s = series().lock().unwrap_or_else(PoisonError::into_inner);
    *s.counters.entry((name.into(), labels)).or_insert(0) += 1;
}

/// Records one duration of timer `name` with `labels`.
pub(crate) fn measure(name: impl Into<String>, labels: Labels, took: Duration) {
    let ms = took.as_secs_f64() * 1e3;
    let mut s = series().lock().unwrap_or_else(PoisonError::into_inner);
    s.timers
        .entry((name.into(), labels))
        .or_insert(Timing { count: 0, sum: 0.0, min: 0.0, max: 0.0, sum_sq: 0.0 })
        .observe(ms);
}

/// A copy of every series.
pub(crate) fn snapshot() -> NamedSeries {
    series().lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Consul's Prometheus name of `name`: every character but `[a-zA-Z0-9_:]` becomes `_`
/// (go-metrics' Prometheus sink), so `consul.http.GET.v1.kv._` is `consul_http_GET_v1_kv__`.
pub(crate) fn prometheus_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_exact() {
        let mut t = Timing { count: 0, sum: 0.0, min: 0.0, max: 0.0, sum_sq: 0.0 };
        for ms in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            t.observe(ms);
        }
        assert_eq!((t.count, t.min, t.max, t.mean()), (8, 2.0, 9.0, 5.0));
        assert!((t.stddev() - (32.0f64 / 7.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn prometheus_names_are_consuls() {
        assert_eq!(prometheus_name("consul.http.GET.v1.kv._"), "consul_http_GET_v1_kv__");
        assert_eq!(prometheus_name("consul.prepared-query.execute"), "consul_prepared_query_execute");
    }
}
