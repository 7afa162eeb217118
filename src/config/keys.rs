//! Consul keys cairn does not implement: the ones it accepts and ignores (with a warning at
//! start).
//!
//! Stage: file -> schema, before serde reads the file. Input: one file's JSON tree. Output: the
//! tree without the accepted-but-unused keys, and their dotted names for the start-up warning.
//! Invariants: the lists are data (dotted key paths); a key is taken out only where its parent
//! is a table, so a malformed parent still fails in `schema` with its usual message.

use serde_json::{Map, Value};

/// Consul agent-config keys that cairn accepts (so Consul configs load unchanged) but does not
/// act on yet; each is logged as ignored at start. A dotted entry is a key inside a table.
pub(super) const ACCEPTED_UNUSED: &[&str] = &[
    "acl",
    "advertise_addr_wan",
    "auto_encrypt",
    "bind_addr_wan",
    "connect",
    "disable_host_node_id",
    "disable_remote_exec",
    "disable_update_check",
    "enable_debug",
    "enable_syslog",
    "encrypt_verify_incoming",
    "encrypt_verify_outgoing",
    "leave_on_terminate",
    "limits",
    "log_file",
    "log_json",
    "performance",
    "primary_datacenter",
    "raft_protocol",
    "reconnect_timeout",
    "retry_interval",
    "retry_max",
    "rpc",
    "skip_leave_on_interrupt",
    "telemetry",
    "tls",
    "ui",
    "ui_config",
    "use_streaming_backend",
    "verify_incoming",
    "verify_outgoing",
    // Ports Consul has that cairn does not bind (yet).
    "ports.grpc",
    "ports.grpc_tls",
    "ports.https",
    "ports.serf_wan",
    "ports.sidecar_min_port",
    "ports.sidecar_max_port",
    "addresses.https",
    "addresses.grpc",
    "addresses.grpc_tls",
    "autopilot.last_contact_threshold",
    "autopilot.max_trailing_logs",
    "autopilot.min_quorum",
    "autopilot.server_stabilization_time",
    "autopilot.redundancy_zone_tag",
    "autopilot.disable_upgrade_migration",
    "autopilot.upgrade_version_tag",
    "dns_config.use_cache",
    "dns_config.cache_max_age",
    "dns_config.prefer_namespace",
];

/// Takes the keys listed in `ACCEPTED_UNUSED` out of `top`; returns their dotted names.
pub(super) fn take_unused(top: &mut Map<String, Value>) -> Vec<String> {
    let mut taken = Vec::new();
    for key in ACCEPTED_UNUSED {
        let (table, name) = match key.split_once('.') {
            Some((parent, name)) => match top.get_mut(parent) {
                Some(Value::Object(m)) => (m, name),
                _ => continue,
            },
            None => (&mut *top, *key),
        };
        if table.remove(name).is_some() {
            taken.push((*key).to_owned());
        }
    }
    taken
}
