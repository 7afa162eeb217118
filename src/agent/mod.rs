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

mod duration;
mod fields;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

pub use duration::{format_go_duration, parse_go_duration};
pub(crate) use fields::Fields;

use serde_json::Value;

use crate::catalog::Registration;
use crate::catalog::{
    Check, CheckDefinition, HealthStatus, Node, Service, ServiceAddress, ServicePort, Weights,
};

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
pub fn keep_check_state(checks: &mut [Check], cat: &crate::catalog::CatalogState) {
    for c in checks {
        if let Some(prev) = cat.check(&c.node, &c.check_id) {
            c.status = prev.status;
            c.output.clone_from(&prev.output);
        }
    }
}

/// Consul's refusal of a script check defined in a config file.
pub const SCRIPTS_DISABLED_LOCAL: &str = "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true";
/// Consul's refusal of a script check registered through the HTTP API.
pub const SCRIPTS_DISABLED_REMOTE: &str = "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";

/// A TTL timer the agent must run for a registered check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlSpec {
    /// Check ID on the agent's node.
    pub check_id: String,
    /// Time to live between updates.
    pub ttl: Duration,
}

/// Consul's check definition (`CheckType` / `CheckDefinition`), decoded but not validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSpec {
    /// `CheckID` / `ID`.
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `ServiceID` (check register only).
    pub service_id: String,
    /// `Notes`.
    pub notes: String,
    /// `Status`: initial status (empty: critical).
    pub status: String,
    /// `TTL`.
    pub ttl: Duration,
    /// `Interval`.
    pub interval: Duration,
    /// `Timeout`.
    pub timeout: Duration,
    /// `DeregisterCriticalServiceAfter`.
    pub deregister_critical_service_after: Duration,
    /// `HTTP`.
    pub http: String,
    /// `Method`.
    pub method: String,
    /// `Header`.
    pub header: BTreeMap<String, Vec<String>>,
    /// `Body`.
    pub body: String,
    /// `DisableRedirects`.
    pub disable_redirects: bool,
    /// `TLSServerName`.
    pub tls_server_name: String,
    /// `TLSSkipVerify`.
    pub tls_skip_verify: bool,
    /// `TCP`.
    pub tcp: String,
    /// `TCPUseTLS`.
    pub tcp_use_tls: bool,
    /// `UDP`.
    pub udp: String,
    /// `GRPC`.
    pub grpc: String,
    /// `GRPCUseTLS`.
    pub grpc_use_tls: bool,
    /// `H2PING`.
    pub h2ping: String,
    /// `H2PingUseTLS` (absent: Consul's default, true).
    pub h2ping_use_tls: Option<bool>,
    /// `OSService`.
    pub os_service: String,
    /// `Args` / `ScriptArgs`.
    pub args: Vec<String>,
    /// `DockerContainerID`.
    pub docker_container_id: String,
    /// `AliasService`.
    pub alias_service: String,
    /// `AliasNode`.
    pub alias_node: String,
    /// `OutputMaxSize` (0: default 4096).
    pub output_max_size: i64,
    /// `SuccessBeforePassing`.
    pub success_before_passing: i64,
    /// `FailuresBeforeWarning`.
    pub failures_before_warning: i64,
    /// `FailuresBeforeCritical`.
    pub failures_before_critical: i64,
}

/// Consul's service definition, decoded but not validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDefinition {
    /// `ID` (empty: the name).
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `Tags`.
    pub tags: Vec<String>,
    /// `Address`.
    pub address: String,
    /// `TaggedAddresses`.
    pub tagged_addresses: BTreeMap<String, (String, i64)>,
    /// `Meta`.
    pub meta: BTreeMap<String, String>,
    /// `Port`.
    pub port: i64,
    /// `Ports[]` as (Name, Port, Default).
    pub ports: Vec<(String, i64, bool)>,
    /// `Kind` (only the empty, typical kind is supported).
    pub kind: String,
    /// `Weights` as (Passing, Warning), when given.
    pub weights: Option<(i64, i64)>,
    /// `EnableTagOverride`.
    pub enable_tag_override: bool,
    /// `Check` followed by `Checks`.
    pub checks: Vec<CheckSpec>,
}

/// Fields of a service definition the appliance accepts and ignores.
const IGNORED_SERVICE_FIELDS: &[&str] =
    &["Token", "Namespace", "Partition", "Proxy", "Connect", "SocketPath", "Locality", "EnterpriseMeta"];
/// Fields of a check definition the appliance accepts and ignores.
const IGNORED_CHECK_FIELDS: &[&str] =
    &["Shell", "Token", "Namespace", "Partition", "ProxyHTTP", "ProxyGRPC", "ExposedPort", "Type"];

/// This agent's own catalog node as Consul registers it: ID, name, datacenter and address
/// (the config's `node_id`, `node_name`, `datacenter`, `bind_addr`), the address also as
/// `lan`/`wan` (+ `_ipv4`/`_ipv6`) tagged addresses, and Consul's `consul-network-segment` meta.
pub fn agent_node(id: &str, name: &str, datacenter: &str, bind_addr: IpAddr) -> Node {
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

/// Decodes a service definition (`Name`, `ID`, `Tags`, …, `Check`, `Checks`).
pub fn decode_service_definition(v: &Value) -> Result<ServiceDefinition, DefinitionError> {
    let mut f = Fields::new(v, "ServiceDefinition")?;
    let mut def = ServiceDefinition {
        id: f.string(&["ID"])?.unwrap_or_default(),
        name: f.string(&["Name"])?.unwrap_or_default(),
        tags: f.strings(&["Tags"])?,
        address: f.string(&["Address"])?.unwrap_or_default(),
        meta: f.string_map(&["Meta"])?,
        port: f.int(&["Port"])?.unwrap_or(0),
        kind: f.string(&["Kind"])?.unwrap_or_default(),
        enable_tag_override: f.bool(&["EnableTagOverride"])?.unwrap_or(false),
        ..ServiceDefinition::default()
    };
    for (name, addr) in f.object_map(&["TaggedAddresses"])? {
        let mut a = Fields::new(&addr, "ServiceAddress")?;
        let address = a.string(&["Address"])?.unwrap_or_default();
        let port = a.int(&["Port"])?.unwrap_or(0);
        a.finish()?;
        def.tagged_addresses.insert(name, (address, port));
    }
    if let Some(ports) = f.take(&["Ports"]) {
        def.ports = decode_ports(&ports)?;
    }
    if let Some(w) = f.take(&["Weights"]) {
        let mut w = Fields::new(&w, "Weights")?;
        let passing = w.int(&["Passing"])?.unwrap_or(0);
        let warning = w.int(&["Warning"])?.unwrap_or(0);
        w.finish()?;
        def.weights = Some((passing, warning));
    }
    if let Some(c) = f.take(&["Check"]) {
        def.checks.push(decode_check_definition(&c)?);
    }
    match f.take(&["Checks"]) {
        None => {}
        Some(Value::Array(items)) => {
            for c in &items {
                def.checks.push(decode_check_definition(c)?);
            }
        }
        Some(other) => {
            return Err(DefinitionError::Decode(format!(
                "json: cannot unmarshal {} into Go struct field ServiceDefinition.Checks of type structs.CheckTypes",
                if other.is_object() { "object" } else { "value" }
            )));
        }
    }
    f.ignore(IGNORED_SERVICE_FIELDS);
    f.finish()?;
    Ok(def)
}

/// Decodes a check definition (`CheckType` in a service, or `/v1/agent/check/register`).
pub fn decode_check_definition(v: &Value) -> Result<CheckSpec, DefinitionError> {
    let mut f = Fields::new(v, "CheckType")?;
    let id = f.string(&["CheckID"])?;
    let id2 = f.string(&["ID"])?;
    let spec = CheckSpec {
        id: id.or(id2).unwrap_or_default(),
        name: f.string(&["Name"])?.unwrap_or_default(),
        service_id: f.string(&["ServiceID"])?.unwrap_or_default(),
        notes: f.string(&["Notes"])?.unwrap_or_default(),
        status: f.string(&["Status"])?.unwrap_or_default(),
        ttl: f.duration(&["TTL"])?,
        interval: f.duration(&["Interval"])?,
        timeout: f.duration(&["Timeout"])?,
        deregister_critical_service_after: f.duration(&["DeregisterCriticalServiceAfter"])?,
        http: f.string(&["HTTP"])?.unwrap_or_default(),
        method: f.string(&["Method"])?.unwrap_or_default(),
        header: decode_header(&mut f)?,
        body: f.string(&["Body"])?.unwrap_or_default(),
        disable_redirects: f.bool(&["DisableRedirects"])?.unwrap_or(false),
        tls_server_name: f.string(&["TLSServerName"])?.unwrap_or_default(),
        tls_skip_verify: f.bool(&["TLSSkipVerify"])?.unwrap_or(false),
        tcp: f.string(&["TCP"])?.unwrap_or_default(),
        tcp_use_tls: f.bool(&["TCPUseTLS"])?.unwrap_or(false),
        udp: f.string(&["UDP"])?.unwrap_or_default(),
        grpc: f.string(&["GRPC"])?.unwrap_or_default(),
        grpc_use_tls: f.bool(&["GRPCUseTLS"])?.unwrap_or(false),
        h2ping: f.string(&["H2PING"])?.unwrap_or_default(),
        h2ping_use_tls: f.bool(&["H2PingUseTLS"])?,
        os_service: f.string(&["OSService"])?.unwrap_or_default(),
        args: {
            let a = f.strings(&["Args"])?;
            let b = f.strings(&["ScriptArgs"])?;
            if a.is_empty() { b } else { a }
        },
        docker_container_id: f.string(&["DockerContainerID"])?.unwrap_or_default(),
        alias_service: f.string(&["AliasService"])?.unwrap_or_default(),
        alias_node: f.string(&["AliasNode"])?.unwrap_or_default(),
        output_max_size: f.int(&["OutputMaxSize"])?.unwrap_or(0),
        success_before_passing: f.int(&["SuccessBeforePassing"])?.unwrap_or(0),
        failures_before_warning: f.int(&["FailuresBeforeWarning"])?.unwrap_or(0),
        failures_before_critical: f.int(&["FailuresBeforeCritical"])?.unwrap_or(0),
    };
    f.ignore(IGNORED_CHECK_FIELDS);
    f.finish()?;
    Ok(spec)
}

/// `Header`: Go's `map[string][]string`.
fn decode_header(f: &mut Fields) -> Result<BTreeMap<String, Vec<String>>, DefinitionError> {
    let mut out = BTreeMap::new();
    for (name, values) in f.object_map(&["Header"])? {
        let list = match values {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(DefinitionError::Decode(
                        "json: cannot unmarshal value into Go struct field CheckType.Header of type string"
                            .to_owned(),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Value::Null => Vec::new(),
            _ => {
                return Err(DefinitionError::Decode(
                    "json: cannot unmarshal value into Go struct field CheckType.Header of type []string"
                        .to_owned(),
                ));
            }
        };
        out.insert(name, list);
    }
    Ok(out)
}

fn invalid(msg: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid(msg.into())
}

/// Consul's "0.0.0.0 / :: are not addresses" rule for service addresses.
fn is_ip_any(addr: &str) -> bool {
    let trimmed = addr.trim_start_matches('[').trim_end_matches(']');
    trimmed.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// Decodes `Ports[]` (`[{"Name","Port","Default"}]`) as (Name, Port, Default) triples.
pub(crate) fn decode_ports(v: &Value) -> Result<Vec<(String, i64, bool)>, DefinitionError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(DefinitionError::Decode(
                "json: cannot unmarshal value into Go struct field ServiceDefinition.Ports".to_owned(),
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for p in items {
        let mut p = Fields::new(p, "ServicePort")?;
        let name = p.string(&["Name"])?.unwrap_or_default();
        let number = p.int(&["Port"])?.unwrap_or(0);
        let default = p.bool(&["Default"])?.unwrap_or(false);
        p.finish()?;
        out.push((name, number, default));
    }
    Ok(out)
}

/// Validates `Port` / `Ports[]`: they exclude each other; port names are non-empty and
/// unique (case-insensitively, as DNS compares them); at most one is the default, and without
/// one the first is. Returns the service's `Port` (the default named port) and the ports.
pub(crate) fn service_ports(
    single: i64,
    named: &[(String, i64, bool)],
) -> Result<(u16, Vec<ServicePort>), DefinitionError> {
    if named.is_empty() {
        return Ok((port(single)?, Vec::new()));
    }
    if single != 0 {
        return Err(invalid("Cannot specify both Port and Ports"));
    }
    let mut ports: Vec<ServicePort> = Vec::with_capacity(named.len());
    for (name, number, default) in named {
        if name.is_empty() {
            return Err(invalid("Invalid Ports: every port needs a Name"));
        }
        if ports.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
            return Err(invalid(format!("Invalid Ports: duplicate port name {name:?}")));
        }
        ports.push(ServicePort { name: name.clone(), port: port(*number)?, default: *default });
    }
    match ports.iter().filter(|p| p.default).count() {
        0 => {
            if let Some(first) = ports.first_mut() {
                first.default = true;
            }
        }
        1 => {}
        _ => return Err(invalid("Invalid Ports: only one port may be the default")),
    }
    let default = ports.iter().find(|p| p.default).map_or(0, |p| p.port);
    Ok((default, ports))
}

fn port(p: i64) -> Result<u16, DefinitionError> {
    u16::try_from(p).map_err(|_| invalid(format!("Invalid port: {p}")))
}

/// Consul's `ValidateServiceMetadata` (without the reserved-key exemptions).
fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    if meta.len() > 64 {
        return Err("Node metadata cannot contain more than 64 key/value pairs".into());
    }
    for (k, v) in meta {
        if k.is_empty() {
            return Err("Key cannot be blank".into());
        }
        if !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("Key contains invalid characters: {k}"));
        }
        if k.len() > 128 {
            return Err(format!("Key is too long (limit: 128 characters): {k}"));
        }
        if k.starts_with("consul-") {
            return Err(format!("Key prefix 'consul-' is reserved for internal use: {k}"));
        }
        if v.len() > 512 {
            return Err(format!("Value is too long (limit: 512 characters): {k}"));
        }
    }
    Ok(())
}

impl CheckSpec {
    /// The check kind (`ttl`, `http`, …), Consul's `CheckType.Type()`; empty if none applies.
    pub fn kind(&self) -> &'static str {
        if self.ttl > Duration::ZERO {
            "ttl"
        } else if !self.http.is_empty() {
            "http"
        } else if !self.tcp.is_empty() {
            "tcp"
        } else if !self.udp.is_empty() {
            "udp"
        } else if !self.grpc.is_empty() {
            "grpc"
        } else if !self.h2ping.is_empty() {
            "h2ping"
        } else if !self.docker_container_id.is_empty() {
            "docker"
        } else if !self.args.is_empty() {
            "script"
        } else if !self.alias_service.is_empty() || !self.alias_node.is_empty() {
            "alias"
        } else if !self.os_service.is_empty() {
            "os_service"
        } else {
            ""
        }
    }

    /// Consul's `CheckType.Validate` (the text goes after `Invalid check: `).
    pub fn validate(&self) -> Result<(), String> {
        let interval_check = !self.args.is_empty()
            || !self.http.is_empty()
            || !self.grpc.is_empty()
            || !self.h2ping.is_empty()
            || !self.tcp.is_empty()
            || !self.udp.is_empty()
            || !self.os_service.is_empty();
        let alias = !self.alias_service.is_empty() || !self.alias_node.is_empty();
        if self.interval > Duration::ZERO && self.ttl > Duration::ZERO {
            return Err("Interval and TTL cannot both be specified".into());
        }
        if interval_check && self.interval.is_zero() {
            return Err("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks".into());
        }
        if interval_check && alias {
            return Err("Interval cannot be set for Alias checks".into());
        }
        if alias && self.ttl > Duration::ZERO {
            return Err("TTL must be not be set for Alias checks".into());
        }
        if !interval_check && !alias && self.ttl.is_zero() {
            return Err("TTL must be > 0 for TTL checks".into());
        }
        if self.success_before_passing < 0
            || self.failures_before_warning < 0
            || self.failures_before_critical < 0
        {
            return Err(
                "SuccessBeforePassing, FailuresBeforeWarning and FailuresBeforeCritical must not be negative"
                    .into(),
            );
        }
        if self.output_max_size < 0 {
            return Err("MaxOutputMaxSize must be positive".into());
        }
        if self.failures_before_warning > self.failures_before_critical && self.failures_before_critical > 0 {
            return Err("FailuresBeforeWarning must be less than or equal to FailuresBeforeCritical".into());
        }
        Ok(())
    }

    /// Validates the spec and builds the catalog check on `node`.
    ///
    /// `service` is `(ID, Name, Tags)` of the service it belongs to, if any; `default_id` and
    /// `default_name` apply when the spec has none.
    pub fn into_check(
        self,
        node: &str,
        service: Option<(&str, &str, &[String])>,
        default_id: &str,
        default_name: &str,
    ) -> Result<(Check, Option<TtlSpec>), DefinitionError> {
        let status = if self.status.is_empty() {
            HealthStatus::Critical
        } else {
            HealthStatus::parse(&self.status)
                .ok_or_else(|| invalid("Status for checks must 'passing', 'warning', 'critical'"))?
        };
        self.validate().map_err(|e| invalid(format!("Invalid check: {e}")))?;
        let check_id = if self.id.is_empty() { default_id.to_owned() } else { self.id.clone() };
        let name = if self.name.is_empty() { default_name.to_owned() } else { self.name.clone() };
        let kind = self.kind();
        let mut interval = self.interval;
        if kind != "ttl" && !interval.is_zero() && interval < Duration::from_secs(1) {
            tracing::warn!(check = %check_id, interval = %format_go_duration(interval), "check interval below the 1s minimum; using 1s");
            interval = Duration::from_secs(1);
        }
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        let ttl = (kind == "ttl").then(|| TtlSpec { check_id: check_id.clone(), ttl: self.ttl });
        let (service_id, service_name, service_tags) = match service {
            Some((id, name, tags)) => (id.to_owned(), name.to_owned(), tags.to_vec()),
            None => (self.service_id.clone(), String::new(), Vec::new()),
        };
        let h2ping_tls = !self.h2ping.is_empty() && self.h2ping_use_tls.unwrap_or(true);
        let check = Check {
            node: node.to_owned(),
            check_id,
            name,
            status,
            notes: self.notes,
            output: String::new(),
            service_id,
            service_name,
            service_tags,
            check_type: kind.to_owned(),
            definition: CheckDefinition {
                ttl_ns: nanos(self.ttl),
                interval_ns: nanos(interval),
                timeout_ns: nanos(self.timeout),
                deregister_critical_service_after_ns: nanos(self.deregister_critical_service_after),
                http: self.http,
                tcp: self.tcp,
                method: self.method,
                header: self.header,
                body: self.body,
                disable_redirects: self.disable_redirects,
                tls_server_name: self.tls_server_name,
                tls_skip_verify: self.tls_skip_verify,
                tcp_use_tls: self.tcp_use_tls,
                udp: self.udp,
                grpc: self.grpc,
                grpc_use_tls: self.grpc_use_tls,
                h2ping: self.h2ping,
                h2ping_use_tls: h2ping_tls,
                script_args: self.args,
                alias_node: self.alias_node,
                alias_service: self.alias_service,
                success_before_passing: count(self.success_before_passing),
                failures_before_warning: count(self.failures_before_warning),
                failures_before_critical: count(self.failures_before_critical),
                output_max_size: count(self.output_max_size),
            },
            create_index: 0,
            modify_index: 0,
        };
        Ok((check, ttl))
    }
}

impl ServiceDefinition {
    /// The instance ID: `ID`, or the name when empty.
    pub fn service_id(&self) -> &str {
        if self.id.is_empty() { &self.name } else { &self.id }
    }

    /// Validates the definition and builds the catalog registration of the service (and its
    /// checks) on `node`, plus the TTL timers to arm.
    pub fn into_registration(self, node: &Node) -> Result<(Registration, Vec<TtlSpec>), DefinitionError> {
        if self.name.is_empty() {
            return Err(invalid("Missing service name"));
        }
        if !self.kind.is_empty() {
            return Err(invalid(format!("Unsupported service kind {:?}", self.kind)));
        }
        if is_ip_any(&self.address) {
            return Err(invalid("Invalid service address"));
        }
        let mut tagged_addresses = BTreeMap::new();
        for (k, (addr, p)) in &self.tagged_addresses {
            if is_ip_any(addr) {
                return Err(invalid(format!("Invalid service address for tagged address {k:?}")));
            }
            tagged_addresses.insert(k.clone(), ServiceAddress { address: addr.clone(), port: port(*p)? });
        }
        let weights = match self.weights {
            None => Weights::default(),
            Some((passing, warning)) => {
                if passing < 1 {
                    return Err(invalid("Invalid Weights: Passing must be greater than 0"));
                }
                if warning < 0 {
                    return Err(invalid("Invalid Weights: Warning must be greater or equal than 0"));
                }
                let cap = |w: i64| u32::try_from(w).map_err(|_| invalid("Invalid Weights: weight too large"));
                Weights { passing: cap(passing)?, warning: cap(warning)? }
            }
        };
        validate_meta(&self.meta).map_err(|e| invalid(format!("Invalid Service Meta: {e}")))?;
        let (port_number, ports) = service_ports(self.port, &self.ports)?;
        let id = self.service_id().to_owned();
        let service = Service {
            node: node.name.clone(),
            id: id.clone(),
            name: self.name.clone(),
            tags: self.tags.clone(),
            address: self.address.clone(),
            port: port_number,
            ports,
            meta: self.meta.clone(),
            tagged_addresses,
            weights,
            enable_tag_override: self.enable_tag_override,
            create_index: 0,
            modify_index: 0,
        };
        let several = self.checks.len() > 1;
        let default_name = format!("Service '{}' check", self.name);
        let mut checks = Vec::with_capacity(self.checks.len());
        let mut ttls = Vec::new();
        for (i, spec) in self.checks.into_iter().enumerate() {
            let default_id =
                if several { format!("service:{id}:{}", i + 1) } else { format!("service:{id}") };
            let (check, ttl) = spec.into_check(
                &node.name,
                Some((&id, &service.name, &service.tags)),
                &default_id,
                &default_name,
            )?;
            checks.push(check);
            ttls.extend(ttl);
        }
        let registration =
            Registration { node: node.clone(), skip_node_update: false, service: Some(service), checks };
        Ok((registration, ttls))
    }
}
