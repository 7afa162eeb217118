//! Check definitions: Consul's `CheckType` / `CheckDefinition` format, decoded and converted.
//!
//! Stage: agent definitions (HTTP `/v1/agent/check/register`, a service's `Check`/`Checks`,
//! config files). Input: a JSON object -> `CheckSpec` (`decode_check_definition`, decoded, not
//! validated) -> `CheckSpec::into_check` -> a `catalog::Check` plus the TTL timer to arm.
//! Invariants: field names match case-insensitively (`Fields`); an unknown field is an error
//! naming it; validation follows Consul's `CheckType.Validate` texts (after `Invalid check: `);
//! defaults: initial status `critical`, intervals below 1 s raised to 1 s.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{DefinitionError, Fields, TtlSpec, format_go_duration, invalid};
use crate::catalog::{Check, CheckDefinition, HealthStatus};

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

/// Fields of a check definition the appliance accepts and ignores.
const IGNORED_CHECK_FIELDS: &[&str] =
    &["Shell", "Token", "Namespace", "Partition", "ProxyHTTP", "ProxyGRPC", "ExposedPort", "Type"];

/// Decodes a check definition (`CheckType` in a service, or `/v1/agent/check/register`).
pub(crate) fn decode_check_definition(v: &Value) -> Result<CheckSpec, DefinitionError> {
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
