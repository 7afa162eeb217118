//! OPERATOR STATE: autopilot's configuration and the nodes' network coordinates, as
//! replicated catalog state (Consul's `autopilot-config` and `coordinates` tables).
//!
//! Stage: domain model, written only by `catalog::apply` (`Command::AutopilotSet`,
//! `Command::CoordinateBatch`), read by the leader's autopilot (`gossip::reconcile`) and the
//! HTTP layer (`/v1/operator/autopilot/*`, `/v1/coordinate/*`).
//! Input: a configuration (with an optional check-and-set index) or a batch of coordinates
//! the proposer built. Output: `OperatorState`.
//!
//! Invariants:
//! - `apply` is deterministic: a check-and-set compares against the stored `ModifyIndex`
//!   (index 0: only when no configuration is stored yet, as Consul's `AutopilotCASConfig`).
//! - A coordinate is stored only for a node the catalog knows, with Vivaldi's dimensionality
//!   (`COORDINATE_DIMENSIONS`) and finite components; others in a batch are skipped, as
//!   Consul's `CoordinateBatchUpdate` skips unknown nodes.
//! - The whole operator state is one LMDB row (`Change::Operator`): the autopilot
//!   configuration is rarely written, and coordinates arrive batched (one entry per agent
//!   every few seconds), so rewriting the row keeps the store simple and a reload exact.

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use super::{Change, key};

/// Dimensionality of a Vivaldi coordinate (Serf's `DefaultConfig().Dimensionality`).
pub(crate) const COORDINATE_DIMENSIONS: usize = 8;

/// Autopilot's settings (Consul's `structs.AutopilotConfig`); durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotConfig {
    /// Remove failed and left servers from the Raft configuration.
    pub cleanup_dead_servers: bool,
    /// A server whose leader contact is older than this is unhealthy.
    pub last_contact_threshold_ns: u64,
    /// A server this many log entries behind the leader is unhealthy.
    pub max_trailing_logs: u64,
    /// Dead-server cleanup never takes the voters below this many.
    pub min_quorum: u64,
    /// How long a new server must be healthy before it counts as stable.
    pub server_stabilization_time_ns: u64,
    /// Enterprise: redundancy zones (stored, not used).
    pub redundancy_zone_tag: String,
    /// Enterprise: upgrade migrations (stored, not used).
    pub disable_upgrade_migration: bool,
    /// Enterprise: upgrade version tag (stored, not used).
    pub upgrade_version_tag: String,
    /// Raft index that first stored a configuration.
    pub create_index: u64,
    /// Raft index that last changed it.
    pub modify_index: u64,
}

impl AutopilotConfig {
    /// Consul's defaults (`agent/config/default.go`), with `cleanup_dead_servers` as given.
    pub(crate) fn defaults(cleanup_dead_servers: bool) -> Self {
        Self {
            cleanup_dead_servers,
            last_contact_threshold_ns: 200_000_000,
            max_trailing_logs: 250,
            min_quorum: 0,
            server_stabilization_time_ns: 10_000_000_000,
            redundancy_zone_tag: String::new(),
            disable_upgrade_migration: false,
            upgrade_version_tag: String::new(),
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// A Vivaldi network coordinate (Serf's `coordinate.Coordinate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinate {
    /// The Euclidean part, `COORDINATE_DIMENSIONS` long.
    pub vec: Vec<f64>,
    /// The node's confidence in it (lower is better).
    pub error: f64,
    /// A per-node adjustment added to distances (seconds).
    pub adjustment: f64,
    /// The height above the Euclidean plane (seconds): the node's access-link latency.
    pub height: f64,
}

impl Coordinate {
    /// Whether it has Vivaldi's dimensionality and only finite components (Consul's
    /// `IsValid` and `IsCompatibleWith`).
    pub(crate) fn is_valid(&self) -> bool {
        self.vec.len() == COORDINATE_DIMENSIONS
            && self.vec.iter().chain([&self.error, &self.adjustment, &self.height]).all(|v| v.is_finite())
    }
}

/// One node's coordinate in one network segment (`structs.Coordinate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinateEntry {
    /// Node name.
    pub node: String,
    /// Network segment (Enterprise; always empty here).
    pub segment: String,
    /// The coordinate.
    pub coord: Coordinate,
}

/// The operator tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OperatorState {
    autopilot: Option<Arc<AutopilotConfig>>,
    /// `(node key, segment)` -> entry.
    coordinates: OrdMap<(String, String), Arc<CoordinateEntry>>,
    /// Raft index of the last coordinate batch that changed something.
    coordinates_index: u64,
}

/// Serialisable form of `OperatorState` (one LMDB row; in Raft snapshots and backups).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorDump {
    /// The autopilot configuration, once stored.
    #[serde(default)]
    pub autopilot: Option<AutopilotConfig>,
    /// Every coordinate.
    #[serde(default)]
    pub coordinates: Vec<CoordinateEntry>,
    /// Raft index of the last coordinate change.
    #[serde(default)]
    pub coordinates_index: u64,
}

impl OperatorDump {
    /// Nothing stored (left out of catalog dumps, so their bytes stay those of before).
    pub(crate) fn is_empty(&self) -> bool {
        self.autopilot.is_none() && self.coordinates.is_empty() && self.coordinates_index == 0
    }
}

impl OperatorState {
    /// The stored autopilot configuration, if any was written yet.
    pub(crate) fn autopilot(&self) -> Option<&Arc<AutopilotConfig>> {
        self.autopilot.as_ref()
    }

    /// Every coordinate, ordered by node key then segment.
    pub(crate) fn coordinates(&self) -> impl Iterator<Item = &Arc<CoordinateEntry>> {
        self.coordinates.values()
    }

    /// The coordinates of node `name` (case-insensitive), one per segment.
    pub(crate) fn node_coordinates(
        &self,
        name: &str,
    ) -> impl Iterator<Item = &Arc<CoordinateEntry>> + use<'_> {
        let node = key(name);
        self.coordinates
            .range((node.clone(), String::new())..)
            .take_while(move |((n, _), _)| *n == node)
            .map(|(_, e)| e)
    }

    /// Raft index of the last coordinate change (0: none).
    pub(crate) fn coordinates_index(&self) -> u64 {
        self.coordinates_index
    }

    /// Stores `config` at `index`; with `cas`, only when it equals the stored `ModifyIndex`
    /// (0: only when none is stored). Returns whether it was stored.
    pub(crate) fn set_autopilot(
        &mut self,
        index: u64,
        config: &AutopilotConfig,
        cas: Option<u64>,
        changes: &mut Vec<Change>,
    ) -> bool {
        let current = self.autopilot.as_ref().map(|c| c.modify_index);
        if let Some(want) = cas
            && current.unwrap_or(0) != want
        {
            return false;
        }
        let create_index = self.autopilot.as_ref().map_or(index, |c| c.create_index);
        self.autopilot =
            Some(Arc::new(AutopilotConfig { create_index, modify_index: index, ..config.clone() }));
        changes.push(Change::Operator);
        true
    }

    /// Stores each entry whose node `known` accepts and whose coordinate is valid.
    pub(crate) fn update_coordinates(
        &mut self,
        index: u64,
        entries: &[CoordinateEntry],
        known: impl Fn(&str) -> bool,
        changes: &mut Vec<Change>,
    ) {
        let mut changed = false;
        for e in entries.iter().filter(|e| known(&e.node) && e.coord.is_valid()) {
            self.coordinates.insert((key(&e.node), e.segment.clone()), Arc::new(e.clone()));
            changed = true;
        }
        if changed {
            self.coordinates_index = index;
            changes.push(Change::Operator);
        }
    }

    /// Drops the coordinates of node `name` (it was deregistered).
    pub(crate) fn remove_node(&mut self, index: u64, name: &str, changes: &mut Vec<Change>) {
        let node = key(name);
        let gone: Vec<(String, String)> = self
            .coordinates
            .range((node.clone(), String::new())..)
            .take_while(|((n, _), _)| *n == node)
            .map(|(k, _)| k.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        for k in gone {
            self.coordinates.remove(&k);
        }
        self.coordinates_index = index;
        changes.push(Change::Operator);
    }

    /// Serialisable copy.
    pub(crate) fn dump(&self) -> OperatorDump {
        OperatorDump {
            autopilot: self.autopilot.as_deref().cloned(),
            coordinates: self.coordinates.values().map(|e| (**e).clone()).collect(),
            coordinates_index: self.coordinates_index,
        }
    }

    /// Rebuilds the tables from a dump.
    pub(crate) fn from_dump(dump: OperatorDump) -> Self {
        Self {
            autopilot: dump.autopilot.map(Arc::new),
            coordinates: dump
                .coordinates
                .into_iter()
                .map(|e| ((key(&e.node), e.segment.clone()), Arc::new(e)))
                .collect(),
            coordinates_index: dump.coordinates_index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coord(height: f64) -> Coordinate {
        Coordinate { vec: vec![0.0; COORDINATE_DIMENSIONS], error: 1.5, adjustment: 0.0, height }
    }

    #[test]
    fn cas_compares_with_the_stored_modify_index() {
        let mut st = OperatorState::default();
        let mut ch = Vec::new();
        let off = AutopilotConfig::defaults(false);
        assert!(!st.set_autopilot(3, &off, Some(2), &mut ch), "nothing stored: only cas 0 passes");
        assert!(st.set_autopilot(4, &off, Some(0), &mut ch));
        assert_eq!(st.autopilot().map(|c| (c.create_index, c.modify_index)), Some((4, 4)));
        assert!(!st.set_autopilot(5, &off, Some(0), &mut ch));
        assert!(!st.set_autopilot(5, &off, Some(3), &mut ch));
        assert!(st.set_autopilot(6, &AutopilotConfig::defaults(true), Some(4), &mut ch));
        assert!(st.set_autopilot(7, &off, None, &mut ch));
        let c = st.autopilot().cloned();
        assert_eq!(c.map(|c| (c.cleanup_dead_servers, c.create_index, c.modify_index)), Some((false, 4, 7)));
        assert_eq!(OperatorState::from_dump(st.dump()), st);
    }

    #[test]
    fn coordinates_of_unknown_nodes_and_invalid_ones_are_skipped() {
        let mut st = OperatorState::default();
        let mut ch = Vec::new();
        let bad = Coordinate { vec: vec![0.0; 3], ..coord(0.5) };
        let nan = Coordinate { height: f64::NAN, ..coord(0.5) };
        let entries = [
            CoordinateEntry { node: "a".into(), segment: String::new(), coord: coord(0.5) },
            CoordinateEntry { node: "ghost".into(), segment: String::new(), coord: coord(0.5) },
            CoordinateEntry { node: "b".into(), segment: String::new(), coord: bad },
            CoordinateEntry { node: "B".into(), segment: String::new(), coord: nan },
        ];
        st.update_coordinates(9, &entries, |n| n != "ghost", &mut ch);
        assert_eq!(st.coordinates().map(|e| e.node.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(st.coordinates_index(), 9);
        assert_eq!(st.node_coordinates("A").count(), 1);
        st.remove_node(10, "a", &mut ch);
        assert_eq!(st.coordinates().count(), 0);
        assert_eq!(st.coordinates_index(), 10);
        assert_eq!(OperatorState::from_dump(st.dump()), st);
    }
}
