//! Gateway links: the services an `ingress-gateway` or `terminating-gateway` config entry
//! links (Consul's `gateway-services` table), computed from the entries and the catalog.
//!
//! Stage: HTTP read model. Input: a published catalog (its config entries and service names)
//! -> output: Consul's `GatewayService` rows, by gateway or by linked service.
//! Invariants: a link is derived at read time, never stored, so a service registered after
//! its gateway's entry is covered by a wildcard (`*`) at once, as Consul's catalog updates
//! its table on registration; a wildcard covers every typical service but `consul`, and an
//! explicit link of the same service wins (Consul's `updateGatewayNamespace`); rows are
//! ordered by service name; an ingress link carries its listener's port and protocol, a
//! terminating link its TLS files and SNI.

use serde::Serialize;
use serde_json::{Map, Value};

use super::config_entry_kind::{INGRESS_GATEWAY, TERMINATING_GATEWAY};
use crate::catalog::CatalogState;
use crate::catalog::config_entry::ConfigEntry;

/// Consul's `ServiceName` (no namespace outside Enterprise).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ServiceNameJson {
    pub(crate) name: String,
}

/// Consul's `GatewayService`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GatewayServiceJson {
    pub(crate) gateway: ServiceNameJson,
    pub(crate) service: ServiceNameJson,
    pub(crate) gateway_kind: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) port: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) protocol: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) hosts: Vec<String>,
    #[serde(rename = "CAFile", skip_serializing_if = "String::is_empty")]
    pub(crate) ca_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) cert_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) key_file: String,
    #[serde(rename = "SNI", skip_serializing_if = "String::is_empty")]
    pub(crate) sni: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) from_wildcard: bool,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn text(obj: &Map<String, Value>, key: &str) -> String {
    obj.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn objects<'a>(obj: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    obj.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object)
}

/// One link as the entry states it (service name possibly `*`).
fn link(e: &ConfigEntry, service: &str) -> GatewayServiceJson {
    GatewayServiceJson {
        gateway: ServiceNameJson { name: e.name.clone() },
        service: ServiceNameJson { name: service.to_owned() },
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
fn stated_links(e: &ConfigEntry) -> Vec<GatewayServiceJson> {
    let Some(body) = e.body.as_object() else { return Vec::new() };
    let mut out = Vec::new();
    if e.kind == INGRESS_GATEWAY {
        for l in objects(body, "Listeners") {
            for s in objects(l, "Services") {
                let mut g = link(e, &text(s, "Name"));
                g.port = l.get("Port").and_then(Value::as_u64).unwrap_or(0);
                g.protocol = text(l, "Protocol");
                g.hosts = objects_str(s.get("Hosts"));
                out.push(g);
            }
        }
    } else if e.kind == TERMINATING_GATEWAY {
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
pub(crate) fn entry_links(cat: &CatalogState, e: &ConfigEntry) -> Vec<GatewayServiceJson> {
    let stated = stated_links(e);
    let explicit: Vec<String> =
        stated.iter().filter(|g| g.service.name != "*").map(|g| g.service.name.clone()).collect();
    let mut out: Vec<GatewayServiceJson> = stated.iter().filter(|g| g.service.name != "*").cloned().collect();
    if let Some(w) = stated.iter().find(|g| g.service.name == "*") {
        for name in wildcard_names(cat).into_iter().filter(|n| !explicit.contains(n)) {
            let mut g = w.clone();
            g.service.name = name;
            g.from_wildcard = true;
            out.push(g);
        }
    }
    out.sort_by(|a, b| a.service.name.cmp(&b.service.name));
    out
}

/// The links of gateway `name` (its ingress entry, else its terminating entry); `None` when
/// neither exists (Consul answers `null`).
pub(crate) fn gateway_links(cat: &CatalogState, name: &str) -> Option<Vec<GatewayServiceJson>> {
    let entries = cat.config_entries();
    let e = entries.get(INGRESS_GATEWAY, name).or_else(|| entries.get(TERMINATING_GATEWAY, name))?;
    Some(entry_links(cat, e))
}

/// The ingress gateways (by name) that link `service`.
pub(crate) fn ingress_gateways_of(cat: &CatalogState, service: &str) -> Vec<String> {
    cat.config_entries()
        .of_kind(INGRESS_GATEWAY)
        .filter(|e| entry_links(cat, e).iter().any(|g| g.service.name == service))
        .map(|e| e.name.clone())
        .collect()
}

/// The index a gateway read blocks on: the last change to a gateway entry, and once there was
/// one, the services a wildcard covers; 0 (shown as 1, as Consul 1.8.7 shows [live]) while no
/// gateway entry was ever written.
pub(crate) fn links_index(cat: &CatalogState) -> u64 {
    let entries = cat.config_entries();
    let own = entries.kind_index(INGRESS_GATEWAY).max(entries.kind_index(TERMINATING_GATEWAY));
    if own == 0 { 0 } else { own.max(cat.table_indexes().services) }
}
