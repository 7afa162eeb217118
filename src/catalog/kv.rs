//! `KvState`: Consul's key/value store and sessions, the KV read model beside the catalog.
//!
//! Built on `imbl` persistent maps like `CatalogState` (O(1) clone, a published copy is never
//! affected by later writes). It lives in `CatalogState` only so one Raft apply can touch both
//! (a check going critical invalidates sessions); the DNS path never reads it.
//!
//! Mutation methods are `pub(crate)` and called only by `catalog::apply` (through
//! `CatalogState::kv_mut`); each records what it touched as a `Change`.
//! Keys are case-sensitive byte strings (Consul's KV is); session IDs are lower-case UUIDs.
//! Deleted keys leave a tombstone (the delete's index) so a blocking read on a prefix wakes
//! when a key under it goes away, and a prefix index never goes backwards.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

use super::Change;

/// Longest KV key accepted, in bytes (LMDB's key limit is 511).
pub(crate) const MAX_KEY_BYTES: usize = 480;

/// One KV entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The value bytes.
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    /// Opaque client flags.
    pub flags: u64,
    /// How many times the key was acquired by a session.
    pub lock_index: u64,
    /// The session holding the lock, or empty.
    pub session: String,
    /// Raft index that created the key.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

/// What happens to a session's locks when it is invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionBehavior {
    /// Locks are released; the keys stay.
    #[default]
    Release,
    /// The locked keys are deleted.
    Delete,
}

impl SessionBehavior {
    /// Consul's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Delete => "delete",
        }
    }
}

/// A session: the holder of KV locks, bound to a node and checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Session ID (UUID).
    pub id: String,
    /// Optional name.
    pub name: String,
    /// The node it is bound to.
    pub node: String,
    /// Lock-delay in nanoseconds.
    pub lock_delay_ns: u64,
    /// What happens to held locks on invalidation.
    pub behavior: SessionBehavior,
    /// TTL as given (`"15s"`), or empty for none.
    pub ttl: String,
    /// Node-level check IDs it is bound to.
    pub node_checks: Vec<String>,
    /// Service-level check IDs it is bound to (`None`: none were given).
    pub service_checks: Option<Vec<String>>,
    /// Raft index that created it.
    pub create_index: u64,
    /// Raft index of the last change.
    pub modify_index: u64,
}

impl Session {
    /// Whether the session is bound to check `check_id` (case-insensitive) on its node.
    pub fn binds_check(&self, check_id: &str) -> bool {
        self.node_checks
            .iter()
            .chain(self.service_checks.iter().flatten())
            .any(|c| c.eq_ignore_ascii_case(check_id))
    }
}

/// A key's lock-delay after its holder was invalidated: `acquire` fails until `until_ms`.
/// An invalidation by a command that carries no clock (a check going critical, a node
/// deregistered) records only the delay; the next command that carries a time starts it, so
/// the delay is never shorter than asked (it may start a little late).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockDelay {
    /// Unix milliseconds when acquiring is allowed again; `None` until a clock is known.
    pub until_ms: Option<u64>,
    /// The delay in milliseconds.
    pub delay_ms: u64,
}

/// Raft indexes of the last change to the KV and session tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvIndexes {
    /// Last change to any key (including deletes).
    pub kv: u64,
    /// Last change to any session.
    pub sessions: u64,
    /// Last delete that left a tombstone (the leader reaps tombstones up to an old value of it).
    #[serde(default)]
    pub tombstones: u64,
}

/// Serialisable form of the KV store (Raft snapshots, restart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvDump {
    /// Every entry.
    pub entries: Vec<KvEntry>,
    /// Deleted keys with their delete index.
    pub tombstones: Vec<(String, u64)>,
    /// Every session.
    pub sessions: Vec<Session>,
    /// Keys inside a lock-delay.
    pub lock_delays: Vec<(String, LockDelay)>,
    /// Table indexes.
    pub indexes: KvIndexes,
}

/// The KV store and sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvState {
    entries: OrdMap<String, Arc<KvEntry>>,
    tombstones: OrdMap<String, u64>,
    sessions: OrdMap<String, Arc<Session>>,
    /// Session ID -> keys it holds (derived from `entries`).
    locks: OrdMap<String, OrdSet<String>>,
    lock_delays: OrdMap<String, LockDelay>,
    indexes: KvIndexes,
}

impl KvState {
    // ----- reads -------------------------------------------------------------------------

    /// The entry at `key`.
    pub fn entry(&self, key: &str) -> Option<&Arc<KvEntry>> {
        self.entries.get(key)
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Arc<KvEntry>> + 'a {
        self.entries
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `X-Consul-Index` of a single-key read: its ModifyIndex, else the table index.
    pub fn key_index(&self, key: &str) -> u64 {
        match self.entries.get(key) {
            Some(e) => e.modify_index,
            None => self.indexes.kv,
        }
    }

    /// `X-Consul-Index` of a prefix read: the highest ModifyIndex or delete index under it
    /// (the table index when nothing was ever under it).
    pub fn prefix_index(&self, prefix: &str) -> u64 {
        let live = self.prefix(prefix).map(|e| e.modify_index).max();
        let dead = self
            .tombstones
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .max();
        match (live, dead) {
            (None, None) => self.indexes.kv,
            (a, b) => a.unwrap_or(0).max(b.unwrap_or(0)),
        }
    }

    /// The table indexes.
    pub fn indexes(&self) -> KvIndexes {
        self.indexes
    }

    /// A session by ID.
    pub fn session(&self, id: &str) -> Option<&Arc<Session>> {
        self.sessions.get(id)
    }

    /// Every session, by ID.
    pub fn sessions(&self) -> impl Iterator<Item = &Arc<Session>> {
        self.sessions.values()
    }

    /// The keys a session holds.
    pub fn session_keys(&self, id: &str) -> Vec<String> {
        self.locks.get(id).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// The lock-delay of `key`, if any.
    pub fn lock_delay(&self, key: &str) -> Option<LockDelay> {
        self.lock_delays.get(key).copied()
    }

    /// Every lock-delay, by key (the store keeps them in one row).
    pub fn dump_lock_delays(&self) -> Vec<(String, LockDelay)> {
        self.lock_delays.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The delete index of a deleted key (the store's tombstone row).
    pub fn tombstone_row(&self, key: &str) -> Option<u64> {
        self.tombstones.get(key).copied()
    }

    /// Serialisable copy.
    pub fn dump(&self) -> KvDump {
        KvDump {
            entries: self.entries.values().map(|e| (**e).clone()).collect(),
            tombstones: self.tombstones.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            sessions: self.sessions.values().map(|s| (**s).clone()).collect(),
            lock_delays: self.lock_delays.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            indexes: self.indexes,
        }
    }

    /// Rebuilds from a dump.
    pub fn from_dump(dump: KvDump) -> Self {
        let mut s = Self::default();
        for e in dump.entries {
            if !e.session.is_empty() {
                s.locks.entry(e.session.clone()).or_default().insert(e.key.clone());
            }
            s.entries.insert(e.key.clone(), Arc::new(e));
        }
        s.tombstones = dump.tombstones.into_iter().collect();
        s.sessions = dump.sessions.into_iter().map(|x| (x.id.clone(), Arc::new(x))).collect();
        s.lock_delays = dump.lock_delays.into_iter().collect();
        s.indexes = dump.indexes;
        s
    }

    // ----- mutations (state machine only) ------------------------------------------------

    /// Writes `entry` at `index`, keeping the create index of an existing key.
    pub(crate) fn put_entry(&mut self, index: u64, mut entry: KvEntry, changes: &mut Vec<Change>) {
        let old = self.entries.get(&entry.key).cloned();
        entry.create_index = old.as_ref().map_or(index, |o| o.create_index);
        entry.modify_index = index;
        if let Some(o) = &old
            && !o.session.is_empty()
            && o.session != entry.session
        {
            self.unlink_lock(&o.session.clone(), &entry.key);
        }
        if !entry.session.is_empty() {
            self.locks.entry(entry.session.clone()).or_default().insert(entry.key.clone());
        }
        if self.tombstones.remove(&entry.key).is_some() {
            changes.push(Change::KvTombstone(entry.key.clone()));
        }
        changes.push(Change::Kv(entry.key.clone()));
        changes.push(Change::KvMeta);
        self.indexes.kv = index;
        self.entries.insert(entry.key.clone(), Arc::new(entry));
    }

    fn unlink_lock(&mut self, session: &str, key: &str) {
        let empty = match self.locks.get_mut(session) {
            Some(set) => {
                set.remove(key);
                set.is_empty()
            }
            None => false,
        };
        if empty {
            self.locks.remove(session);
        }
    }

    /// Deletes `key` at `index`, leaving a tombstone. Returns whether it existed.
    pub(crate) fn delete_entry(&mut self, index: u64, key: &str, changes: &mut Vec<Change>) -> bool {
        let Some(old) = self.entries.remove(key) else {
            return false;
        };
        if !old.session.is_empty() {
            self.unlink_lock(&old.session, key);
        }
        self.tombstones.insert(key.to_owned(), index);
        self.indexes.kv = index;
        self.indexes.tombstones = index;
        changes.push(Change::Kv(key.to_owned()));
        changes.push(Change::KvTombstone(key.to_owned()));
        changes.push(Change::KvMeta);
        true
    }

    /// Drops the tombstones of deletes at or before `upto` (Consul's tombstone reaping): a
    /// blocking read on such a prefix then falls back to the table index. Returns how many.
    pub(crate) fn reap_tombstones(&mut self, upto: u64, changes: &mut Vec<Change>) -> usize {
        let doomed: Vec<String> =
            self.tombstones.iter().filter(|(_, i)| **i <= upto).map(|(k, _)| k.clone()).collect();
        for k in &doomed {
            self.tombstones.remove(k);
            changes.push(Change::KvTombstone(k.clone()));
        }
        doomed.len()
    }

    /// Number of tombstones held.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// Names every row (for a restore, which rewrites all of them).
    pub(crate) fn row_changes(&self, changes: &mut Vec<Change>) {
        changes.extend(self.entries.keys().cloned().map(Change::Kv));
        changes.extend(self.tombstones.keys().cloned().map(Change::KvTombstone));
        changes.extend(self.sessions.keys().cloned().map(Change::Session));
        changes.push(Change::KvMeta);
    }

    /// After a restore at `index`: the table indexes move to it, so every KV and session
    /// watcher wakes.
    pub(crate) fn mark_restored(&mut self, index: u64) {
        self.indexes.kv = index;
        self.indexes.sessions = index;
    }

    /// Inserts or replaces a session at `index`, keeping its create index.
    pub(crate) fn upsert_session(&mut self, index: u64, mut s: Session, changes: &mut Vec<Change>) {
        s.create_index = self.sessions.get(&s.id).map_or(index, |o| o.create_index);
        s.modify_index = index;
        self.indexes.sessions = index;
        changes.push(Change::Session(s.id.clone()));
        changes.push(Change::KvMeta);
        self.sessions.insert(s.id.clone(), Arc::new(s));
    }

    /// Removes a session record (its locks are handled by the caller first).
    pub(crate) fn remove_session(&mut self, index: u64, id: &str, changes: &mut Vec<Change>) -> bool {
        if self.sessions.remove(id).is_none() {
            return false;
        }
        self.locks.remove(id);
        self.indexes.sessions = index;
        changes.push(Change::Session(id.to_owned()));
        changes.push(Change::KvMeta);
        true
    }

    /// Records a lock-delay on `key`.
    pub(crate) fn set_lock_delay(&mut self, key: &str, delay: LockDelay, changes: &mut Vec<Change>) {
        self.lock_delays.insert(key.to_owned(), delay);
        changes.push(Change::KvMeta);
    }

    /// A command carrying the time `now_ms` arrived: start pending lock-delays and drop the
    /// elapsed ones.
    pub(crate) fn settle_clock(&mut self, now_ms: u64, changes: &mut Vec<Change>) {
        if self.lock_delays.is_empty() {
            return;
        }
        let mut next = OrdMap::new();
        for (k, d) in &self.lock_delays {
            let until = d.until_ms.unwrap_or(now_ms.saturating_add(d.delay_ms));
            if until > now_ms {
                next.insert(k.clone(), LockDelay { until_ms: Some(until), delay_ms: d.delay_ms });
            }
        }
        if next != self.lock_delays {
            self.lock_delays = next;
            changes.push(Change::KvMeta);
        }
    }
}

/// Serde for value bytes as a standard base64 string (compact in the JSON log and store).
pub(crate) mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Encodes bytes as base64.
    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    /// Decodes base64 into bytes.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}
