//! HEAP SAMPLING: a wrapper around the system allocator that records a sample of allocations
//! with their stacks, for `/debug/pprof/heap` (and `allocs`).
//!
//! Input: every allocation and free of the process (`SamplingAlloc` is the binary's
//! `#[global_allocator]`) → output: per stack, how many sampled allocations and bytes were
//! made and how many are still live (`report`).
//!
//! How, as Go's runtime does it: each thread counts down the bytes it allocates; when the
//! count passes zero the allocation is sampled (its stack walked, its address kept) and the
//! next distance is drawn from an exponential distribution of mean `RATE` (512 KiB, Go's
//! `MemProfileRate`), so every byte has the same chance to be sampled whatever the sizes.
//! A free looks its address up only if a counting filter says a sample may live there.
//! `heap_report` scales the counts back to estimates as Go's `scaleHeapSample` does.
//!
//! Invariants: while off (`start` never called) an allocation or free costs one relaxed
//! atomic load more than the system allocator; on, an unsampled allocation costs a
//! thread-local subtraction and an unsampled free one more relaxed load. The sampler's own
//! allocations (its maps, the stack walk) are never sampled: a thread inside the sampler is
//! marked busy and its allocations pass straight through, which also keeps it from taking
//! the registry lock twice. Nothing here panics (a panic in an allocator aborts).
//!
//! Why our own code: the maintained alternative is jemalloc with its profiler
//! (tikv-jemallocator + jemalloc_pprof). It would replace the allocator of the whole process
//! (and the DNS path's measured numbers) to get a profile, build jemalloc's C sources, and
//! its dumps carry raw addresses that need the binary beside them to read. A wrapper of the
//! system allocator keeps the allocator cairn is measured with, and samples into stacks we
//! symbolize ourselves, in about two hundred lines.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Mean bytes between two samples (Go's `runtime.MemProfileRate`).
pub(crate) const RATE: u64 = 512 * 1024;
/// Deepest stack kept per sample.
const DEPTH: usize = 64;
/// Slots of the counting filter of sampled addresses (a power of two).
const FILTER_SLOTS: usize = 1 << 14;

/// The system allocator, sampling allocations once `start` was called.
pub struct SamplingAlloc;

static ON: AtomicBool = AtomicBool::new(false);
/// When sampling started (Unix milliseconds; 0: never).
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static FILTER: [AtomicU32; FILTER_SLOTS] = [const { AtomicU32::new(0) }; FILTER_SLOTS];
static REGISTRY: Mutex<Registry> = Mutex::new(Registry::new());

thread_local! {
    /// Bytes this thread may still allocate before its next sample.
    static COUNTDOWN: Cell<i64> = const { Cell::new(0) };
    /// This thread's random state (xorshift64*); 0 until first used.
    static RNG: Cell<u64> = const { Cell::new(0) };
    /// Whether this thread is inside the sampler.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Starts sampling (idempotent). Allocations made before are not in any profile.
pub fn start() {
    if !ON.swap(true, Ordering::Relaxed) {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        STARTED_MS.store(now as u64, Ordering::Relaxed);
    }
}

/// When sampling started, if it did.
pub(crate) fn started() -> Option<std::time::SystemTime> {
    let ms = STARTED_MS.load(Ordering::Relaxed);
    (ms > 0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

// SAFETY (the impl): every method forwards to `System` with the caller's arguments unchanged
// and returns its pointer; the bookkeeping around it reads only the pointer's value and the
// size, never the memory.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for SamplingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System` has too.
        let p = unsafe { System.alloc(layout) };
        if ON.load(Ordering::Relaxed) && !p.is_null() {
            allocated(p as usize, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if ON.load(Ordering::Relaxed) && !p.is_null() {
            allocated(p as usize, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ON.load(Ordering::Relaxed) {
            freed(ptr as usize);
        }
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !ON.load(Ordering::Relaxed) {
            // SAFETY: as `dealloc`, and the caller upholds `realloc`'s contract.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Forgotten before the block can move: once freed, its address may be reused and
        // sampled by another thread.
        freed(ptr as usize);
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            allocated(p as usize, new_size);
        }
        p
    }
}

/// Runs `f` marked busy: its allocations are not sampled. `None` if already busy (or this
/// thread's locals are gone).
fn busy<T>(f: impl FnOnce() -> T) -> Option<T> {
    if BUSY.try_with(|b| b.replace(true)).unwrap_or(true) {
        return None;
    }
    let out = f();
    let _ = BUSY.try_with(|b| b.set(false));
    Some(out)
}

fn allocated(addr: usize, size: usize) {
    let due = COUNTDOWN
        .try_with(|c| {
            let left = c.get() - size as i64;
            c.set(left);
            left < 0
        })
        .unwrap_or(false);
    if !due {
        return;
    }
    busy(|| {
        // A thread's first pass only draws its distance (else every thread's first
        // allocation would be sampled).
        let first = RNG.try_with(Cell::get).unwrap_or(0) == 0;
        let _ = COUNTDOWN.try_with(|c| c.set(next_distance()));
        if first {
            return;
        }
        let mut ips = [0usize; DEPTH];
        let mut n = 0;
        // SAFETY: `trace_unsynchronized` requires no concurrent use of backtrace's
        // unsynchronized walkers that could race its global state; the libgcc unwinder it
        // uses here is thread-safe, and this thread is busy, so a nested call cannot happen.
        #[allow(unsafe_code)]
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                ips[n] = frame.ip() as usize;
                n += 1;
                n < DEPTH
            });
        }
        lock().record(addr, size, &ips[..n]);
        FILTER[slot(addr)].fetch_add(1, Ordering::Relaxed);
    });
}

fn freed(addr: usize) {
    if FILTER[slot(addr)].load(Ordering::Relaxed) == 0 {
        return;
    }
    busy(|| {
        if lock().forget(addr) {
            FILTER[slot(addr)].fetch_sub(1, Ordering::Relaxed);
        }
    });
}

fn slot(addr: usize) -> usize {
    ((addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FILTER_SLOTS.trailing_zeros())) as usize
}

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes until the next sample: exponential with mean `RATE` (Go's `fastexprand`).
fn next_distance() -> i64 {
    let mut x = RNG.try_with(Cell::get).unwrap_or(0);
    if x == 0 {
        // Seeded from this thread's stack address and the clock: distinct per thread.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        x = (&raw const x as u64) ^ t | 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    let _ = RNG.try_with(|c| c.set(x));
    let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    // Uniform in (0, 1], then -ln(u) * mean.
    let u = ((r >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    (-u.ln() * RATE as f64) as i64
}

/// One stack's sampled counts, raw (unscaled).
#[derive(Clone, Debug, Default)]
pub(crate) struct StackCounts {
    /// The stack, leaf first (return addresses but the first).
    pub(crate) ips: Vec<usize>,
    pub(crate) allocs: u64,
    pub(crate) alloc_bytes: u64,
    pub(crate) frees: u64,
    pub(crate) free_bytes: u64,
}

type Fixed = foldhash::fast::FixedState;

struct Registry {
    /// Live sampled blocks: address → (size, stack index).
    live: HashMap<usize, (usize, usize), Fixed>,
    index: HashMap<Vec<usize>, usize, Fixed>,
    stacks: Vec<StackCounts>,
}

impl Registry {
    const fn new() -> Self {
        Self {
            live: HashMap::with_hasher(Fixed::with_seed(0)),
            index: HashMap::with_hasher(Fixed::with_seed(0)),
            stacks: Vec::new(),
        }
    }

    fn record(&mut self, addr: usize, size: usize, ips: &[usize]) {
        let i = match self.index.get(ips) {
            Some(i) => *i,
            None => {
                let i = self.stacks.len();
                self.stacks.push(StackCounts { ips: ips.to_vec(), ..StackCounts::default() });
                self.index.insert(ips.to_vec(), i);
                i
            }
        };
        let s = &mut self.stacks[i];
        s.allocs += 1;
        s.alloc_bytes += size as u64;
        self.live.insert(addr, (size, i));
    }

    fn forget(&mut self, addr: usize) -> bool {
        let Some((size, i)) = self.live.remove(&addr) else { return false };
        let s = &mut self.stacks[i];
        s.frees += 1;
        s.free_bytes += size as u64;
        true
    }
}

/// Every sampled stack's counts so far.
pub(crate) fn stacks() -> Vec<StackCounts> {
    busy(|| lock().stacks.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_average_the_rate() {
        let n = 20_000;
        let sum: i64 = (0..n).map(|_| next_distance()).sum();
        let mean = sum as f64 / f64::from(n);
        assert!((mean - RATE as f64).abs() < RATE as f64 * 0.05, "mean {mean}");
    }

    #[test]
    fn registry_tracks_live_blocks_per_stack() {
        let mut r = Registry::new();
        r.record(0x1000, 100, &[1, 2, 3]);
        r.record(0x2000, 50, &[1, 2, 3]);
        r.record(0x3000, 10, &[4]);
        assert!(r.forget(0x1000));
        assert!(!r.forget(0x1000), "a block is forgotten once");
        assert!(!r.forget(0x9000), "an unsampled block is not counted");
        let s = &r.stacks[0];
        assert_eq!((s.allocs, s.alloc_bytes, s.frees, s.free_bytes), (2, 150, 1, 100));
        assert_eq!((r.stacks[1].allocs, r.stacks[1].frees), (1, 0));
    }

    #[test]
    fn filter_slots_stay_in_range() {
        for a in [0usize, 16, 0xdead_beef, usize::MAX] {
            assert!(slot(a) < FILTER_SLOTS);
        }
    }
}
