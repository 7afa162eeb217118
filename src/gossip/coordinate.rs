//! COORDINATE FEED: every agent proposes its own Vivaldi coordinate (`gossip::vivaldi`) to the
//! catalog, so `/v1/coordinate/*` (and, later, `?near=`) see every node's estimate.
//!
//! Input: this agent's coordinate from its gossip pool and the catalog's copy of it. Output:
//! `Command::CoordinateBatch` proposals (through `Consensus`, so a client agent's go through
//! its server; concurrent ones share a Raft entry, `raft::batch`).
//!
//! Invariants: a feed proposes only a change (a coordinate equal to the stored one is not
//! sent again) and only once the agent's node is in the catalog (the state machine skips
//! unknown nodes); the period is Consul's coordinate update period (5 s), stretched as
//! Consul's `aeScale` does beyond 128 nodes, so a large pool does not flood Raft.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Lan;
use crate::catalog::Command;
use crate::catalog::operator::CoordinateEntry;
use crate::consensus::Consensus;

/// Consul's `CoordinateUpdatePeriod`.
const PERIOD: Duration = Duration::from_secs(5);
/// The first proposal waits this long (the node registers first).
const FIRST: Duration = Duration::from_secs(1);

/// `PERIOD` scaled for `nodes` nodes (Consul's `aeScale`: one more period per doubling past
/// 128).
fn period(nodes: usize) -> Duration {
    if nodes <= 128 {
        return PERIOD;
    }
    let extra = ((nodes as f64).log2() - 128f64.log2()).ceil();
    PERIOD * (extra as u32 + 1)
}

/// Runs until `stop` fires.
pub(crate) async fn run(gossip: Arc<Lan>, consensus: Consensus, node: String, stop: CancellationToken) {
    let mut wait = FIRST;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let snap = consensus.snapshots().load_full();
        wait = period(snap.catalog.node_count());
        if snap.catalog.node(&node).is_none() {
            wait = FIRST;
            continue;
        }
        let coord = gossip.coordinate();
        let stored = snap
            .catalog
            .operator()
            .node_coordinates(&node)
            .find(|e| e.segment.is_empty())
            .map(|e| e.coord.clone());
        if stored.as_ref() == Some(&coord) {
            continue;
        }
        let entry = CoordinateEntry { node: node.clone(), segment: String::new(), coord };
        if let Err(e) = consensus.propose(Command::CoordinateBatch(vec![entry])).await {
            tracing::debug!(error = %e, "coordinate update not proposed; the next period retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_stretches_past_128_nodes() {
        assert_eq!(period(1), PERIOD);
        assert_eq!(period(128), PERIOD);
        assert_eq!(period(129), PERIOD * 2);
        assert_eq!(period(256), PERIOD * 2);
        assert_eq!(period(1000), PERIOD * 4);
    }
}
