//! DNS counters: queries by type and response code, answer-cache hits and misses, and a
//! latency histogram.
//!
//! A UDP loop owns one `DnsCounters` and is its only writer: `record` does a relaxed load
//! and store per count (a plain move on x86, no locked instruction), reads the type and
//! rcode from the reply bytes without allocating, and touches only this loop's cache lines
//! (the struct is aligned to 128 bytes). The shared instance (TCP, forwarded queries) uses
//! `record_shared`, a `fetch_add`. Scrapes read every cell with relaxed loads.
//! The alignment is one `#[repr(align(128))]` rather than crossbeam-utils' `CachePadded`
//! (in the tree through memberlist, not a direct dependency): the same 128 bytes on x86-64
//! and aarch64, without a wrapper type around every counter set.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Query types counted by name; everything else is counted as `OTHER`.
pub(crate) const QTYPES: [(u16, &str); 10] = [
    (1, "A"),
    (28, "AAAA"),
    (33, "SRV"),
    (12, "PTR"),
    (16, "TXT"),
    (6, "SOA"),
    (2, "NS"),
    (5, "CNAME"),
    (15, "MX"),
    (255, "ANY"),
];
/// Rows of the type x rcode matrix: the named types and `OTHER`.
const TYPES: usize = QTYPES.len() + 1;
/// Response codes of the 4-bit header field.
const RCODES: usize = 16;
/// Latency bucket upper bounds, nanoseconds: 1 µs to 100 ms (a last, unbounded bucket follows).
pub(crate) const LATENCY_BOUNDS_NS: [u64; 14] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// The name of an rcode (RFC 1035/2136/6895), or `RCODE<n>`.
pub(crate) fn rcode_name(rcode: usize) -> String {
    let known = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET",
        "NOTAUTH", "NOTZONE",
    ];
    known.get(rcode).map_or_else(|| format!("RCODE{rcode}"), |s| (*s).to_string())
}

/// One writer's DNS counters; see the module docs.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct DnsCounters {
    queries: [[AtomicU64; RCODES]; TYPES],
    latency: [AtomicU64; BUCKETS],
    latency_sum_ns: AtomicU64,
    /// The PTR queries' share of `latency` (Consul times them apart: `consul.dns.ptr_query`).
    ptr_latency: [AtomicU64; BUCKETS],
    ptr_latency_sum_ns: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

impl Default for DnsCounters {
    fn default() -> Self {
        Self {
            queries: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            ptr_latency: std::array::from_fn(|_| AtomicU64::new(0)),
            ptr_latency_sum_ns: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        }
    }
}

/// `a += n` by its only writer: no locked instruction.
#[inline]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

/// The PTR question type.
const PTR: u16 = 12;

/// The row of `qtype` in the matrix.
#[inline]
fn type_index(qtype: u16) -> usize {
    QTYPES.iter().position(|&(t, _)| t == qtype).unwrap_or(QTYPES.len())
}

/// The bucket of a latency.
#[inline]
fn bucket(ns: u64) -> usize {
    LATENCY_BOUNDS_NS.partition_point(|&b| b < ns)
}

/// The question type and rcode of a DNS reply, read in place (`None` if it has no question).
#[inline]
pub(crate) fn type_and_rcode(reply: &[u8]) -> (Option<u16>, usize) {
    let rcode = reply.get(3).map_or(0, |b| usize::from(b & 0x0f));
    let qdcount = match (reply.get(4), reply.get(5)) {
        (Some(&h), Some(&l)) => u16::from_be_bytes([h, l]),
        _ => 0,
    };
    if qdcount == 0 {
        return (None, rcode);
    }
    let mut pos = 12usize;
    // At most 128 labels fit in a 255-byte name.
    for _ in 0..128 {
        let Some(&len) = reply.get(pos) else { return (None, rcode) };
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xc0 != 0 {
            pos += 2;
            break;
        }
        pos += 1 + usize::from(len);
    }
    match (reply.get(pos), reply.get(pos + 1)) {
        (Some(&h), Some(&l)) => (Some(u16::from_be_bytes([h, l])), rcode),
        _ => (None, rcode),
    }
}

impl DnsCounters {
    /// Counts one reply and its latency; the calling thread must be the only writer.
    #[inline]
    pub(crate) fn record(&self, reply: &[u8], latency_ns: u64) {
        let (qtype, rcode) = type_and_rcode(reply);
        let row = qtype.map_or(QTYPES.len(), type_index);
        if let Some(cell) = self.queries.get(row).and_then(|r| r.get(rcode)) {
            bump(cell, 1);
        }
        if let Some(b) = self.latency.get(bucket(latency_ns)) {
            bump(b, 1);
        }
        bump(&self.latency_sum_ns, latency_ns);
        if qtype == Some(PTR) {
            if let Some(b) = self.ptr_latency.get(bucket(latency_ns)) {
                bump(b, 1);
            }
            bump(&self.ptr_latency_sum_ns, latency_ns);
        }
    }

    /// Like `record`, for counters with several writers.
    pub(crate) fn record_shared(&self, reply: &[u8], latency_ns: u64) {
        let (qtype, rcode) = type_and_rcode(reply);
        let row = qtype.map_or(QTYPES.len(), type_index);
        if let Some(cell) = self.queries.get(row).and_then(|r| r.get(rcode)) {
            cell.fetch_add(1, Relaxed);
        }
        if let Some(b) = self.latency.get(bucket(latency_ns)) {
            b.fetch_add(1, Relaxed);
        }
        self.latency_sum_ns.fetch_add(latency_ns, Relaxed);
        if qtype == Some(PTR) {
            if let Some(b) = self.ptr_latency.get(bucket(latency_ns)) {
                b.fetch_add(1, Relaxed);
            }
            self.ptr_latency_sum_ns.fetch_add(latency_ns, Relaxed);
        }
    }

    /// Publishes a loop's answer-cache counters (cumulative; only writer).
    #[inline]
    pub(crate) fn set_cache(&self, hits: u64, misses: u64) {
        self.cache_hits.store(hits, Relaxed);
        self.cache_misses.store(misses, Relaxed);
    }

    /// Adds to the cache counters of a shared instance.
    #[cfg(test)]
    pub(crate) fn add_cache_shared(&self, hits: u64, misses: u64) {
        self.cache_hits.fetch_add(hits, Relaxed);
        self.cache_misses.fetch_add(misses, Relaxed);
    }

    /// The current values.
    pub(crate) fn totals(&self) -> DnsTotals {
        DnsTotals {
            queries: std::array::from_fn(|t| std::array::from_fn(|r| self.queries[t][r].load(Relaxed))),
            latency: std::array::from_fn(|b| self.latency[b].load(Relaxed)),
            latency_sum_ns: self.latency_sum_ns.load(Relaxed),
            ptr_latency: std::array::from_fn(|b| self.ptr_latency[b].load(Relaxed)),
            ptr_latency_sum_ns: self.ptr_latency_sum_ns.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            cache_misses: self.cache_misses.load(Relaxed),
        }
    }
}

/// DNS counters summed over writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsTotals {
    /// Replies by question type (rows: `QTYPES` then other) and rcode (columns).
    pub queries: [[u64; RCODES]; TYPES],
    /// Latency histogram (not cumulative), buckets per `LATENCY_BOUNDS_NS` plus one.
    pub latency: [u64; BUCKETS],
    /// Sum of latencies, nanoseconds.
    pub latency_sum_ns: u64,
    /// The PTR queries' share of `latency`.
    pub ptr_latency: [u64; BUCKETS],
    /// The PTR queries' share of `latency_sum_ns`.
    pub ptr_latency_sum_ns: u64,
    /// Answers copied from the answer cache.
    pub cache_hits: u64,
    /// Answers rendered by the full path.
    pub cache_misses: u64,
}

impl DnsTotals {
    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: &Self) {
        for (row, orow) in self.queries.iter_mut().zip(&other.queries) {
            for (c, o) in row.iter_mut().zip(orow) {
                *c += o;
            }
        }
        for (b, o) in self.latency.iter_mut().zip(&other.latency) {
            *b += o;
        }
        self.latency_sum_ns += other.latency_sum_ns;
        for (b, o) in self.ptr_latency.iter_mut().zip(&other.ptr_latency) {
            *b += o;
        }
        self.ptr_latency_sum_ns += other.ptr_latency_sum_ns;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
    }

    /// The type name of row `t`.
    pub(crate) fn type_name(t: usize) -> &'static str {
        QTYPES.get(t).map_or("OTHER", |&(_, n)| n)
    }

    /// Total replies counted.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.queries.iter().flatten().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(qname: &[u8], qtype: u16, rcode: u8) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x84, rcode, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(qname);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    #[test]
    fn reads_type_and_rcode_in_place() {
        let name = b"\x03web\x07service\x06consul\x00";
        assert_eq!(type_and_rcode(&reply(name, 33, 0)), (Some(33), 0));
        assert_eq!(type_and_rcode(&reply(name, 1, 3)), (Some(1), 3));
        assert_eq!(type_and_rcode(&reply(b"\x00", 2, 5)), (Some(2), 5));
        // No question, truncated, garbage: counted without a type, never a panic.
        assert_eq!(type_and_rcode(&[0, 0, 0x80, 1, 0, 0]), (None, 1));
        assert_eq!(type_and_rcode(&reply(name, 1, 0)[..20]), (None, 0));
        assert_eq!(type_and_rcode(&[]), (None, 0));
        assert_eq!(type_and_rcode(&[0xff; 300]).1, 15);
    }

    #[test]
    fn counts_by_type_rcode_and_latency() {
        let c = DnsCounters::default();
        c.record(&reply(b"\x00", 1, 0), 800);
        c.record(&reply(b"\x00", 1, 3), 3_000);
        c.record_shared(&reply(b"\x00", 99, 0), 2_000_000_000);
        let t = c.totals();
        assert_eq!(t.queries[0][0], 1);
        assert_eq!(t.queries[0][3], 1);
        assert_eq!(t.queries[QTYPES.len()][0], 1);
        assert_eq!(t.latency[0], 1);
        assert_eq!(t.latency[2], 1);
        assert_eq!(t.latency[BUCKETS - 1], 1);
        assert_eq!(t.total(), 3);
        assert_eq!(align_of::<DnsCounters>(), 128);
    }
}
