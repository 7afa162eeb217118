//! The process's heap, as `consul.runtime.alloc_bytes` and `consul.runtime.sys_bytes` (Go's
//! `MemStats.Alloc` and `Sys` in Consul).
//!
//! Read from the C allocator cairn's Rust allocator sits on (glibc malloc, through `std`'s
//! `System`): `mallinfo2()` sums every arena. `alloc_bytes` is the bytes handed out and not yet
//! freed (`uordblks`, chunks in the arenas, plus `hblkhd`, the large allocations malloc maps on
//! their own); `sys_bytes` is what malloc holds from the kernel for them (`arena`, the arenas'
//! size, plus `hblkhd`). Neither is resident memory: a freed chunk's page may stay mapped and
//! count in `sys_bytes`, and memory not from malloc (stacks, LMDB's map) counts in neither.
//!
//! Why no counting allocator of our own: a live-bytes counter updated on every allocation is a
//! shared atomic on the DNS path (or per-thread cells to sum), while malloc already keeps these
//! sums and `mallinfo2` reads them at scrape time. It locks each arena briefly, once per scrape.
//! Other C libraries (musl) have no `mallinfo2`: there the gauges are absent, never made up.
//! `consul.runtime.heap_objects` (live object count) stays absent: malloc does not count objects.

/// The heap's two sums, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeapUsage {
    /// Bytes allocated and not yet freed.
    pub alloc_bytes: u64,
    /// Bytes malloc holds from the kernel.
    pub sys_bytes: u64,
}

/// The heap's sums now, where the C library can say.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn load() -> Option<HeapUsage> {
    // SAFETY: mallinfo2 takes no arguments, returns a plain struct by value and only reads
    // malloc's own bookkeeping under its arena locks (glibc 2.33 and newer).
    let info = unsafe { libc::mallinfo2() };
    let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Some(HeapUsage {
        alloc_bytes: to_u64(info.uordblks).saturating_add(to_u64(info.hblkhd)),
        sys_bytes: to_u64(info.arena).saturating_add(to_u64(info.hblkhd)),
    })
}

/// The heap's sums now, where the C library can say: not on this target.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn load() -> Option<HeapUsage> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_live_allocation_shows_in_alloc_bytes() {
        let before = load().expect("glibc").alloc_bytes;
        let block = vec![1u8; 64 << 20];
        let during = load().expect("glibc");
        assert!(during.alloc_bytes >= before + (64 << 20), "{before} -> {during:?}");
        assert!(during.sys_bytes >= during.alloc_bytes - (64 << 20));
        drop(block);
        let after = load().expect("glibc").alloc_bytes;
        assert!(after + (32 << 20) < during.alloc_bytes, "{during:?} -> {after}");
    }
}
