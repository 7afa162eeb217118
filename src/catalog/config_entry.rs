//! CONFIG ENTRIES: Consul's centralised configuration (`service-defaults`, `proxy-defaults`,
//! routers, splitters, resolvers, ingress and terminating gateways) as replicated catalog state
//! (Consul's `config-entries` table).
//!
//! Stage: domain model, written only by `catalog::apply` (`Command::ConfigEntrySet`,
//! `Command::ConfigEntryDelete`), read by the HTTP layer (`/v1/config/*`, the gateway
//! endpoints).
//! Input: an entry the HTTP layer already validated and normalised (a kind, a name and the
//! entry's document) with an optional check-and-set index. Output: `ConfigEntryState`.
//!
//! Invariants:
//! - The stored form is generic: a kind, a name and an opaque JSON document
//!   (`serde_json::Value` as data: the encoding stays `codec`'s); what a kind means is the HTTP
//!   layer's (`http::config_entry`), so a new kind needs no new row or command.
//! - `apply` is deterministic: a check-and-set compares against the stored `ModifyIndex`
//!   (0: only when the entry does not exist, as Consul's `EnsureConfigEntryCAS`); the entry
//!   keeps its `CreateIndex` across updates.
//! - Kinds and names are keyed as given (Consul's config-entry index is case-sensitive).
//! - The whole table is one LMDB row (`Change::ConfigEntries`): entries are few and rarely
//!   written, so rewriting the row keeps the store simple and a reload exact.

use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Change;

/// One config entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// Consul's `Kind`.
    pub kind: String,
    /// Consul's `Name`.
    pub name: String,
    /// The normalised document, without its indexes (the HTTP layer adds them).
    #[serde(default)]
    pub body: Value,
    /// Raft index that created it.
    #[serde(default)]
    pub create_index: u64,
    /// Raft index that last changed it.
    #[serde(default)]
    pub modify_index: u64,
}

/// The config-entry table.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConfigEntryState {
    /// `(kind, name)` -> entry.
    entries: OrdMap<(String, String), Arc<ConfigEntry>>,
    /// Raft index of the last change to the table (0: never written).
    index: u64,
    /// Kind -> Raft index of the last change to an entry of that kind.
    kind_indexes: OrdMap<String, u64>,
}

/// Serialisable form of `ConfigEntryState` (one LMDB row; in Raft snapshots and backups).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigEntryDump {
    /// Every entry, by kind then name.
    #[serde(default)]
    pub entries: Vec<ConfigEntry>,
    /// Raft index of the last change.
    #[serde(default)]
    pub index: u64,
    /// Per kind, the Raft index of the last change to an entry of that kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kind_indexes: Vec<(String, u64)>,
}

impl ConfigEntryDump {
    /// Nothing stored (left out of catalog dumps, so their bytes stay those of before).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.index == 0
    }
}

impl ConfigEntryState {
    /// The entry of `kind` named `name`.
    pub(crate) fn get(&self, kind: &str, name: &str) -> Option<&Arc<ConfigEntry>> {
        self.entries.get(&(kind.to_owned(), name.to_owned()))
    }

    /// Every entry of `kind`, ordered by name.
    pub(crate) fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Arc<ConfigEntry>> + use<'a> {
        let kind = kind.to_owned();
        self.entries
            .range((kind.clone(), String::new())..)
            .take_while(move |((k, _), _)| *k == kind)
            .map(|(_, e)| e)
    }

    /// Raft index of the last change to the table (0: never written).
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    /// Raft index of the last change to an entry of `kind` (0: never written).
    pub(crate) fn kind_index(&self, kind: &str) -> u64 {
        self.kind_indexes.get(kind).copied().unwrap_or(0)
    }

    /// Stores `entry` at `index`; with `cas`, only when it equals the stored `ModifyIndex`
    /// (0: only when there is none). Returns whether it was stored.
    pub(crate) fn set(
        &mut self,
        index: u64,
        entry: &ConfigEntry,
        cas: Option<u64>,
        changes: &mut Vec<Change>,
    ) -> bool {
        let k = (entry.kind.clone(), entry.name.clone());
        let current = self.entries.get(&k);
        if let Some(want) = cas
            && current.map_or(0, |e| e.modify_index) != want
        {
            return false;
        }
        let create_index = current.map_or(index, |e| e.create_index);
        self.entries.insert(k, Arc::new(ConfigEntry { create_index, modify_index: index, ..entry.clone() }));
        self.index = index;
        self.kind_indexes.insert(entry.kind.clone(), index);
        changes.push(Change::ConfigEntries);
        true
    }

    /// Removes the entry of `kind` named `name` (a missing one succeeds, as in Consul; the
    /// table index moves either way, as Consul's delete bumps it).
    pub(crate) fn delete(&mut self, index: u64, kind: &str, name: &str, changes: &mut Vec<Change>) {
        self.entries.remove(&(kind.to_owned(), name.to_owned()));
        self.index = index;
        self.kind_indexes.insert(kind.to_owned(), index);
        changes.push(Change::ConfigEntries);
    }

    /// Serialisable copy.
    pub(crate) fn dump(&self) -> ConfigEntryDump {
        ConfigEntryDump {
            entries: self.entries.values().map(|e| (**e).clone()).collect(),
            index: self.index,
            kind_indexes: self.kind_indexes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// Rebuilds the table from its serialised form.
    pub(crate) fn from_dump(dump: ConfigEntryDump) -> Self {
        let entries =
            dump.entries.into_iter().map(|e| ((e.kind.clone(), e.name.clone()), Arc::new(e))).collect();
        Self { entries, index: dump.index, kind_indexes: dump.kind_indexes.into_iter().collect() }
    }

    /// Marks the table as rewritten at `index` (a restore).
    pub(crate) fn touch(&mut self, index: u64) {
        self.index = index;
        let kinds: Vec<String> = self.entries.keys().map(|(k, _)| k.clone()).collect();
        self.kind_indexes = kinds.into_iter().map(|k| (k, index)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> ConfigEntry {
        ConfigEntry {
            kind: "service-defaults".into(),
            name: name.into(),
            body: Value::Null,
            create_index: 0,
            modify_index: 0,
        }
    }

    #[test]
    fn cas_compares_the_modify_index_and_create_index_is_kept() {
        let mut s = ConfigEntryState::default();
        let mut ch = Vec::new();
        assert!(!s.set(5, &entry("web"), Some(3), &mut ch));
        assert!(s.set(5, &entry("web"), Some(0), &mut ch));
        assert!(!s.set(6, &entry("web"), Some(0), &mut ch));
        assert!(s.set(7, &entry("web"), Some(5), &mut ch));
        let e = s.get("service-defaults", "web").expect("stored");
        assert_eq!((e.create_index, e.modify_index), (5, 7));
        assert_eq!(s.of_kind("service-defaults").count(), 1);
        assert_eq!(s.of_kind("proxy-defaults").count(), 0);
        s.delete(8, "service-defaults", "web", &mut ch);
        assert!(s.get("service-defaults", "web").is_none());
        assert_eq!(s.index(), 8);
        assert_eq!((s.kind_index("service-defaults"), s.kind_index("proxy-defaults")), (8, 0));
        assert_eq!(ConfigEntryState::from_dump(s.dump()), s);
    }
}
