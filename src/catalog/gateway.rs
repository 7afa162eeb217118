//! Gateway links: the services an `ingress-gateway` or `terminating-gateway` config entry
//! links (Consul's `gateway-services` table), derived from the entries and the catalog.
//!
//! Stage: catalog read model (pure). Input: a `CatalogState` (its config entries, whose
//! documents carry Consul's field names, and its service names) -> output: `GatewayLink`s, by
//! gateway or by linked service, for the HTTP gateway endpoints and `<svc>.ingress` DNS.
//! Invariants: a link is derived at read time, never stored, so a service registered after
//! its gateway's entry is covered by a wildcard (`*`) at once, as Consul's catalog updates
//! its table on registration; a wildcard covers every typical service but `consul`, and an
//! explicit link of the same service wins (Consul's `updateGatewayNamespace`); links are
//! ordered by service name; an ingress link carries its listener's port and protocol, a
//! terminating link its TLS files and SNI.

use serde_json::{Map, Value};

use super::CatalogState;
use super::config_entry::ConfigEntry;
use super::mesh::{KIND_INGRESS_GATEWAY, KIND_TERMINATING_GATEWAY};

/// One gateway-to-service link (Consul's `GatewayService`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatewayLink {
    /// The gateway's name.
    pub(crate) gateway: String,
    /// The linked service's name.
    pub(crate) service: String,
    /// The gateway's kind.
    pub(crate) gateway_kind: String,
    /// Ingress: the listener's port.
    pub(crate) port: u64,
    /// Ingress: the listener's protocol.
    pub(crate) protocol: String,
    /// Ingress: the service's hosts.
    pub(crate) hosts: Vec<String>,
    /// Terminating: CA file.
    pub(crate) ca_file: String,
    /// Terminating: client certificate file.
    pub(crate) cert_file: String,
    /// Terminating: client key file.
    pub(crate) key_file: String,
    /// Terminating: SNI.
    pub(crate) sni: String,
    /// Linked by a wildcard.
    pub(crate) from_wildcard: bool,
    /// The entry's CreateIndex.
    pub(crate) create_index: u64,
    /// The entry's ModifyIndex.
    pub(crate) modify_index: u64,
}

fn text(obj: &Map<String, Value>, key: &str) -> String {
    obj.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn objects<'a>(obj: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    obj.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object)
}

/// One link as the entry states it (service name possibly `*`).
fn link(e: &ConfigEntry, service: &str) -> GatewayLink {
    GatewayLink {
        gateway: e.name.clone(),
        service: service.to_owned(),
        gateway_kind: e.kind.clone(),
        port: 0,
        protocol: String::new(),
        hosts: Vec::new(),
        ca_file: String::new(),
        cert_file: String::new(),
        key_file: String::new(),
        sni: String::new(),
        from_wildcard: false,
        create_index: e.create_index,
        modify_index: e.modify_index,
    }
}

/// The links an entry states, before wildcard expansion.
fn stated_links(e: &ConfigEntry) -> Vec<GatewayLink> {
    let Some(body) = e.body.as_object() else { return Vec::new() };
    let mut out = Vec::new();
    if e.kind == KIND_INGRESS_GATEWAY {
        for l in objects(body, "Listeners") {
            for s in objects(l, "Services") {
                let mut g = link(e, &text(s, "Name"));
                g.port = l.get("Port").and_then(Value::as_u64).unwrap_or(0);
                g.protocol = text(l, "Protocol");
                g.hosts = objects_str(s.get("Hosts"));
                out.push(g);
            }
        }
    } else if e.kind == KIND_TERMINATING_GATEWAY {
        for s in objects(body, "Services") {
            let mut g = link(e, &text(s, "Name"));
            g.ca_file = text(s, "CAFile");
            g.cert_file = text(s, "CertFile");
            g.key_file = text(s, "KeyFile");
            g.sni = text(s, "SNI");
            out.push(g);
        }
    }
    out
}

fn objects_str(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array).into_iter().flatten().filter_map(|h| h.as_str().map(str::to_owned)).collect()
}

/// Typical services a wildcard covers: every registered name but `consul`.
fn wildcard_names(cat: &CatalogState) -> Vec<String> {
    let mut names: Vec<String> = cat
        .services()
        .filter(|s| s.mesh.kind.is_empty() && s.name != "consul")
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The links of one gateway entry, wildcards expanded, ordered by service name.
pub(crate) fn entry_links(cat: &CatalogState, e: &ConfigEntry) -> Vec<GatewayLink> {
    let stated = stated_links(e);
    let explicit: Vec<String> =
        stated.iter().filter(|g| g.service != "*").map(|g| g.service.clone()).collect();
    let mut out: Vec<GatewayLink> = stated.iter().filter(|g| g.service != "*").cloned().collect();
    if let Some(w) = stated.iter().find(|g| g.service == "*") {
        for name in wildcard_names(cat).into_iter().filter(|n| !explicit.contains(n)) {
            let mut g = w.clone();
            g.service = name;
            g.from_wildcard = true;
            out.push(g);
        }
    }
    out.sort_by(|a, b| a.service.cmp(&b.service));
    out
}

/// The links of gateway `name` (its ingress entry, else its terminating entry); `None` when
/// neither exists (Consul answers `null`).
pub(crate) fn gateway_links(cat: &CatalogState, name: &str) -> Option<Vec<GatewayLink>> {
    let entries = cat.config_entries();
    let e =
        entries.get(KIND_INGRESS_GATEWAY, name).or_else(|| entries.get(KIND_TERMINATING_GATEWAY, name))?;
    Some(entry_links(cat, e))
}

/// The ingress gateways (by name) that link `service`.
pub(crate) fn ingress_gateways_of(cat: &CatalogState, service: &str) -> Vec<String> {
    cat.config_entries()
        .of_kind(KIND_INGRESS_GATEWAY)
        .filter(|e| entry_links(cat, e).iter().any(|g| g.service == service))
        .map(|e| e.name.clone())
        .collect()
}

/// The index a gateway read blocks on: the last change to a gateway entry, and once there was
/// one, the services a wildcard covers; 0 (shown as 1, as Consul 1.8.7 shows [live]) while no
/// gateway entry was ever written.
pub(crate) fn links_index(cat: &CatalogState) -> u64 {
    let entries = cat.config_entries();
    let own = entries.kind_index(KIND_INGRESS_GATEWAY).max(entries.kind_index(KIND_TERMINATING_GATEWAY));
    if own == 0 { 0 } else { own.max(cat.table_indexes().services) }
}
