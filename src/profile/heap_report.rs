//! The heap profile out of the sampler's counts (`heap`): pprof protobuf with Go's sample
//! types, or Go's legacy text (`?debug=1`).
//!
//! Counts are scaled as Go's `scaleHeapSample` does: a stack whose sampled blocks average
//! `s` bytes was sampled with probability `1 - exp(-s / RATE)`, so its counts are divided by
//! that. Frames of the allocator and the sampler (leafward of `__rust_alloc` and kin) are
//! cut, as Go cuts `runtime.mallocgc`: a stack starts at the code that asked for memory.
//!
//! Note: symbolizing (here and for CPU profiles) loads the binary's DWARF once and keeps it
//! (backtrace-rs's cache); the first profile of a process therefore shows that memory, tens
//! of MB for a debug build, a few for a release one (`debug = "line-tables-only"`).

use std::fmt::Write as _;

use super::heap::{self, RATE, StackCounts};
use super::{ProfileBuilder, symbols};

/// Function names whose frames, and every frame leafward of them, belong to the allocator.
const ALLOCATOR: &[&str] = &[
    "__rust_alloc",
    "__rust_realloc",
    "__rust_dealloc",
    "__rustc::",
    "cairn::profile::heap::",
    "<cairn::profile::heap::",
];

/// The heap profile as pprof protobuf (not yet gzipped).
pub(crate) fn profile() -> pprof::protos::Profile {
    let mut b = ProfileBuilder::new(
        &[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ],
        ("space", "bytes", RATE as i64),
    );
    b.timed(std::time::SystemTime::now(), std::time::Duration::ZERO);
    if let Some(since) = heap::started() {
        let secs = since.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        b.comment(&format!("cairn heap sampling since Unix time {secs}; earlier allocations are not in it"));
    }
    for s in heap::stacks() {
        let ids: Vec<u64> = s.ips.iter().enumerate().map(|(i, ip)| b.location(*ip as u64, i == 0)).collect();
        let keep = ids.iter().rposition(|id| b.names(*id).any(is_allocator)).map_or(0, |i| i + 1);
        let (ao, ab) = scale(s.allocs, s.alloc_bytes);
        let (io, ib) = scale(s.allocs - s.frees, s.alloc_bytes - s.free_bytes);
        b.sample(ids[keep..].to_vec(), vec![ao, ab, io, ib], &[]);
    }
    b.finish()
}

fn is_allocator(name: &str) -> bool {
    ALLOCATOR.iter().any(|p| name.starts_with(p))
}

/// Go's `scaleHeapSample`: sampled (count, bytes) → estimated totals.
fn scale(count: u64, bytes: u64) -> (i64, i64) {
    if count == 0 || bytes == 0 {
        return (0, 0);
    }
    let avg = bytes as f64 / count as f64;
    let scale = 1.0 / (1.0 - (-avg / RATE as f64).exp());
    ((count as f64 * scale) as i64, (bytes as f64 * scale) as i64)
}

/// Go's legacy text heap profile (`?debug=1`): raw sampled counts per stack, then its frames.
pub(crate) fn text() -> String {
    let stacks = heap::stacks();
    let total = |f: fn(&StackCounts) -> u64| stacks.iter().map(f).sum::<u64>();
    let mut out = format!(
        "heap profile: {}: {} [{}: {}] @ heap/{}\n",
        total(|s| s.allocs - s.frees),
        total(|s| s.alloc_bytes - s.free_bytes),
        total(|s| s.allocs),
        total(|s| s.alloc_bytes),
        2 * RATE
    );
    for s in &stacks {
        let frames: Vec<(usize, symbols::Frame)> = s
            .ips
            .iter()
            .enumerate()
            .flat_map(|(i, ip)| symbols::resolve(*ip as u64, i == 0).into_iter().map(move |f| (*ip, f)))
            .collect();
        let keep = frames.iter().rposition(|(_, f)| is_allocator(&f.name)).map_or(0, |i| i + 1);
        let frames = &frames[keep..];
        let _ = write!(
            out,
            "{}: {} [{}: {}] @",
            s.allocs - s.frees,
            s.alloc_bytes - s.free_bytes,
            s.allocs,
            s.alloc_bytes
        );
        let mut last = None;
        for (ip, _) in frames {
            if last != Some(*ip) {
                let _ = write!(out, " {ip:#x}");
                last = Some(*ip);
            }
        }
        out.push('\n');
        for (ip, f) in frames {
            let _ = writeln!(out, "#\t{ip:#x}\t{}\t{}:{}", f.name, f.file, f.line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_matches_go() {
        // One sampled block of exactly RATE bytes: probability 1 - 1/e.
        let (n, b) = scale(1, RATE);
        assert_eq!(n, 1);
        assert_eq!(b, (RATE as f64 / (1.0 - (-1f64).exp())) as i64);
        assert_eq!(scale(0, 0), (0, 0));
        // Large blocks are always sampled: no scaling.
        assert_eq!(scale(2, 200 * RATE), (2, 200 * RATE as i64));
    }

    #[test]
    fn allocator_frames_are_recognised() {
        assert!(is_allocator("__rustc::__rust_alloc"));
        assert!(is_allocator(
            "<cairn::profile::heap::SamplingAlloc as core::alloc::global::GlobalAlloc>::alloc"
        ));
        assert!(!is_allocator("alloc::raw_vec::RawVec<T,A>::grow_one"));
    }
}
