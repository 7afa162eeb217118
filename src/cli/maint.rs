//! `cairn maint [-enable|-disable] [-service=ID] [-reason=TEXT]`: the local agent's node or
//! service maintenance mode, as Consul's `consul maint` sets and lists it
//! (`PUT /v1/agent/maintenance`, `PUT /v1/agent/service/maintenance/:id`; with neither flag, the
//! `_node_maintenance` and `_service_maintenance:*` checks of `GET /v1/agent/checks`).
//!
//! Consul's flag rules and texts: `-enable` with `-disable`, `-reason` without `-enable`, or
//! `-service` alone are usage errors (exit 1). The list shows the node first, then services by
//! ID (Consul prints them in its map's random order).

use std::collections::BTreeMap;

use clap::Args;
use serde::Deserialize;

use super::ConsulMessage;
use super::api::Api;
use super::event::{node_name, segment};

/// `cairn maint` arguments.
#[derive(Debug, Args)]
pub struct MaintArgs {
    /// Enable maintenance mode.
    #[arg(long)]
    pub enable: bool,
    /// Disable maintenance mode.
    #[arg(long)]
    pub disable: bool,
    /// Text describing the maintenance reason.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Control maintenance mode for a specific service ID.
    #[arg(long, default_value = "")]
    pub service: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Check {
    #[serde(rename = "CheckID")]
    check_id: String,
    #[serde(default)]
    notes: String,
    #[serde(rename = "ServiceID", default)]
    service_id: String,
}

/// Runs `maint`; returns what to print.
pub async fn run(api: &Api, args: &MaintArgs) -> Result<String, ConsulMessage> {
    if args.enable && args.disable {
        return Err(ConsulMessage("Only one of -enable or -disable may be provided".into()));
    }
    if !args.enable && !args.reason.is_empty() {
        return Err(ConsulMessage("Reason may only be provided with -enable".into()));
    }
    if !args.enable && !args.disable && !args.service.is_empty() {
        return Err(ConsulMessage("Service requires either -enable or -disable".into()));
    }
    if !args.enable && !args.disable {
        return list(api).await;
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("enable", if args.enable { "true" } else { "false" })
        .extend_pairs(args.enable.then_some(("reason", args.reason.as_str())))
        .finish();
    let (what, path) = if args.service.is_empty() {
        ("node", format!("/v1/agent/maintenance?{query}"))
    } else {
        ("service", format!("/v1/agent/service/maintenance/{}?{query}", segment(&args.service)))
    };
    let verb = if args.enable { "enabl" } else { "disabl" };
    api.put(&path, Vec::new())
        .await
        .map_err(|e| ConsulMessage(format!("Error {verb}ing {what} maintenance: {e}")))?;
    Ok(match what {
        "node" => format!("Node maintenance is now {verb}ed\n"),
        _ => format!("Service maintenance is now {verb}ed for {:?}\n", args.service),
    })
}

async fn list(api: &Api) -> Result<String, ConsulMessage> {
    let node = node_name(api).await?;
    let checks: BTreeMap<String, Check> = api
        .get("/v1/agent/checks")
        .await
        .and_then(|r| r.json())
        .map_err(|e| ConsulMessage(format!("Error getting checks: {e}")))?;
    let mut out = String::new();
    if let Some(c) = checks.values().find(|c| c.check_id == "_node_maintenance") {
        out.push_str(&format!("Node:\n  Name:   {node}\n  Reason: {}\n\n", c.notes));
    }
    let mut services: Vec<&Check> =
        checks.values().filter(|c| c.check_id.starts_with("_service_maintenance:")).collect();
    services.sort_by(|a, b| a.service_id.cmp(&b.service_id));
    for c in services {
        out.push_str(&format!("Service:\n  ID:     {}\n  Reason: {}\n\n", c.service_id, c.notes));
    }
    Ok(out)
}
