//! BENCH ENTRY: the in-memory half of `StateMachine::apply`, for `benches/publish.rs`.
//!
//! `apply_and_publish` repeats, for one log entry, what `StateMachine::apply` does around
//! its LMDB write transaction: apply the command to a copy of the state, freeze a copy for
//! the writer, adopt the new state and publish it. The LMDB commit (and its data sync) is left
//! out on purpose, so the bench measures what a change costs in memory as the catalog grows.
//! Not an API: hidden from the docs, like `dns::fuzz_logic`.

use crate::catalog::{CatalogState, Change};
use crate::catalog::{Command, CommandResponse, apply};
use crate::snapshot::{CatalogSnapshot, SnapshotHandle};

/// Applies `cmd` at log index `index` to `state` the way the state machine does, and
/// publishes the result to `snapshots`. Returns the command's response and the number of
/// rows the LMDB write would have written.
pub fn apply_and_publish(
    state: &mut CatalogState,
    index: u64,
    cmd: &Command,
    snapshots: &SnapshotHandle,
) -> (CommandResponse, usize) {
    let mut next = state.clone();
    let mut changes: Vec<Change> = Vec::new();
    let response = apply::apply(&mut next, index, cmd, &mut changes);
    // The copy `StateMachine::apply` hands to the LMDB writer, dropped once it committed.
    let frozen = next.clone();
    let rows = changes.len();
    drop((frozen, changes));
    *state = next;
    snapshots.publish(CatalogSnapshot { index, catalog: state.clone() });
    (response, rows)
}
