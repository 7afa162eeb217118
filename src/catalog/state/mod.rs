//! `CatalogState`: the materialised catalog, with the indexes DNS and HTTP reads need.
//!
//! Built on `imbl` persistent maps: cloning is O(1) and shares structure, and a clone is never
//! affected by later mutation of the original. The state machine mutates its own copy and
//! publishes clones, so a published snapshot is immutable by construction.
//!
//! Mutation methods (in `write`) are `pub(crate)` and called only by `catalog::apply`; each
//! records what it touched in a `Change` list so the state machine can persist exactly those rows.
//! Names are keyed lower-cased (`catalog::key`), as Consul's state store indexes them.

mod write;

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

use super::acl::{AclDump, AclState};
use super::config_entry::{ConfigEntryDump, ConfigEntryState};
use super::kv::{KvDump, KvState};
use super::operator::{OperatorDump, OperatorState};
use super::{Check, HealthStatus, Node, PreparedQuery, Service, key};

/// `(node key, service ID key)`: identifies one service instance.
pub(crate) type ServiceKey = (String, String);
/// `(node key, check ID key)`: identifies one check.
type CheckKey = (String, String);

/// One row the last mutation touched; the state machine re-reads it and writes or deletes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// Node row, by node key.
    Node(String),
    /// Service row.
    Service(ServiceKey),
    /// Check row.
    Check(CheckKey),
    /// Per-service-name index, by name key.
    ServiceIndex(String),
    /// The table indexes (nodes, services, checks, queries).
    TableIndexes,
    /// Prepared-query row, by ID key.
    Query(String),
    /// KV entry row, by key.
    Kv(String),
    /// KV tombstone row, by key.
    KvTombstone(String),
    /// Session row, by ID.
    Session(String),
    /// The KV table indexes and lock-delays.
    KvMeta,
    /// The ACL tables (one row: see `catalog::acl`).
    Acl,
    /// The operator tables: autopilot configuration and coordinates (one row: see
    /// `catalog::operator`).
    Operator,
    /// The config-entry table (one row: see `catalog::config_entry`).
    ConfigEntries,
}

/// Raft indexes of the last change to each table (Consul's `X-Consul-Index` sources).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableIndexes {
    /// Last change to any node.
    pub nodes: u64,
    /// Last change to any service instance.
    pub services: u64,
    /// Last change to any check.
    pub checks: u64,
    /// Last change to any prepared query (absent in dumps written before prepared queries).
    #[serde(default)]
    pub queries: u64,
}

/// A service instance together with its node.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The node the instance runs on.
    pub node: Arc<Node>,
    /// The instance.
    pub service: Arc<Service>,
}

/// The whole catalog of one datacenter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogState {
    nodes: OrdMap<String, Arc<Node>>,
    services: OrdMap<ServiceKey, Arc<Service>>,
    checks: OrdMap<CheckKey, Arc<Check>>,
    /// Service name key -> instances, so service lookups do not scan the catalog.
    by_name: OrdMap<String, OrdSet<ServiceKey>>,
    /// Service name key -> its Connect-capable instances: proxies whose destination it is and
    /// its Connect-native instances (derived from `services`, never persisted).
    by_connect: OrdMap<String, OrdSet<ServiceKey>>,
    /// Service name key -> Raft index of the last change visible in that service's lookups.
    service_indexes: OrdMap<String, u64>,
    tables: TableIndexes,
    /// Prepared queries by ID key.
    queries: OrdMap<String, Arc<PreparedQuery>>,
    /// Prepared-query name key -> ID key, for named queries.
    query_names: OrdMap<String, String>,
    /// The KV store and sessions (never read by DNS).
    kv: KvState,
    /// ACL tokens, policies and roles.
    acl: AclState,
    /// Autopilot configuration and network coordinates.
    operator: OperatorState,
    /// Config entries.
    config_entries: ConfigEntryState,
}

/// Serialisable form of the whole catalog (Raft snapshots, tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogDump {
    /// Every node.
    pub nodes: Vec<Node>,
    /// Every service instance.
    pub services: Vec<Service>,
    /// Every check.
    pub checks: Vec<Check>,
    /// Per-service-name indexes.
    pub service_indexes: Vec<(String, u64)>,
    /// Table indexes.
    pub tables: TableIndexes,
    /// Every prepared query (absent in dumps written before prepared queries).
    #[serde(default)]
    pub queries: Vec<PreparedQuery>,
    /// The KV store and sessions (absent in dumps written before KV).
    #[serde(default)]
    pub kv: KvDump,
    /// ACL tokens, policies and roles (absent in dumps written before ACLs, and left out
    /// while empty, so the bytes of a catalog without ACL state are those of before).
    #[serde(default, skip_serializing_if = "AclDump::is_empty")]
    pub acl: AclDump,
    /// Autopilot configuration and coordinates (absent in dumps written before them, and
    /// left out while empty).
    #[serde(default, skip_serializing_if = "OperatorDump::is_empty")]
    pub operator: OperatorDump,
    /// Config entries (absent in dumps written before them, and left out while empty).
    #[serde(default, skip_serializing_if = "ConfigEntryDump::is_empty")]
    pub config_entries: ConfigEntryDump,
}

fn prefix_range<'a, V: Clone>(
    map: &'a OrdMap<(String, String), V>,
    node: &str,
) -> impl Iterator<Item = (&'a (String, String), &'a V)> + use<'a, V> {
    let node = node.to_owned();
    let lo = (node.clone(), String::new());
    map.range(lo..).take_while(move |((n, _), _)| *n == node)
}

impl CatalogState {
    // ----- reads -------------------------------------------------------------------------

    /// The node named `name` (case-insensitive).
    pub fn node(&self, name: &str) -> Option<&Arc<Node>> {
        self.nodes.get(&key(name))
    }

    /// Every service instance, ordered by (node key, instance ID key).
    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values()
    }

    /// Every node, ordered by name key.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.values()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of service instances.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// One service instance by node and ID (both case-insensitive).
    pub fn service(&self, node: &str, id: &str) -> Option<&Arc<Service>> {
        self.services.get(&(key(node), key(id)))
    }

    /// The service instances on a node, ordered by ID key.
    pub fn node_services(&self, node: &str) -> impl Iterator<Item = &Arc<Service>> + use<'_> {
        prefix_range(&self.services, &key(node)).map(|(_, s)| s)
    }

    /// Every check on a node, node-level and service-level, ordered by ID key.
    pub fn node_checks(&self, node: &str) -> impl Iterator<Item = &Arc<Check>> + use<'_> {
        prefix_range(&self.checks, &key(node)).map(|(_, c)| c)
    }

    /// One check by node and ID.
    pub fn check(&self, node: &str, check_id: &str) -> Option<&Arc<Check>> {
        self.checks.get(&(key(node), key(check_id)))
    }

    /// Every check, ordered by node then ID.
    pub fn checks(&self) -> impl Iterator<Item = &Arc<Check>> {
        self.checks.values()
    }

    /// The instances of service `name` (case-insensitive), ordered by node then ID.
    pub fn service_instances(&self, name: &str) -> impl Iterator<Item = Instance> + '_ {
        self.by_name.get(&key(name)).into_iter().flat_map(|set| set.iter()).filter_map(|k| {
            let service = self.services.get(k)?;
            let node = self.nodes.get(&k.0)?;
            Some(Instance { node: node.clone(), service: service.clone() })
        })
    }

    /// The Connect-capable instances for service `name` (case-insensitive): proxies whose
    /// `DestinationServiceName` it is and its Connect-native instances, by node then ID.
    pub fn connect_instances(&self, name: &str) -> impl Iterator<Item = Instance> + '_ {
        self.by_connect.get(&key(name)).into_iter().flat_map(|set| set.iter()).filter_map(|k| {
            let service = self.services.get(k)?;
            let node = self.nodes.get(&k.0)?;
            Some(Instance { node: node.clone(), service: service.clone() })
        })
    }

    /// Raft index of the last change visible in the Connect lookups of `name`: the name's own
    /// index (bumped when a proxy for it comes or goes) and each current proxy's.
    pub fn connect_index(&self, name: &str) -> u64 {
        let own = self.service_index(name);
        self.connect_instances(name).map(|i| self.service_index(&i.service.name)).fold(own, u64::max)
    }

    /// Distinct service names (as first registered) with the union of their tags, by name key.
    pub fn service_names(&self) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
        self.by_name.iter().filter_map(|(_, set)| {
            let mut name = None;
            let mut tags: Vec<String> = Vec::new();
            for k in set.iter() {
                let s = self.services.get(k)?;
                name.get_or_insert_with(|| s.name.clone());
                for t in &s.tags {
                    if !tags.contains(t) {
                        tags.push(t.clone());
                    }
                }
            }
            tags.sort();
            name.map(|n| (n, tags))
        })
    }

    /// The checks that decide an instance's health: its node's node-level checks plus its own.
    pub fn instance_checks<'a>(
        &'a self,
        node: &'a str,
        service_id: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Check>> + 'a {
        self.node_checks(node)
            .filter(move |c| c.service_id.is_empty() || c.service_id.eq_ignore_ascii_case(service_id))
    }

    /// The worst status among an instance's checks; passing when it has none.
    pub fn instance_health(&self, node: &str, service_id: &str) -> HealthStatus {
        self.instance_checks(node, service_id).map(|c| c.status).max().unwrap_or(HealthStatus::Passing)
    }

    /// Raft index of the last change visible in lookups of service `name`, falling back to
    /// the services table index for names never registered (Consul's `maxIndexForService`).
    pub fn service_index(&self, name: &str) -> u64 {
        self.service_indexes.get(&key(name)).copied().unwrap_or(self.tables.services)
    }

    /// The table indexes.
    pub fn table_indexes(&self) -> TableIndexes {
        self.tables
    }

    /// Serialisable copy of the whole catalog.
    pub fn dump(&self) -> CatalogDump {
        CatalogDump {
            nodes: self.nodes.values().map(|n| (**n).clone()).collect(),
            services: self.services.values().map(|s| (**s).clone()).collect(),
            checks: self.checks.values().map(|c| (**c).clone()).collect(),
            service_indexes: self.service_indexes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            tables: self.tables,
            queries: self.queries.values().map(|q| (**q).clone()).collect(),
            kv: self.kv.dump(),
            acl: self.acl.dump(),
            operator: self.operator.dump(),
            config_entries: self.config_entries.dump(),
        }
    }

    /// Rebuilds a catalog from its serialised form (restart, Raft snapshot install).
    pub fn from_dump(dump: CatalogDump) -> Self {
        let mut state = Self::default();
        for n in dump.nodes {
            state.nodes.insert(key(&n.name), Arc::new(n));
        }
        for s in dump.services {
            let k = (key(&s.node), key(&s.id));
            state.by_name.entry(key(&s.name)).or_default().insert(k.clone());
            if let Some(target) = s.mesh.connect_target(&s.name) {
                state.by_connect.entry(key(target)).or_default().insert(k.clone());
            }
            state.services.insert(k, Arc::new(s));
        }
        for c in dump.checks {
            state.checks.insert((key(&c.node), key(&c.check_id)), Arc::new(c));
        }
        state.service_indexes = dump.service_indexes.into_iter().collect();
        state.tables = dump.tables;
        for q in dump.queries {
            let id = key(&q.id);
            if !q.name.is_empty() {
                state.query_names.insert(key(&q.name), id.clone());
            }
            state.queries.insert(id, Arc::new(q));
        }
        state.kv = KvState::from_dump(dump.kv);
        state.acl = AclState::from_dump(dump.acl);
        state.operator = OperatorState::from_dump(dump.operator);
        state.config_entries = ConfigEntryState::from_dump(dump.config_entries);
        state
    }

    /// The prepared query with this ID (case-insensitive).
    pub fn query(&self, id: &str) -> Option<&Arc<PreparedQuery>> {
        self.queries.get(&key(id))
    }

    /// The prepared query with this name (case-insensitive).
    pub fn query_by_name(&self, name: &str) -> Option<&Arc<PreparedQuery>> {
        self.query_names.get(&key(name)).and_then(|id| self.queries.get(id))
    }

    /// The prepared query an execute or DNS lookup names: by ID first, then by name, so a
    /// name can never hijack an ID (Consul's lookup order).
    pub fn resolve_query(&self, id_or_name: &str) -> Option<&Arc<PreparedQuery>> {
        self.query(id_or_name).or_else(|| self.query_by_name(id_or_name))
    }

    /// Every prepared query, ordered by ID key.
    pub fn queries(&self) -> impl Iterator<Item = &Arc<PreparedQuery>> {
        self.queries.values()
    }

    /// The current prepared-query row for an ID key; `None` means deleted.
    pub fn query_row(&self, id_key: &str) -> Option<&Arc<PreparedQuery>> {
        self.queries.get(id_key)
    }

    /// The current row for a `Change`, serialised by the caller; `None` means "delete it".
    pub fn node_row(&self, node_key: &str) -> Option<&Arc<Node>> {
        self.nodes.get(node_key)
    }

    /// The current service row for a key; `None` means deleted.
    pub fn service_row(&self, k: &ServiceKey) -> Option<&Arc<Service>> {
        self.services.get(k)
    }

    /// The current check row for a key; `None` means deleted.
    pub fn check_row(&self, k: &(String, String)) -> Option<&Arc<Check>> {
        self.checks.get(k)
    }

    /// The current per-service index for a name key; `None` means deleted.
    pub fn service_index_row(&self, name_key: &str) -> Option<u64> {
        self.service_indexes.get(name_key).copied()
    }

    /// Service names (keys) whose per-service index differs between `self` and `newer`
    /// (added, moved or removed). Subtrees the two share are skipped, so the cost follows the
    /// number of changes, not the catalog's size.
    pub fn changed_services<'a>(&'a self, newer: &'a Self) -> impl Iterator<Item = &'a str> {
        self.service_indexes.diff(&newer.service_indexes).map(diff_key)
    }

    /// Node names (keys) whose row differs between `self` and `newer`; see
    /// [`Self::changed_services`].
    pub fn changed_nodes<'a>(&'a self, newer: &'a Self) -> impl Iterator<Item = &'a str> {
        self.nodes.diff(&newer.nodes).map(diff_key)
    }

    /// The KV store and sessions.
    pub fn kv(&self) -> &KvState {
        &self.kv
    }

    /// The ACL tables.
    pub(crate) fn acl(&self) -> &AclState {
        &self.acl
    }

    /// The ACL tables, for `apply`.
    pub(crate) fn acl_mut(&mut self) -> &mut AclState {
        &mut self.acl
    }

    /// Autopilot's configuration and the network coordinates.
    pub(crate) fn operator(&self) -> &OperatorState {
        &self.operator
    }

    /// The operator tables, for `apply`.
    pub(crate) fn operator_mut(&mut self) -> &mut OperatorState {
        &mut self.operator
    }

    /// The config entries.
    pub(crate) fn config_entries(&self) -> &ConfigEntryState {
        &self.config_entries
    }

    /// The config entries, for `apply`.
    pub(crate) fn config_entries_mut(&mut self) -> &mut ConfigEntryState {
        &mut self.config_entries
    }
}

/// The key of one difference between two maps.
fn diff_key<'a, V>(d: imbl::ordmap::DiffItem<'a, 'a, String, V>) -> &'a str {
    match d {
        imbl::ordmap::DiffItem::Add(k, _) | imbl::ordmap::DiffItem::Remove(k, _) => k,
        imbl::ordmap::DiffItem::Update { new: (k, _), .. } => k,
    }
}
