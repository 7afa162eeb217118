//! Prepared-query shapes: the stored query as `/v1/query` lists it, the execute reply, and
//! the decoder of create/update bodies.
//!
//! Stage: HTTP `/v1/query*` handlers. Input: a stored `PreparedQuery` (or the selected
//! instances of an execute) → output: Consul's `PreparedQuery`/`PreparedQueryExecuteResponse`
//! JSON; request JSON → a `PreparedQuery` to propose.
//! Invariants: lists are never `null`; `Template` is always empty (templates are refused with
//! 400); request field names match case-insensitively and an unknown field is an error naming
//! it; decode errors are 400, Consul's `parseQuery` rules are RPC errors (500).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::catalog::ServiceEntryJson;
use super::rpc;
use crate::agent::Fields;
use crate::catalog::validate;
use crate::catalog::{PreparedQuery, QueryFailover, QueryService};
use crate::http::error::ApiError;

/// `Service.Failover` of a prepared query.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueryFailoverJson {
    /// `NearestN`.
    pub nearest_n: i64,
    /// `Datacenters` (null when empty, as Consul returns what the Go client sent: nil).
    pub datacenters: Option<Vec<String>>,
}

/// `Service` of a prepared query (`ServiceQuery`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueryServiceJson {
    /// Service name.
    pub service: String,
    /// Failover (stored, not acted on).
    pub failover: QueryFailoverJson,
    /// Only passing instances.
    pub only_passing: bool,
    /// Checks ignored for health (null when empty).
    #[serde(rename = "IgnoreCheckIDs")]
    pub ignore_check_ids: Option<Vec<String>>,
    /// Near (stored, not acted on).
    pub near: String,
    /// Tag filters, `!` negates (null when empty).
    pub tags: Option<Vec<String>>,
    /// Node meta filter (null when empty).
    pub node_meta: Option<BTreeMap<String, String>>,
    /// Service meta filter (null when empty).
    pub service_meta: Option<BTreeMap<String, String>>,
    /// `Connect`: only Connect-capable instances (always false: a query asking for them is
    /// refused when created).
    pub connect: bool,
}

/// `DNS` of a prepared query.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueryDnsJson {
    /// TTL as written, `""` when unset.
    #[serde(rename = "TTL")]
    pub ttl: String,
}

/// `Template` of a prepared query (templates are not supported: always empty).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueryTemplateJson {
    /// `""`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `""`.
    pub regexp: String,
    /// `false`.
    pub remove_empty_tags: bool,
}

/// A prepared query as `/v1/query` and `/v1/query/:id` list it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PreparedQueryJson {
    /// ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name.
    pub name: String,
    /// Session.
    pub session: String,
    /// Token.
    pub token: String,
    /// Template (always empty).
    pub template: QueryTemplateJson,
    /// What to look up.
    pub service: QueryServiceJson,
    /// DNS settings.
    #[serde(rename = "DNS")]
    pub dns: QueryDnsJson,
    /// Create index.
    pub create_index: u64,
    /// Modify index.
    pub modify_index: u64,
}

impl From<&PreparedQuery> for PreparedQueryJson {
    fn from(q: &PreparedQuery) -> Self {
        let s = &q.service;
        Self {
            id: q.id.clone(),
            name: q.name.clone(),
            session: q.session.clone(),
            token: q.token.clone(),
            template: QueryTemplateJson::default(),
            service: QueryServiceJson {
                service: s.service.clone(),
                failover: QueryFailoverJson {
                    nearest_n: s.failover.nearest_n,
                    datacenters: non_empty(&s.failover.datacenters),
                },
                only_passing: s.only_passing,
                ignore_check_ids: non_empty(&s.ignore_check_ids),
                near: s.near.clone(),
                tags: non_empty(&s.tags),
                node_meta: (!s.node_meta.is_empty()).then(|| s.node_meta.clone()),
                service_meta: (!s.service_meta.is_empty()).then(|| s.service_meta.clone()),
                connect: false,
            },
            dns: QueryDnsJson { ttl: q.dns_ttl.clone() },
            create_index: q.create_index,
            modify_index: q.modify_index,
        }
    }
}

/// Consul returns the lists a query was created with; the Go client sends nil for empty
/// ones, so an empty list reads back as `null` (Consul 1.8.7, live).
fn non_empty(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// `/v1/query/:id/execute` (`PreparedQueryExecuteResponse`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueryExecuteJson {
    /// The service the query selected.
    pub service: String,
    /// The selected instances, shuffled (never null).
    pub nodes: Vec<ServiceEntryJson>,
    /// DNS settings of the query.
    #[serde(rename = "DNS")]
    pub dns: QueryDnsJson,
    /// The datacenter that answered (always ours).
    pub datacenter: String,
    /// Datacenters failed over to (always 0).
    pub failovers: u32,
    /// Consul's `QueryMeta` in the body: the index answered at (also `X-Consul-Index`).
    pub index: u64,
    /// Milliseconds since the leader was last heard from.
    pub last_contact: u64,
    /// Whether a leader is known.
    pub known_leader: bool,
    /// `leader`, `stale` or `consistent`.
    pub consistency_level: &'static str,
}

/// `{"ID"}` of `POST /v1/query`.
#[derive(Debug, Serialize)]
pub(crate) struct QueryIdJson {
    /// The new query's ID.
    #[serde(rename = "ID")]
    pub id: String,
}

/// Decodes a `POST /v1/query` (`creating`) or `PUT /v1/query/:id` body into a query with ID
/// `id`. A create must not carry an ID; an update takes the path's ID, whatever the body says.
///
/// Decode errors are 400; Consul's `parseQuery` rules are RPC errors (500). Templates are
/// refused (400): they are not supported.
pub(crate) fn decode_prepared_query(v: &Value, id: &str, creating: bool) -> Result<PreparedQuery, ApiError> {
    let mut f = Fields::new(v, "PreparedQuery")?;
    let name = f.string(&["Name"])?.unwrap_or_default();
    let session = f.string(&["Session"])?.unwrap_or_default();
    let token = f.string(&["Token"])?.unwrap_or_default();
    let body_id = f.string(&["ID"])?.unwrap_or_default();
    if let Some(t) = f.take(&["Template"]) {
        let mut t = Fields::new(&t, "QueryTemplateOptions")?;
        let kind = t.string(&["Type"])?.unwrap_or_default();
        t.ignore(&["Regexp", "RemoveEmptyTags"]);
        t.finish()?;
        if !kind.is_empty() {
            return Err(ApiError::BadRequest("Prepared query templates are not supported".into()));
        }
    }
    let service = match f.take(&["Service"]) {
        Some(sv) => decode_query_service(&sv)?,
        None => QueryService::default(),
    };
    let mut dns_ttl = String::new();
    if let Some(d) = f.take(&["DNS"]) {
        let mut d = Fields::new(&d, "QueryDNSOptions")?;
        dns_ttl = d.string(&["TTL"])?.unwrap_or_default();
        d.finish()?;
    }
    f.ignore(&["CreateIndex", "ModifyIndex", "RaftIndex", "Namespace", "Partition"]);
    f.finish()?;
    if creating && !body_id.is_empty() {
        return Err(rpc("ID must be empty when creating a new prepared query"));
    }
    let query = PreparedQuery {
        id: id.to_owned(),
        name,
        session,
        token,
        service,
        dns_ttl,
        create_index: 0,
        modify_index: 0,
    };
    validate::prepared_query(&query)?;
    Ok(query)
}

fn decode_query_service(v: &Value) -> Result<QueryService, ApiError> {
    let mut f = Fields::new(v, "ServiceQuery")?;
    let mut failover = QueryFailover::default();
    if let Some(fo) = f.take(&["Failover"]) {
        let mut fo = Fields::new(&fo, "QueryFailoverOptions")?;
        failover.nearest_n = fo.int(&["NearestN"])?.unwrap_or(0);
        failover.datacenters = fo.strings(&["Datacenters"])?;
        fo.ignore(&["Targets"]);
        fo.finish()?;
    }
    let service = QueryService {
        service: f.string(&["Service"])?.unwrap_or_default(),
        failover,
        only_passing: f.bool(&["OnlyPassing"])?.unwrap_or(false),
        ignore_check_ids: f.strings(&["IgnoreCheckIDs"])?,
        near: f.string(&["Near"])?.unwrap_or_default(),
        tags: f.strings(&["Tags"])?,
        node_meta: f.string_map(&["NodeMeta"])?,
        service_meta: f.string_map(&["ServiceMeta"])?,
    };
    if f.bool(&["Connect"])?.unwrap_or(false) {
        return Err(ApiError::BadRequest(
            "Service.Connect: prepared queries for Connect-capable instances are not supported by cairn"
                .into(),
        ));
    }
    f.ignore(&["Peer", "SamenessGroup", "Namespace", "Partition"]);
    f.finish()?;
    Ok(service)
}
