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
        // The gauges are the whole process's, and the other tests of this binary allocate and
        // free beside this one: a block far larger than their noise, and a few tries, so one
        // try without a large concurrent free shows the block come and go.
        const BLOCK: u64 = 256 << 20;
        let mut seen = Vec::new();
        for _ in 0..8 {
            let before = load().expect("glibc");
            let block = vec![1u8; BLOCK as usize];
            let during = load().expect("glibc");
            drop(std::hint::black_box(block));
            let after = load().expect("glibc");
            let held = during.alloc_bytes.saturating_sub(before.alloc_bytes);
            let released = during.alloc_bytes.saturating_sub(after.alloc_bytes);
            if held >= BLOCK && released >= BLOCK && during.sys_bytes >= during.alloc_bytes {
                return;
            }
            seen.push((before, during, after));
        }
        panic!("the block never showed in alloc_bytes: {seen:?}");
    }
}
