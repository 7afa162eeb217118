//! The anti-entropy diff: what to propose so the catalog's record of this agent's node matches
//! the agent's local state.
//!
//! Input: the agent's own registration (node, `consul` service on servers, `serfHealth`), its
//! local services and checks, and the catalog of one published snapshot → output: the commands
//! that repair the difference, in the order they must be proposed (node first, then services
//! with their checks, then lone checks, then deregistrations).
//! Pure: no clock, no IO; an empty plan means "in sync".
//! Invariants:
//! - A service or check the catalog holds on this node but the local state does not is
//!   deregistered, except the agent-managed ones Consul's anti-entropy skips: the `consul`
//!   service and the `serfHealth` check (those are only re-added when missing).
//! - A check whose definition matches but whose status or output differs gets an
//!   `UpdateCheck`; any other difference re-registers the record.
//! - Fields the state machine derives (indexes, the node name's spelling, a check's service
//!   name and tags) are not compared, so a record just written is never seen as different.
//! - `EnableTagOverride`: the catalog's tags win (they are neither compared nor overwritten).
//! - A local check on a service the local state does not hold is left out (it cannot be
//!   registered; only the agent API could have added it, on a catalog-only service).

use std::collections::BTreeSet;

use super::Entries;
use crate::catalog::{CatalogState, Check, Service, key};
use crate::catalog::{CheckUpdate, Command, Deregistration, Registration};

/// Consul's service of the servers, managed by the servers themselves.
pub(crate) const CONSUL_SERVICE_ID: &str = "consul";
/// Consul's gossip health check, managed by the leader's reconcile.
pub(crate) const SERF_CHECK_ID: &str = "serfHealth";

/// The commands that make `catalog`'s view of `own.node` match `local`.
pub(crate) fn plan(own: &Registration, local: &Entries, catalog: &CatalogState) -> Vec<Command> {
    let mut out = Vec::new();
    own_records(own, catalog, &mut out);
    let done_checks = local_services(own, local, catalog, &mut out);
    lone_checks(own, local, catalog, &done_checks, &mut out);
    let node = own.node.name.as_str();
    let gone_services = stale_services(node, local, catalog, &mut out);
    stale_checks(node, local, catalog, &gone_services, &mut out);
    out
}

/// A registration on this agent's node that leaves the node record alone.
fn registration(own: &Registration, service: Option<Service>, checks: Vec<Check>) -> Registration {
    Registration { node: own.node.clone(), skip_node_update: true, service, checks }
}

/// Step 1: the agent's own records: the whole of `own` when the node is missing, else only
/// its missing service and checks.
fn own_records(own: &Registration, catalog: &CatalogState, out: &mut Vec<Command>) {
    let node = own.node.name.as_str();
    if catalog.node(node).is_none() {
        out.push(Command::Register(own.clone()));
    } else {
        let service = own.service.clone().filter(|s| catalog.service(node, &s.id).is_none());
        let checks: Vec<Check> =
            own.checks.iter().filter(|c| catalog.check(node, &c.check_id).is_none()).cloned().collect();
        if service.is_some() || !checks.is_empty() {
            out.push(Command::Register(Registration {
                skip_node_update: true,
                service,
                checks,
                ..own.clone()
            }));
        }
    }
}

/// Step 2: each local service that differs, re-registered with its checks that differ.
/// Returns the keys of the checks of those services (handled here, not in step 3).
fn local_services(
    own: &Registration,
    local: &Entries,
    catalog: &CatalogState,
    out: &mut Vec<Command>,
) -> BTreeSet<String> {
    let node = own.node.name.as_str();
    let mut done_checks = BTreeSet::new();
    for (k, ls) in &local.services {
        let cat = catalog.service(node, &ls.service.id);
        let mut want = ls.service.clone();
        if let Some(c) = cat
            && want.enable_tag_override
        {
            want.tags.clone_from(&c.tags);
        }
        if cat.is_some_and(|c| same_service(&want, c)) {
            continue;
        }
        let mut checks = Vec::new();
        for (ck, lc) in local.checks.iter().filter(|(_, lc)| key(&lc.check.service_id) == *k) {
            let differs = catalog.check(node, &lc.check.check_id).is_none_or(|c| !same_check(&lc.check, c));
            if differs {
                checks.push(lc.check.clone());
            }
            done_checks.insert(ck.clone());
        }
        out.push(Command::Register(registration(own, Some(want), checks)));
    }
    done_checks
}

/// Step 3: the other local checks: an `UpdateCheck` when only status or output differ, a
/// registration when the definition does.
fn lone_checks(
    own: &Registration,
    local: &Entries,
    catalog: &CatalogState,
    done_checks: &BTreeSet<String>,
    out: &mut Vec<Command>,
) {
    let node = own.node.name.as_str();
    for (ck, lc) in &local.checks {
        // A check of a service the agent does not own cannot be registered (the service is
        // deregistered below); Consul's local state cannot hold one either.
        let orphan =
            !lc.check.service_id.is_empty() && !local.services.contains_key(&key(&lc.check.service_id));
        if done_checks.contains(ck) || orphan {
            continue;
        }
        match catalog.check(node, &lc.check.check_id) {
            Some(c) if same_definition(&lc.check, c) => {
                if c.status != lc.check.status || c.output != lc.check.output {
                    out.push(Command::UpdateCheck(CheckUpdate {
                        node: node.to_owned(),
                        check_id: c.check_id.clone(),
                        status: lc.check.status,
                        output: lc.check.output.clone(),
                    }));
                }
            }
            _ => out.push(Command::Register(registration(own, None, vec![lc.check.clone()]))),
        }
    }
}

/// Step 4: deregisters the services the catalog holds on `node` and the local state does not
/// (except `consul`). Returns their keys.
fn stale_services(
    node: &str,
    local: &Entries,
    catalog: &CatalogState,
    out: &mut Vec<Command>,
) -> BTreeSet<String> {
    let mut gone_services = BTreeSet::new();
    for s in catalog.node_services(node) {
        let k = key(&s.id);
        if local.services.contains_key(&k) || k == key(CONSUL_SERVICE_ID) {
            continue;
        }
        out.push(Command::Deregister(Deregistration {
            node: node.to_owned(),
            service_id: Some(s.id.clone()),
            check_id: None,
        }));
        gone_services.insert(k);
    }
    gone_services
}

/// Step 5: deregisters the checks the catalog holds on `node` and the local state does not
/// (except `serfHealth`, and the checks of services step 4 deregistered, which go with them).
fn stale_checks(
    node: &str,
    local: &Entries,
    catalog: &CatalogState,
    gone_services: &BTreeSet<String>,
    out: &mut Vec<Command>,
) {
    for c in catalog.node_checks(node) {
        let k = key(&c.check_id);
        if local.checks.contains_key(&k)
            || k == key(SERF_CHECK_ID)
            || (!c.service_id.is_empty() && gone_services.contains(&key(&c.service_id)))
        {
            continue;
        }
        out.push(Command::Deregister(Deregistration {
            node: node.to_owned(),
            service_id: None,
            check_id: Some(c.check_id.clone()),
        }));
    }
}

/// Whether two instances agree on everything the agent defines.
fn same_service(want: &Service, have: &Service) -> bool {
    let strip = |s: &Service| Service { node: String::new(), create_index: 0, modify_index: 0, ..s.clone() };
    strip(want) == strip(have)
}

/// Whether two checks agree on their definition (not status or output).
fn same_definition(want: &Check, have: &Check) -> bool {
    let strip = |c: &Check| Check {
        node: String::new(),
        service_id: key(&c.service_id),
        service_name: String::new(),
        service_tags: Vec::new(),
        status: crate::catalog::HealthStatus::Passing,
        output: String::new(),
        create_index: 0,
        modify_index: 0,
        ..c.clone()
    };
    strip(want) == strip(have)
}

/// Whether two checks agree on definition, status and output.
fn same_check(want: &Check, have: &Check) -> bool {
    same_definition(want, have) && want.status == have.status && want.output == have.output
}

/// One line for the log: what a command repairs.
pub(crate) fn describe(cmd: &Command) -> String {
    match cmd {
        Command::Register(r) => {
            let mut parts = Vec::new();
            if !r.skip_node_update {
                parts.push(format!("node {}", r.node.name));
            }
            if let Some(s) = &r.service {
                parts.push(format!("service {}", s.id));
            }
            parts.extend(r.checks.iter().map(|c| format!("check {}", c.check_id)));
            format!("registered {}", parts.join(", "))
        }
        Command::Deregister(d) => match (&d.service_id, &d.check_id) {
            (Some(s), _) => format!("deregistered service {s}"),
            (None, Some(c)) => format!("deregistered check {c}"),
            (None, None) => format!("deregistered node {}", d.node),
        },
        Command::UpdateCheck(u) => format!("set check {} to {}", u.check_id, u.status.as_str()),
        other => format!("{other:?}"),
    }
}
