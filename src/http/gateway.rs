//! Consul's `GatewayService` JSON of a `catalog::gateway::GatewayLink`.
//!
//! Stage: HTTP output. Input: a link -> output: its JSON (`Gateway` and `Service` as
//! `{"Name": …}`, empty fields left out as Consul's `omitempty` does, the entry's indexes).

use crate::catalog::gateway::GatewayLink;
use serde::Serialize;

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

impl From<GatewayLink> for GatewayServiceJson {
    fn from(l: GatewayLink) -> Self {
        Self {
            gateway: ServiceNameJson { name: l.gateway },
            service: ServiceNameJson { name: l.service },
            gateway_kind: l.gateway_kind,
            port: l.port,
            protocol: l.protocol,
            hosts: l.hosts,
            ca_file: l.ca_file,
            cert_file: l.cert_file,
            key_file: l.key_file,
            sni: l.sni,
            from_wildcard: l.from_wildcard,
            create_index: l.create_index,
            modify_index: l.modify_index,
        }
    }
}
