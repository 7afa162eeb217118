//! Read options and blocking queries: `?index=&wait=`, `?stale`/`?consistent`, `?pretty`.
//!
//! Input: query parameters → `ReadOptions`; then a snapshot handle, the client's index and an
//! endpoint-specific index function → the first snapshot whose endpoint index exceeds the
//! client's, or the current snapshot when the (jittered) wait runs out.
//! Invariants: `index=0` or no index never blocks; `wait` defaults to 5 min, is capped at
//! 10 min and gets up to `wait/16` random jitter; waking is driven by `SnapshotHandle::subscribe`
//! (no polling); errors are Consul's `Invalid index`, `Invalid wait time` and the
//! stale/consistent conflict.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::error::ApiError;
use super::query::Query;
use crate::agent::parse_go_duration;
use crate::snapshot::{CatalogSnapshot, SnapshotHandle};

/// Consul's `default_query_time`.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Consul's `max_query_time`.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(600);
/// `structs.JitterFraction`.
const JITTER_FRACTION: u32 = 16;

/// Requested consistency mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consistency {
    /// Default mode.
    Leader,
    /// `?stale` (or `?max_stale`).
    Stale,
    /// `?consistent`.
    Consistent,
}

impl Consistency {
    /// The `X-Consul-Effective-Consistency` value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Stale => "stale",
            Self::Consistent => "consistent",
        }
    }
}

/// Parsed read parameters shared by catalog and health endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadOptions {
    /// `?index` (0: do not block).
    pub(crate) min_index: u64,
    /// `?wait`, defaulted and capped, without jitter.
    pub(crate) wait: Duration,
    /// Consistency mode.
    pub(crate) consistency: Consistency,
}

/// Parses `index`, `wait`, `stale`, `consistent`, `max_stale` and `leader`.
pub(crate) fn parse_read_options(q: &Query) -> Result<ReadOptions, ApiError> {
    let min_index = match q.get("index") {
        None => 0,
        Some(s) => s.parse::<u64>().map_err(|_| ApiError::BadRequest("Invalid index".into()))?,
    };
    let wait = match q.get("wait") {
        None => DEFAULT_WAIT,
        Some(s) => {
            let d = parse_go_duration(s).map_err(|_| ApiError::BadRequest("Invalid wait time".into()))?;
            if d.is_zero() { DEFAULT_WAIT } else { d.min(MAX_WAIT) }
        }
    };
    let mut stale = q.has("stale");
    if let Some(s) = q.get("max_stale") {
        parse_go_duration(s).map_err(|_| ApiError::BadRequest("Invalid max_stale value".into()))?;
        stale = true;
    }
    let consistent = q.has("consistent");
    if stale && consistent {
        return Err(ApiError::BadRequest(
            "Cannot specify ?stale with ?consistent, conflicting semantics.".into(),
        ));
    }
    let consistency = if q.has("leader") {
        Consistency::Leader
    } else if stale {
        Consistency::Stale
    } else if consistent {
        Consistency::Consistent
    } else {
        Consistency::Leader
    };
    Ok(ReadOptions { min_index, wait, consistency })
}

/// `wait` plus a random extra of up to `wait/16`.
pub(crate) fn with_jitter(wait: Duration) -> Duration {
    let max = (wait / JITTER_FRACTION).as_nanos();
    let max = u64::try_from(max).unwrap_or(u64::MAX);
    if max == 0 {
        return wait;
    }
    wait + Duration::from_nanos(rand::random_range(0..max))
}

/// Waits until `index_of(snapshot) > min_index` or `wait` elapses; returns the snapshot to
/// answer from. `min_index == 0` returns the current snapshot at once.
pub(crate) async fn wait_for<F>(
    snapshots: &SnapshotHandle,
    min_index: u64,
    wait: Duration,
    index_of: F,
) -> Arc<CatalogSnapshot>
where
    F: Fn(&CatalogSnapshot) -> u64,
{
    // Subscribe before loading so a publish between the two is not missed.
    let mut published = snapshots.subscribe();
    let mut snapshot = snapshots.load_full();
    if min_index == 0 {
        return snapshot;
    }
    let deadline = Instant::now() + wait;
    loop {
        if index_of(&snapshot) > min_index {
            return snapshot;
        }
        tokio::select! {
            r = published.changed() => {
                if r.is_err() {
                    return snapshot;
                }
            }
            () = sleep_until(deadline) => return snapshots.load_full(),
        }
        snapshot = snapshots.load_full();
    }
}
