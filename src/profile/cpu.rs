//! CPU PROFILE of the whole process, for `/debug/pprof/profile?seconds=N`.
//!
//! Input: how long to profile → output: pprof protobuf, gzipped, as Go's `runtime/pprof`
//! writes it (`samples`/`count` and `cpu`/`nanoseconds`, period 10 ms).
//!
//! pprof-rs (tikv) arms `setitimer(ITIMER_PROF)` at 100 Hz, Go's rate; each SIGPROF walks the
//! interrupted thread's stack into preallocated buckets (no allocation, a spin lock, never a
//! futex), and the report symbolizes them. Its signal-safety caveat: libgcc's unwinder is not
//! async-signal-safe, so a tick landing inside libc, libgcc, pthread or the vDSO (where a
//! walk could deadlock or read bad unwind tables) is skipped: the `blocklist` below, as
//! pprof-rs recommends. Those ticks are lost, not misattributed.
//!
//! Invariants: one profile at a time, as Go (`cpu profiling already in use` for a second);
//! the profiler is stopped when the window ends or the request goes away (the guard's drop).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::ProfileError;

/// Go's CPU profiling rate.
const HZ: i32 = 100;

static RUNNING: AtomicBool = AtomicBool::new(false);

/// Clears `RUNNING` when the profile ends, however it ends.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// Cuts the sampler's own frames (the stack walk, the SIGPROF handler and the kernel's signal
/// trampoline) so that a stack starts at the interrupted function, as Go's do.
fn from_interrupted(frames: &mut pprof::Frames) {
    let sampler = |f: &Vec<pprof::Symbol>| {
        f.iter().any(|s| {
            let n = s.name();
            n.starts_with("backtrace::") || n.contains("pprof::") || n.contains("perf_signal_handler")
        })
    };
    let Some(last) = frames.frames.iter().take(8).rposition(sampler) else { return };
    let mut cut = last + 1;
    let trampoline = |f: &Vec<pprof::Symbol>| {
        f.iter().all(|s| s.name.is_none() || s.name().contains("restore_rt") || s.name() == "Unknown")
    };
    if frames.frames.get(cut).is_some_and(trampoline) {
        cut += 1;
    }
    frames.frames.drain(..cut.min(frames.frames.len()));
}

/// Profiles the process's CPU for `window`; the gzipped pprof protobuf.
pub(crate) async fn profile(window: Duration) -> Result<Vec<u8>, ProfileError> {
    if RUNNING.swap(true, Ordering::AcqRel) {
        return Err(ProfileError::CpuBusy);
    }
    let running = Running;
    let guard = tokio::task::spawn_blocking(|| {
        pprof::ProfilerGuardBuilder::default()
            .frequency(HZ)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
    })
    .await
    .map_err(|e| ProfileError::Sampler(e.to_string()))?
    .map_err(|e| ProfileError::Sampler(e.to_string()))?;
    tokio::time::sleep(window).await;
    let bytes = tokio::task::spawn_blocking(move || {
        let report = guard
            .report()
            .frames_post_processor(from_interrupted)
            .build()
            .map_err(|e| ProfileError::Sampler(e.to_string()))?;
        drop(guard);
        let profile = report.pprof().map_err(|e| ProfileError::Sampler(e.to_string()))?;
        super::gzip_profile(&profile)
    })
    .await
    .map_err(|e| ProfileError::Sampler(e.to_string()))?;
    drop(running);
    bytes
}
