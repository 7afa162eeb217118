//! Config-entry kinds: Consul 1.8.7's decoding, validation and normalisation of one entry.
//!
//! Stage: HTTP input. Input: the JSON body of `PUT /v1/config` and the catalog it is checked
//! against -> output: a `catalog::config_entry::ConfigEntry` (kind, name and the normalised
//! document, as Consul's `Normalize` leaves it) or Consul's error text and status [live].
//! Invariants: keys match Consul's field names in any case and in snake_case (Consul's
//! `lib/decode` translation) and are stored under Consul's names; an unknown key is Consul's
//! 400 `invalid config key "X"`; `Namespace` (Enterprise) is dropped when empty; `CreateIndex`
//! and `ModifyIndex` in a body are ignored. Defaults are those Consul's JSON shows for each
//! kind (`MeshGateway: {}`, ingress listener `Protocol: "tcp"`, `Hosts: null`...). No
//! discovery chain is compiled: routers, splitters and resolvers are checked only for what
//! their own `Validate` checks here (a splitter needs splits).

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::catalog::CatalogState;
use crate::catalog::config_entry::ConfigEntry;

/// `service-defaults`.
pub(crate) const SERVICE_DEFAULTS: &str = "service-defaults";
/// `proxy-defaults`.
pub(crate) const PROXY_DEFAULTS: &str = "proxy-defaults";
/// `ingress-gateway`.
pub(crate) const INGRESS_GATEWAY: &str = "ingress-gateway";
/// `terminating-gateway`.
pub(crate) const TERMINATING_GATEWAY: &str = "terminating-gateway";

/// Every kind Consul 1.8.7 knows, with its top-level fields besides `Kind`, `Name`,
/// `Namespace`, `CreateIndex` and `ModifyIndex`.
const KINDS: &[(&str, &[&str])] = &[
    (SERVICE_DEFAULTS, &["Protocol", "MeshGateway", "Expose", "ExternalSNI"]),
    (PROXY_DEFAULTS, &["Config", "MeshGateway", "Expose"]),
    ("service-router", &["Routes"]),
    ("service-splitter", &["Splits"]),
    (
        "service-resolver",
        &["DefaultSubset", "Subsets", "Redirect", "Failover", "ConnectTimeout", "LoadBalancer"],
    ),
    (INGRESS_GATEWAY, &["TLS", "Listeners"]),
    (TERMINATING_GATEWAY, &["Services"]),
];

const COMMON: &[&str] = &["Kind", "Name", "Namespace", "CreateIndex", "ModifyIndex"];

/// The document fields of `kind` in the order of Consul's struct (empty for an unknown kind).
pub(crate) fn field_order(kind: &str) -> &'static [&'static str] {
    KINDS.iter().find(|(k, _)| *k == kind).map_or(&[], |(_, f)| f)
}

/// Whether Consul 1.8.7 knows `kind`.
pub(crate) fn known_kind(kind: &str) -> bool {
    KINDS.iter().any(|(k, _)| *k == kind)
}

/// Consul's error for an unknown kind (`status` differs between its endpoints).
pub(crate) fn unknown_kind(kind: &str) -> String {
    format!("invalid config entry kind: {kind}")
}

fn decoding(msg: &str) -> ApiError {
    ApiError::BadRequest(format!("Bad request: Request decoding failed: {msg}"))
}

/// Decodes, validates and normalises the body of `PUT /v1/config`.
pub(crate) fn decode_entry(value: Value, cat: &CatalogState) -> Result<ConfigEntry, ApiError> {
    let Value::Object(obj) = value else {
        let got = if value.is_array() { "slice" } else { "other" };
        return Err(decoding(&format!("'' expected a map, got '{got}'")));
    };
    let kind = match obj.get("Kind").or_else(|| obj.get("kind")) {
        None => return Err(decoding("Payload does not contain a kind/Kind key at the top level")),
        Some(Value::String(k)) => k.clone(),
        Some(_) => return Err(decoding("Kind value in payload is not a string")),
    };
    let Some((_, fields)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        return Err(decoding(&unknown_kind(&kind)));
    };
    let mut body = canonical(obj, &[COMMON, fields].concat()).map_err(|e| decoding(&e))?;
    let name = match body.remove("Name") {
        Some(Value::String(n)) => n,
        _ => String::new(),
    };
    for k in ["Kind", "CreateIndex", "ModifyIndex"] {
        body.remove(k);
    }
    drop_empty(&mut body, "Namespace");
    let name = normalise(&kind, name, &mut body)?;
    validate(&kind, &name, &body, cat).map_err(ApiError::Internal)?;
    Ok(ConfigEntry { kind, name, body: Value::Object(body), create_index: 0, modify_index: 0 })
}

/// Renames `obj`'s keys to the `known` field they match (case-insensitive, `_` ignored).
fn canonical(obj: Map<String, Value>, known: &[&str]) -> Result<Map<String, Value>, String> {
    let fold = |s: &str| s.replace('_', "").to_ascii_lowercase();
    let mut out = Map::new();
    for (k, v) in obj {
        let Some(name) = known.iter().find(|n| fold(n) == fold(&k)) else {
            return Err(format!("1 error occurred:\n\t* invalid config key \"{k}\"\n\n"));
        };
        out.insert((*name).to_owned(), v);
    }
    Ok(out)
}

fn drop_empty(obj: &mut Map<String, Value>, key: &str) {
    if matches!(obj.get(key), Some(Value::String(s)) if s.is_empty()) || obj.get(key) == Some(&Value::Null) {
        obj.remove(key);
    }
}

fn default_to(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let v = obj.entry(key.to_owned()).or_insert(Value::Null);
    if v.is_null() || v.as_str() == Some("") {
        *v = value;
    }
}

/// The nested objects of `obj[key]` (an array), each with its keys made canonical.
fn canonical_list(
    obj: &mut Map<String, Value>,
    key: &str,
    known: &[&str],
    mut each: impl FnMut(&mut Map<String, Value>),
) -> Result<(), ApiError> {
    if let Some(Value::Array(items)) = obj.get_mut(key) {
        for item in items.iter_mut() {
            let Value::Object(m) = std::mem::take(item) else {
                return Err(decoding(&format!("'{key}[0]' expected a map, got 'other'")));
            };
            let mut m = canonical(m, known).map_err(|e| decoding(&e))?;
            drop_empty(&mut m, "Namespace");
            each(&mut m);
            *item = Value::Object(m);
        }
    }
    Ok(())
}

/// Consul's `Normalize` and the defaults its JSON shows; returns the entry's name.
fn normalise(kind: &str, name: String, body: &mut Map<String, Value>) -> Result<String, ApiError> {
    match kind {
        SERVICE_DEFAULTS | PROXY_DEFAULTS => {
            default_to(body, "MeshGateway", Value::Object(Map::new()));
            default_to(body, "Expose", Value::Object(Map::new()));
            drop_empty(body, "Protocol");
            drop_empty(body, "ExternalSNI");
            if kind == PROXY_DEFAULTS {
                body.entry("Config").or_insert(Value::Null);
                // Consul's `ProxyConfigEntry.Normalize`: the only proxy-defaults is "global".
                return Ok("global".into());
            }
        }
        INGRESS_GATEWAY => {
            let tls = match body.remove("TLS") {
                Some(Value::Object(m)) => canonical(m, &["Enabled"]).map_err(|e| decoding(&e))?,
                _ => Map::new(),
            };
            let mut tls = tls;
            default_to(&mut tls, "Enabled", Value::Bool(false));
            body.insert("TLS".into(), Value::Object(tls));
            body.entry("Listeners").or_insert(Value::Null);
            canonical_list(body, "Listeners", &["Port", "Protocol", "Services"], |l| {
                default_to(l, "Port", Value::from(0));
                default_to(l, "Protocol", Value::from("tcp"));
                l.entry("Services").or_insert(Value::Null);
            })?;
            if let Some(Value::Array(ls)) = body.get_mut("Listeners") {
                for l in ls.iter_mut().filter_map(Value::as_object_mut) {
                    canonical_list(l, "Services", &["Name", "Namespace", "Hosts"], |s| {
                        s.entry("Hosts").or_insert(Value::Null);
                    })?;
                }
            }
        }
        TERMINATING_GATEWAY => {
            body.entry("Services").or_insert(Value::Null);
            canonical_list(
                body,
                "Services",
                &["Name", "Namespace", "CAFile", "CertFile", "KeyFile", "SNI"],
                |s| {
                    for k in ["CAFile", "CertFile", "KeyFile", "SNI"] {
                        drop_empty(s, k);
                    }
                },
            )?;
        }
        _ => {}
    }
    Ok(name)
}

fn str_of<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

fn list<'a>(obj: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    obj.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object)
}

/// Consul's `Validate` for the kind (its messages, answered with a 500 as Consul's RPC
/// errors are), and the ingress check of each service's protocol against its listener's.
fn validate(kind: &str, name: &str, body: &Map<String, Value>, cat: &CatalogState) -> Result<(), String> {
    if name.is_empty() {
        return Err(match kind {
            SERVICE_DEFAULTS | TERMINATING_GATEWAY => "serviceName is required".into(),
            INGRESS_GATEWAY => "failed inserting config entry: object missing primary index".into(),
            _ => "Name is required".into(),
        });
    }
    match kind {
        "service-splitter" if list(body, "Splits").next().is_none() => Err("no splits configured".into()),
        TERMINATING_GATEWAY => {
            if list(body, "Services").any(|s| str_of(s, "Name").is_empty()) {
                return Err("Service name cannot be blank.".into());
            }
            Ok(())
        }
        INGRESS_GATEWAY => validate_ingress(body, cat),
        _ => Ok(()),
    }
}

fn validate_ingress(body: &Map<String, Value>, cat: &CatalogState) -> Result<(), String> {
    let mut ports = std::collections::BTreeSet::new();
    for l in list(body, "Listeners") {
        let port = l.get("Port").and_then(Value::as_u64).unwrap_or(0);
        let protocol = str_of(l, "Protocol");
        if !ports.insert(port) {
            return Err(format!("port {port} declared on two listeners"));
        }
        let services: Vec<_> = list(l, "Services").collect();
        if services.is_empty() {
            return Err(format!("No service declared for listener with port {port}"));
        }
        if !matches!(protocol, "tcp" | "http" | "http2" | "grpc") {
            return Err(format!(
                "protocol must be 'tcp', 'http', 'http2', or 'grpc'. '{protocol}' is an unsupported protocol"
            ));
        }
        if protocol == "tcp" && services.len() > 1 {
            return Err(format!(
                "Multiple services per listener are only supported for protocol = 'http' (listener on port {port})"
            ));
        }
        for s in services {
            let svc = str_of(s, "Name");
            if svc == "*" {
                if protocol != "http" {
                    return Err(format!(
                        "Wildcard service name is only valid for protocol = 'http' (listener on port {port})"
                    ));
                }
                continue;
            }
            let hosts = s.get("Hosts").and_then(Value::as_array).is_some_and(|h| !h.is_empty());
            if hosts && protocol == "tcp" {
                return Err(format!(
                    "Associating hosts to a service is not supported for the tcp protocol (listener on port {port})"
                ));
            }
            let theirs = service_protocol(cat, svc);
            if theirs != protocol {
                return Err(format!(
                    "service {svc:?} has protocol {theirs:?}, which does not match defined listener protocol {protocol:?}"
                ));
            }
        }
    }
    Ok(())
}

/// A service's protocol as Consul resolves it without a discovery chain: its
/// `service-defaults`, else `proxy-defaults`' `Config.protocol`, else `tcp`.
pub(crate) fn service_protocol(cat: &CatalogState, service: &str) -> String {
    let entries = cat.config_entries();
    let own = entries
        .get(SERVICE_DEFAULTS, service)
        .and_then(|e| e.body.get("Protocol")?.as_str().map(str::to_owned));
    let global = || {
        let e = entries.get(PROXY_DEFAULTS, "global")?;
        e.body.get("Config")?.get("protocol")?.as_str().map(str::to_owned)
    };
    own.filter(|p| !p.is_empty()).or_else(global).unwrap_or_else(|| "tcp".into())
}
