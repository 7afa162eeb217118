//! AGENT DEFINITIONS: Consul's service and check *definition* format, shared by the HTTP agent
//! API and service definitions in config files.
//!
//! Input: a JSON object (`serde_json::Value`) → `ServiceDefinition` / `CheckSpec` (decoded,
//! not yet validated) → `into_registration` / `into_check` → a `catalog::Registration` plus the
//! TTL timers the agent must arm.
//! Invariants: field names match case-insensitively, with snake_case aliases; an unknown field
//! is an error naming it; semantic validation (Consul's messages: `Missing service name`,
//! `Invalid Weights: …`, `Invalid check: …`) happens in the `into_*` conversions; defaults
//! follow Consul: service ID = name, check ID `service:<ID>` (or `service:<ID>:<n>`, 1-based,
//! when there are several), check name `Service '<Name>' check`, initial status `critical`.
//! Files: `service` (service definitions), `check` (check definitions), `fields` (the
//! case-insensitive field reader; Go durations are `catalog::duration`'s); here the shared error, the
//! agent's own node and the TTL timers.

mod check;
mod fields;
mod mesh;
mod service;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Duration;

pub(crate) use crate::catalog::duration::{format_go_duration, parse_go_duration};
pub(crate) use check::{CheckSpec, decode_check_definition};
pub(crate) use fields::Fields;
pub(crate) use mesh::{decode_connect, decode_proxy, sidecar_id};
pub(crate) use service::{ServiceDefinition, decode_service_definition};
pub(crate) use service::{decode_ports, service_ports};

use crate::catalog::{Check, Node};

/// Why a definition could not be decoded or is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// A field the format does not have (Go's `DisallowUnknownFields`).
    #[error("json: unknown field {0:?}")]
    UnknownField(String),
    /// A field has the wrong JSON type or an unparsable value.
    #[error("{0}")]
    Decode(String),
    /// The definition decoded but breaks a rule; the text is Consul's message.
    #[error("{0}")]
    Invalid(String),
}

impl DefinitionError {
    /// Whether this is a decoding error (HTTP prefixes those with `Request decode failed: `).
    pub fn is_decode(&self) -> bool {
        matches!(self, Self::UnknownField(_) | Self::Decode(_))
    }
}

/// Consul's re-registration rule (`checkStateSnapshot` in `agent.go`): a check that already
/// exists on the node keeps its status and output, so re-registering a service (or restarting
/// with it in a config file) does not flap it to its initial status.
pub(crate) fn keep_check_state(checks: &mut [Check], cat: &crate::catalog::CatalogState) {
    for c in checks {
        if let Some(prev) = cat.check(&c.node, &c.check_id) {
            c.status = prev.status;
            c.output.clone_from(&prev.output);
        }
    }
}

/// Consul's refusal of a script check defined in a config file.
pub(crate) const SCRIPTS_DISABLED_LOCAL: &str = "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true";
/// Consul's refusal of a script check registered through the HTTP API.
pub(crate) const SCRIPTS_DISABLED_REMOTE: &str = "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";

/// A TTL timer the agent must run for a registered check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlSpec {
    /// Check ID on the agent's node.
    pub check_id: String,
    /// Time to live between updates.
    pub ttl: Duration,
}

/// This agent's own catalog node as Consul registers it: ID, name, datacenter and address
/// (the config's `node_id`, `node_name`, `datacenter`, `bind_addr`), the address also as
/// `lan`/`wan` (+ `_ipv4`/`_ipv6`) tagged addresses, and Consul's `consul-network-segment` meta.
pub(crate) fn agent_node(id: &str, name: &str, datacenter: &str, bind_addr: IpAddr) -> Node {
    let addr = bind_addr.to_string();
    let family = if bind_addr.is_ipv4() { "ipv4" } else { "ipv6" };
    let tagged_addresses = [
        ("lan".to_owned(), addr.clone()),
        (format!("lan_{family}"), addr.clone()),
        ("wan".to_owned(), addr.clone()),
        (format!("wan_{family}"), addr.clone()),
    ]
    .into_iter()
    .collect();
    Node {
        id: id.to_owned(),
        name: name.to_owned(),
        address: addr,
        datacenter: datacenter.to_owned(),
        tagged_addresses,
        meta: [("consul-network-segment".to_owned(), String::new())].into_iter().collect(),
        create_index: 0,
        modify_index: 0,
    }
}

fn invalid(msg: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid(msg.into())
}
