//! Consul keys cairn does not implement: the ones it accepts and ignores (with a warning at
//! start) and the security keys it refuses.
//!
//! Stage: file -> schema, before serde reads the file. Input: one file's JSON tree. Output: an
//! error naming the file and the first security key that would turn on something cairn does
//! not implement yet; else the tree without the accepted-but-unused keys, and their dotted
//! names for the start-up warning.
//! Invariants: the lists are data (dotted key paths); a security key is looked for in its
//! parent table and in every table of a parent list (`[[limits]]`), so no shape of a file
//! slips one past the refusal; any other malformed parent fails in `schema` as usual.
//!
//! Security keys never fail open: an agent asked for ACLs, TLS or a connection limit that it
//! would not enforce refuses to start (`key "connect" is not supported yet`) rather than serve
//! anonymous or plain-text requests. A key may still be given with the value that leaves the
//! feature off, as a Consul user reads it; it is then accepted with the usual warning:
//!
//! - `auto_encrypt`: only a block whose every value is `false` (or empty), e.g.
//!   `auto_encrypt { tls = false }` (cairn has no Connect CA to sign agent certificates).
//! - `limits.http_max_conns_per_client`, `limits.rpc_max_conns_per_client`: only `0` (no
//!   limit, which is what cairn does: a per-address connection cap on the HTTP API or the
//!   unauthenticated server RPC port is a defence an operator must not believe is on).
//! - `limits.kv_max_value_size`, `limits.txn_max_req_len`: only 512 KiB or more. cairn bounds a
//!   value and a transaction's values together at 512 KiB (Consul's default); a smaller limit
//!   it would not enforce, so it refuses one.
//! - `segments`: only `null` or `[]` (what Consul's OSS build and its test harness write);
//!   network segments are a Consul Enterprise feature that splits the LAN pool, which cairn
//!   does not have.
//! - `autopilot.min_quorum`: only `0` (unset). It keeps dead-server cleanup from shrinking the
//!   voters below a floor; the agent config does not feed it to cairn's autopilot, so a floor
//!   set here would silently not hold. Set it through `/v1/operator/autopilot/configuration`,
//!   which cairn honours.
//! - `limits.request_limits`: only with `mode` absent, `disabled` or `permissive` (Consul's
//!   server-wide read/write rate limits; `enforcing` would be a limit cairn does not apply).
//!
//! The rest of `limits` but the handshake timeouts (read by `schema`) stays accepted but
//! unused: `rpc_rate`/`rpc_max_burst` throttle only this agent's own requests to the servers,
//! and `rpc_client_timeout` is how long this agent waits. A dotted key is taken out of its
//! parent table or of every table of a parent list.
//!
//! `connect` (any value, `enabled = true` included) is accepted but unused. cairn serves
//! Connect's catalog side (service kinds, proxies, sidecar registration, `.connect.` names),
//! not its data plane: there is no CA, no leaf certificate, no intention and no authorize
//! endpoint (`/v1/agent/connect/*`, `/v1/connect/*` answer 404) and no gRPC for Envoy. A mesh
//! pointed at cairn therefore fails closed: a proxy gets no certificate to speak mTLS with
//! and no allow from an authorize call, so nothing is let through that Consul would refuse.
//! Refusing the key instead would refuse most Consul configs (and every agent Consul's own
//! test harness starts) for a feature whose absence cannot open anything.
//!
//! The other accepted-but-unused keys were checked for security weight: none turns on a
//! defence when set. `disable_remote_exec`, `ui`, `ui_config`, `tls.grpc`,
//! `ports.grpc*` and `addresses.grpc*` would turn on a feature cairn lacks (remote exec, the UI,
//! gRPC); ignoring them serves less, never more. `log_file`, `log_json` and
//! `enable_syslog` move where logs go (cairn logs to stderr, which systemd's journal keeps).
//! `performance`, `telemetry`, `rpc`, `raft_protocol`, the `retry_*`/`reconnect_*` timings,
//! `autopilot.*` (but `min_quorum`), `dns_config.use_cache`/`cache_max_age` and the leave
//! flags tune timing, metrics sinks or shutdown, not who may do what. The WAN keys
//! (`gossip_wan`, `reconnect_timeout_wan`, `translate_wan_addrs`, `advertise_addr_wan_ipv4/6`,
//! `bind_addr_wan`) tune gossip or rewrite addresses of rows from other datacenters, which
//! cairn does not serve yet; the one WAN key that restricts access, `serf_wan_allowed_cidrs`,
//! is a security key below and refuses the start (and `serf_lan_allowed_cidrs` is unknown,
//! so refused too).
//!
//! `encrypt` itself is implemented (gossip encryption) and is an ordinary key, and so are the
//! TLS keys (`ca_file`, `verify_incoming`, `tls {}`, `ports.https`, …; `config::tls`) but
//! `tls_prefer_server_cipher_suites` (ignored, as in modern Consul) and `tls.grpc` (cairn
//! serves no gRPC). No command-line flag sets any of these keys.

use serde_json::{Map, Value};

use super::{ConfigError, value};

/// Consul agent-config keys that cairn accepts (so Consul configs load unchanged) but does not
/// act on yet; each is logged as ignored at start. A dotted entry is a key inside a table.
pub(super) const ACCEPTED_UNUSED: &[&str] = &[
    "bind_addr_wan",
    // WAN keys cairn does not act on yet: gossip tuning, the reaping of failed WAN members, the
    // WAN tagged addresses and their translation for rows of other datacenters (which cairn
    // does not serve until it forwards `?dc=`).
    "advertise_addr_wan_ipv4",
    "advertise_addr_wan_ipv6",
    "gossip_wan",
    "reconnect_timeout_wan",
    "translate_wan_addrs",
    "connect",
    "disable_host_node_id",
    "disable_remote_exec",
    "disable_update_check",
    "enable_syslog",
    "leave_on_terminate",
    "limits.rpc_rate",
    "limits.rpc_max_burst",
    "limits.rpc_client_timeout",
    "log_file",
    "log_json",
    "performance",
    "raft_protocol",
    "reconnect_timeout",
    "retry_interval",
    "retry_max",
    "rpc",
    "skip_leave_on_interrupt",
    "telemetry",
    "tls_prefer_server_cipher_suites",
    "tls.grpc",
    "ui",
    "ui_config",
    "use_streaming_backend",
    // Ports Consul has that cairn does not bind (yet).
    "ports.grpc",
    "ports.grpc_tls",
    "ports.sidecar_min_port",
    "ports.sidecar_max_port",
    "addresses.grpc",
    "addresses.grpc_tls",
    "autopilot.last_contact_threshold",
    "autopilot.max_trailing_logs",
    "autopilot.server_stabilization_time",
    "autopilot.redundancy_zone_tag",
    "autopilot.disable_upgrade_migration",
    "autopilot.upgrade_version_tag",
    "dns_config.use_cache",
    "dns_config.cache_max_age",
    "dns_config.prefer_namespace",
];

/// The values of a security key that leave its feature off (see the module doc).
#[derive(Debug, Clone, Copy)]
enum Off {
    /// `false` (or `"false"`).
    False,
    /// This number (or its digits as a string).
    Number(i64),
    /// A table whose every value is `false` or a table of the same kind.
    AllFalse,
    /// `null` or an empty list.
    Empty,
    /// A number of at least this (a bound cairn already enforces, or a looser one).
    AtLeast(i64),
    /// A table whose `mode` is absent, `disabled` or `permissive` (nothing is refused).
    NotEnforcing,
}

/// Security keys cairn does not implement yet and the values that leave each off. A key given
/// with another value refuses the start; one left off is accepted but unused (a warning).
const SECURITY: &[(&str, Off)] = &[
    ("auto_encrypt", Off::AllFalse),
    ("limits.http_max_conns_per_client", Off::Number(0)),
    ("limits.rpc_max_conns_per_client", Off::Number(0)),
    ("limits.kv_max_value_size", Off::AtLeast(MAX_VALUE_BYTES)),
    ("limits.txn_max_req_len", Off::AtLeast(MAX_VALUE_BYTES)),
    ("limits.request_limits", Off::NotEnforcing),
    ("segments", Off::Empty),
    // Who may gossip on the WAN port: refusing to start beats gossiping with anyone.
    ("serf_wan_allowed_cidrs", Off::Empty),
    ("autopilot.min_quorum", Off::Number(0)),
];

/// The bound cairn puts on a KV value and on a transaction's values together (512 KiB, Consul's
/// default for both keys).
const MAX_VALUE_BYTES: i64 = 512 * 1024;

/// Refuses the first security key in `top` (file `file`) set to anything but its off value.
pub(super) fn refuse_unsupported(file: &str, top: &Map<String, Value>) -> Result<(), ConfigError> {
    let refuse = |key: &str| Err(ConfigError::Unsupported { file: file.to_owned(), key: key.to_owned() });
    for (key, off) in SECURITY {
        if lookup(top, key).any(|v| !is_off(*off, v)) {
            return refuse(key);
        }
    }
    Ok(())
}

/// The values of a dotted key: in its parent table, or in each table of a parent list (Consul
/// reads `[[limits]]`, a list of one table, as the table).
fn lookup<'a>(top: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    let (parent, name) = match key.split_once('.') {
        Some((parent, name)) => (top.get(parent), Some(name)),
        None => (top.get(key), None),
    };
    let tables: Vec<&Value> = match (parent, name) {
        (Some(Value::Array(items)), Some(_)) => items.iter().collect(),
        (Some(v), _) => vec![v],
        (None, _) => Vec::new(),
    };
    tables.into_iter().filter_map(move |t| match name {
        Some(name) => t.as_object()?.get(name),
        None => Some(t),
    })
}

/// Whether `v` leaves the feature off.
fn is_off(off: Off, v: &Value) -> bool {
    match off {
        // The schema's own readers, so the refusal and the schema agree on what a value means.
        Off::False => value::flag(v) == Ok(false),
        Off::Number(n) => value::int(v, n, n).is_ok(),
        Off::AllFalse => v
            .as_object()
            .is_some_and(|m| m.values().all(|x| is_off(Off::False, x) || is_off(Off::AllFalse, x))),
        Off::Empty => v.is_null() || v.as_array().is_some_and(Vec::is_empty),
        Off::AtLeast(n) => value::int(v, n, i64::MAX).is_ok(),
        Off::NotEnforcing => v.as_object().is_some_and(|m| {
            m.get("mode").is_none_or(|mode| matches!(mode.as_str(), Some("disabled" | "permissive")))
        }),
    }
}

/// Takes the keys listed in `ACCEPTED_UNUSED`, then the security keys left off, out of `top`;
/// returns their dotted names.
pub(super) fn take_unused(top: &mut Map<String, Value>) -> Vec<String> {
    let security = SECURITY.iter().map(|(key, _)| key);
    let mut taken = Vec::new();
    for key in ACCEPTED_UNUSED.iter().chain(security) {
        let found = match key.split_once('.') {
            Some((parent, name)) => match top.get_mut(parent) {
                Some(Value::Object(m)) => m.remove(name).is_some(),
                // `[[limits]]`: from every table of the list.
                Some(Value::Array(items)) => {
                    let removed = items.iter_mut().filter_map(Value::as_object_mut).map(|m| m.remove(name));
                    removed.filter(Option::is_some).count() > 0
                }
                _ => false,
            },
            None => top.remove(*key).is_some(),
        };
        if found {
            taken.push((*key).to_owned());
        }
    }
    taken
}
