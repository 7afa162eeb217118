//! `cairn event -name=X [-node= -service= -tag=] [PAYLOAD]`: fires a user event through the
//! local agent (`PUT /v1/event/fire/:name`), as Consul's `consul event` does, and `cairn
//! exec`, which refuses: Consul agents disable remote execution by default
//! (`disable_remote_exec`), and cairn does not implement it.
//!
//! Input: the flags and the optional payload → output: `Event ID: <uuid>`. The filters are
//! checked locally first with the agent's own rules (`UserEvent::validate`), worded as
//! Consul's CLI words them; the agent must answer `/v1/agent/self` before the event is fired.

use clap::Args;
use serde_json::Value;

use super::ConsulMessage;
use super::api::Api;
use crate::gossip::user_event::{FilterError, UserEvent};

/// `cairn event` arguments.
#[derive(Debug, Args)]
pub struct EventArgs {
    /// Name of the event.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Regular expression to filter on node names.
    #[arg(long, default_value = "")]
    pub node: String,
    /// Regular expression to filter on service instances.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Regular expression to filter on service tags. Must be used with -service.
    #[arg(long, default_value = "")]
    pub tag: String,
    /// The payload (at most one argument).
    pub payload: Vec<String>,
}

/// `cairn exec` arguments: anything, refused.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The command Consul would run on the selected nodes.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Percent-encodes one path segment (everything but RFC 3986's unreserved characters).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The local agent's node name (`/v1/agent/self`), as Consul's CLI checks it first.
pub(crate) async fn node_name(api: &Api) -> Result<String, ConsulMessage> {
    let me: Value = api
        .get("/v1/agent/self")
        .await
        .and_then(|r| r.json())
        .map_err(|e| ConsulMessage(format!("Error querying Consul agent: {e}")))?;
    Ok(me["Config"]["NodeName"].as_str().unwrap_or_default().to_owned())
}

/// Fires the event; returns `Event ID: …`.
pub async fn fire(api: &Api, args: EventArgs) -> Result<String, ConsulMessage> {
    if args.name.is_empty() {
        return Err(ConsulMessage("Event name must be specified".into()));
    }
    let event = UserEvent {
        id: String::new(),
        name: args.name.clone(),
        payload: None,
        node_filter: args.node.clone(),
        service_filter: args.service.clone(),
        tag_filter: args.tag.clone(),
        version: 1,
        ltime: 0,
    };
    event.validate().map_err(|e| match e {
        FilterError::Regex { what, why } => {
            ConsulMessage(format!("Failed to compile {what} filter regexp: {why}"))
        }
        FilterError::TagWithoutService => {
            ConsulMessage("Cannot provide tag filter without service filter.".into())
        }
    })?;
    let payload = match args.payload.as_slice() {
        [] => Vec::new(),
        [one] => one.clone().into_bytes(),
        _ => return Err(ConsulMessage("Too many command line arguments.".into())),
    };
    node_name(api).await?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("node", &args.node), ("service", &args.service), ("tag", &args.tag)] {
        if !v.is_empty() {
            query.append_pair(k, v);
        }
    }
    let query = query.finish();
    let mut path = format!("/v1/event/fire/{}", segment(&args.name));
    if !query.is_empty() {
        path = format!("{path}?{query}");
    }
    let fired: Value = api
        .put(&path, payload)
        .await
        .and_then(|r| r.json())
        .map_err(|e| ConsulMessage(format!("Error firing event: {e}")))?;
    Ok(format!("Event ID: {}\n", fired["ID"].as_str().unwrap_or_default()))
}

/// `cairn exec`: always refused, with the reason.
pub fn exec(_args: &ExecArgs) -> ConsulMessage {
    ConsulMessage(
        "Remote execution is disabled: cairn does not implement `consul exec` (Consul agents \
         disable it by default, disable_remote_exec = true). Run the command over ssh, or fire \
         a `cairn event` that a `cairn watch -type=event` handler acts on."
            .into(),
    )
}
