//! CLOCK: the wall clock proposers stamp on commands that need one (KV lock-delays,
//! session expiry).
//!
//! Input: the system clock. Output: Unix milliseconds.
//! Invariant: read by proposers and the leader, never by `catalog::apply` (which must stay
//! deterministic: it only sees the `now_ms` a command carries).

/// Unix milliseconds: the clock KV and session commands carry (read by proposers, never by
/// `apply`).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
