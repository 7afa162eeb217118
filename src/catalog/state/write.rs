//! `CatalogState` mutations: the writes `catalog::apply` makes on the materialised catalog.
//!
//! Stage: inside the pure transition `apply` (state machine and replica only).
//! Input: a Raft index and one record (node, service, check, prepared query) or a whole dump
//! -> output: the updated tables and indexes, plus the `Change` rows touched, so the state
//! machine persists exactly those.
//! Invariants: deterministic (no clock, no randomness, no IO); a record keeps its
//! `create_index`; an identical write changes nothing (so idempotent writes do not wake
//! blocking queries); the per-service-name and table indexes move with every visible change.

use std::sync::Arc;

use super::{CatalogDump, CatalogState, Change, CheckKey, ServiceKey, TableIndexes, prefix_range};
use crate::catalog::kv::KvState;
use crate::catalog::{Check, Node, PreparedQuery, Service, key};

impl CatalogState {
    /// The KV store for mutation (`catalog::apply` only).
    pub(crate) fn kv_mut(&mut self) -> &mut KvState {
        &mut self.kv
    }

    fn bump_service_name(&mut self, name_key: String, index: u64, changes: &mut Vec<Change>) {
        self.service_indexes.insert(name_key.clone(), index);
        changes.push(Change::ServiceIndex(name_key));
    }

    fn bump_node_services(&mut self, node_key: &str, index: u64, changes: &mut Vec<Change>) {
        let names: Vec<String> = prefix_range(&self.services, node_key).map(|(_, s)| key(&s.name)).collect();
        for n in names {
            self.bump_service_name(n, index, changes);
        }
    }

    /// Inserts or replaces a node, keeping its `create_index`. An identical node is left
    /// untouched so idempotent writes do not wake blocking queries. Returns whether it changed.
    pub(crate) fn upsert_node(&mut self, index: u64, mut node: Node, changes: &mut Vec<Change>) -> bool {
        let k = key(&node.name);
        if let Some(old) = self.nodes.get(&k) {
            node.create_index = old.create_index;
            node.modify_index = old.modify_index;
            if **old == node {
                return false;
            }
        } else {
            node.create_index = index;
        }
        node.modify_index = index;
        self.nodes.insert(k.clone(), Arc::new(node));
        self.tables.nodes = index;
        changes.push(Change::Node(k.clone()));
        changes.push(Change::TableIndexes);
        self.bump_node_services(&k, index, changes);
        true
    }

    /// Removes a node with all its services and checks. Returns whether it existed.
    pub(crate) fn delete_node(&mut self, index: u64, name: &str, changes: &mut Vec<Change>) -> bool {
        let k = key(name);
        if self.nodes.remove(&k).is_none() {
            return false;
        }
        self.tables.nodes = index;
        changes.push(Change::Node(k.clone()));
        changes.push(Change::TableIndexes);
        let ids: Vec<String> = prefix_range(&self.services, &k).map(|((_, id), _)| id.clone()).collect();
        for id in ids {
            self.delete_service(index, name, &id, changes);
        }
        let checks: Vec<String> = prefix_range(&self.checks, &k).map(|((_, id), _)| id.clone()).collect();
        for id in checks {
            self.delete_check(index, name, &id, changes);
        }
        true
    }

    /// Inserts or replaces a service instance, keeping its `create_index`; the node must exist.
    /// An identical instance is left untouched. Returns whether it changed.
    pub(crate) fn upsert_service(
        &mut self,
        index: u64,
        mut service: Service,
        changes: &mut Vec<Change>,
    ) -> bool {
        let k = (key(&service.node), key(&service.id));
        let new_name = key(&service.name);
        if let Some(old) = self.services.get(&k).cloned() {
            service.create_index = old.create_index;
            service.modify_index = old.modify_index;
            if *old == service {
                return false;
            }
            let old_name = key(&old.name);
            if old_name != new_name {
                self.unlink_name(&old_name, &k, index, changes);
            }
        } else {
            service.create_index = index;
        }
        service.modify_index = index;
        // Keep the denormalised service name and tags on the instance's checks in step.
        let check_keys: Vec<CheckKey> = prefix_range(&self.checks, &k.0)
            .filter(|(_, c)| key(&c.service_id) == k.1)
            .map(|(ck, _)| ck.clone())
            .collect();
        for ck in check_keys {
            if let Some(c) = self.checks.get(&ck).cloned()
                && (c.service_name != service.name || c.service_tags != service.tags)
            {
                let mut c = (*c).clone();
                c.service_name = service.name.clone();
                c.service_tags = service.tags.clone();
                c.modify_index = index;
                self.checks.insert(ck.clone(), Arc::new(c));
                self.tables.checks = index;
                changes.push(Change::Check(ck));
            }
        }
        self.by_name.entry(new_name.clone()).or_default().insert(k.clone());
        let old_target = self.services.get(&k).and_then(|o| o.mesh.connect_target(&o.name).map(key));
        let new_target = service.mesh.connect_target(&service.name).map(key);
        if old_target != new_target {
            self.unlink_connect(old_target, &k, index, changes);
            if let Some(t) = new_target {
                self.by_connect.entry(t.clone()).or_default().insert(k.clone());
                self.bump_service_name(t, index, changes);
            }
        }
        self.services.insert(k.clone(), Arc::new(service));
        self.tables.services = index;
        changes.push(Change::Service(k));
        changes.push(Change::TableIndexes);
        self.bump_service_name(new_name, index, changes);
        true
    }

    fn unlink_name(&mut self, name_key: &str, k: &ServiceKey, index: u64, changes: &mut Vec<Change>) {
        let now_empty = match self.by_name.get_mut(name_key) {
            Some(set) => {
                set.remove(k);
                set.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.by_name.remove(name_key);
        }
        self.bump_service_name(name_key.to_owned(), index, changes);
    }

    /// Takes instance `k` out of the Connect lookups of `target` (if any), bumping its index.
    fn unlink_connect(
        &mut self,
        target: Option<String>,
        k: &ServiceKey,
        index: u64,
        changes: &mut Vec<Change>,
    ) {
        let Some(t) = target else { return };
        let now_empty = self.by_connect.get_mut(&t).is_some_and(|set| {
            set.remove(k);
            set.is_empty()
        });
        if now_empty {
            self.by_connect.remove(&t);
        }
        self.bump_service_name(t, index, changes);
    }

    /// Removes a service instance and its checks. Returns whether it existed.
    pub(crate) fn delete_service(
        &mut self,
        index: u64,
        node: &str,
        id: &str,
        changes: &mut Vec<Change>,
    ) -> bool {
        let k = (key(node), key(id));
        let Some(old) = self.services.remove(&k) else {
            return false;
        };
        self.tables.services = index;
        changes.push(Change::Service(k.clone()));
        changes.push(Change::TableIndexes);
        self.unlink_name(&key(&old.name), &k, index, changes);
        self.unlink_connect(old.mesh.connect_target(&old.name).map(key), &k, index, changes);
        let checks: Vec<String> = prefix_range(&self.checks, &k.0)
            .filter(|(_, c)| key(&c.service_id) == k.1)
            .map(|((_, cid), _)| cid.clone())
            .collect();
        for cid in checks {
            self.delete_check(index, node, &cid, changes);
        }
        true
    }

    /// Inserts or replaces a check, keeping its `create_index`; the node (and the service,
    /// for a service check) must exist. An identical check is left untouched.
    pub(crate) fn upsert_check(&mut self, index: u64, mut check: Check, changes: &mut Vec<Change>) -> bool {
        let k = (key(&check.node), key(&check.check_id));
        if let Some(old) = self.checks.get(&k) {
            check.create_index = old.create_index;
            check.modify_index = old.modify_index;
            if **old == check {
                return false;
            }
        } else {
            check.create_index = index;
        }
        check.modify_index = index;
        let service_id = key(&check.service_id);
        self.checks.insert(k.clone(), Arc::new(check));
        self.tables.checks = index;
        changes.push(Change::Check(k.clone()));
        changes.push(Change::TableIndexes);
        self.bump_for_check(&k.0, &service_id, index, changes);
        true
    }

    fn bump_for_check(&mut self, node_key: &str, service_id: &str, index: u64, changes: &mut Vec<Change>) {
        if service_id.is_empty() {
            self.bump_node_services(node_key, index, changes);
        } else if let Some(s) = self.services.get(&(node_key.to_owned(), service_id.to_owned())) {
            let n = key(&s.name);
            self.bump_service_name(n, index, changes);
        }
    }

    /// Removes a check. Returns whether it existed.
    pub(crate) fn delete_check(
        &mut self,
        index: u64,
        node: &str,
        check_id: &str,
        changes: &mut Vec<Change>,
    ) -> bool {
        let k = (key(node), key(check_id));
        let Some(old) = self.checks.remove(&k) else {
            return false;
        };
        self.tables.checks = index;
        changes.push(Change::Check(k.clone()));
        changes.push(Change::TableIndexes);
        self.bump_for_check(&k.0, &key(&old.service_id), index, changes);
        true
    }

    /// Inserts or replaces a prepared query, keeping its `create_index` and maintaining the
    /// name index; the caller has checked that the name is free. An identical query is left
    /// untouched. Returns whether it changed.
    pub(crate) fn upsert_query(
        &mut self,
        index: u64,
        mut q: PreparedQuery,
        changes: &mut Vec<Change>,
    ) -> bool {
        let id = key(&q.id);
        if let Some(old) = self.queries.get(&id).cloned() {
            q.create_index = old.create_index;
            q.modify_index = old.modify_index;
            if *old == q {
                return false;
            }
            if !old.name.is_empty() {
                self.query_names.remove(&key(&old.name));
            }
        } else {
            q.create_index = index;
        }
        q.modify_index = index;
        if !q.name.is_empty() {
            self.query_names.insert(key(&q.name), id.clone());
        }
        self.queries.insert(id.clone(), Arc::new(q));
        self.tables.queries = index;
        changes.push(Change::Query(id));
        changes.push(Change::TableIndexes);
        true
    }

    /// Replaces the whole catalog with `dump` (a backup restore at `index`): every row of
    /// the old and the new catalog is reported as changed, so the store deletes what is gone
    /// and writes what is new; the table and service-name indexes move to `index` so
    /// blocking queries wake. Rows keep the indexes they were saved with.
    pub(crate) fn restore(&mut self, index: u64, dump: CatalogDump, changes: &mut Vec<Change>) {
        let mut fresh = Self::from_dump(dump);
        for state in [&*self, &fresh] {
            changes.extend(state.nodes.keys().cloned().map(Change::Node));
            changes.extend(state.services.keys().cloned().map(Change::Service));
            changes.extend(state.checks.keys().cloned().map(Change::Check));
            changes.extend(state.service_indexes.keys().cloned().map(Change::ServiceIndex));
            changes.extend(state.queries.keys().cloned().map(Change::Query));
            state.kv.row_changes(changes);
        }
        fresh.kv.mark_restored(index);
        fresh.acl.touch(index);
        changes.push(Change::Acl);
        changes.push(Change::Operator);
        fresh.config_entries.touch(index);
        changes.push(Change::ConfigEntries);
        changes.push(Change::TableIndexes);
        fresh.tables = TableIndexes { nodes: index, services: index, checks: index, queries: index };
        let names: Vec<String> = fresh.by_name.keys().cloned().collect();
        for n in names {
            fresh.service_indexes.insert(n, index);
        }
        *self = fresh;
    }

    /// Removes a prepared query. Returns whether it existed.
    pub(crate) fn delete_query(&mut self, index: u64, id: &str, changes: &mut Vec<Change>) -> bool {
        let id = key(id);
        let Some(old) = self.queries.remove(&id) else {
            return false;
        };
        if !old.name.is_empty() {
            self.query_names.remove(&key(&old.name));
        }
        self.tables.queries = index;
        changes.push(Change::Query(id));
        changes.push(Change::TableIndexes);
        true
    }
}
