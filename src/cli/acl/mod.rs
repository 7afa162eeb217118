//! `cairn acl bootstrap | token … | policy … | role …`: Consul 1.8.7's `consul acl` commands
//! against a running agent's `/v1/acl/*` API, with its flags (single dash through
//! `cli::flags`), its pretty and `-format=json` output (`format`) and its error lines.
//!
//! Input: a parsed `AclCommand` and an `Api` (which carries the caller's token). Output: the
//! text to print, or an `AclCliError` whose text is the line Consul prints (`Failed to create
//! new token: Unexpected response code: 403 (Permission denied)`), which `main` prints as it is
//! and exits 1. Flow per command: check the flags → resolve partial IDs and names (`lookup`) →
//! one read for updates (fields merged as Consul merges them, or replaced with `-no-merge`) →
//! one write → print the object the agent answered with. Invariant: nothing is written when a
//! flag, a prefix or a name does not resolve.
//!
//! Not carried over: `-namespace` (Enterprise), and the pre-1.4 legacy-token flags
//! (`policy create -from-token`, `token update -upgrade-legacy`); `translate-rules` is here.

pub mod format;
pub mod lookup;
pub mod policy;
pub mod role;
pub mod token;
pub mod translate;
pub mod wire;

use std::fmt::Display;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::format::Format;
use self::wire::{Link, NodeIdentity, ServiceIdentity};
use crate::cli::api::Api;

/// `cairn acl …`.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Create the first management token (once per cluster).
    Bootstrap(FormatArgs),
    /// Create, list, read, update, clone and delete tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Create, list, read, update and delete policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Create, list, read, update and delete roles.
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Translate legacy rules (or a legacy token's) into the current syntax.
    TranslateRules(translate::TranslateArgs),
}

/// `-format` alone.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Output format {pretty|json}.
    #[arg(long, default_value = "pretty", value_name = "FORMAT")]
    pub format: String,
}

/// `-format` and `-meta`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format {pretty|json}.
    #[arg(long, default_value = "pretty", value_name = "FORMAT")]
    pub format: String,
    /// Show metadata too: the content hash and the Raft indexes.
    #[arg(long)]
    pub meta: bool,
}

/// The policy links and identities a token or a role is made with (repeatable flags).
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// ID (or unique ID prefix) of a policy to link (repeatable).
    #[arg(long, value_name = "ID")]
    pub policy_id: Vec<String>,
    /// Name of a policy to link (repeatable).
    #[arg(long, value_name = "NAME")]
    pub policy_name: Vec<String>,
    /// A service identity, SERVICENAME or SERVICENAME:DATACENTER1,DATACENTER2 (repeatable).
    #[arg(long, value_name = "SERVICE")]
    pub service_identity: Vec<String>,
    /// A node identity, NODENAME:DATACENTER (repeatable).
    #[arg(long, value_name = "NODE:DC")]
    pub node_identity: Vec<String>,
}

impl LinkArgs {
    /// Whether any link or identity was given.
    fn any(&self) -> bool {
        !(self.policy_id.is_empty()
            && self.policy_name.is_empty()
            && self.service_identity.is_empty()
            && self.node_identity.is_empty())
    }
}

/// Why a `cairn acl` command failed: its text is the line Consul prints.
#[derive(Debug, thiserror::Error)]
pub enum AclCliError {
    /// A flag, a lookup or an agent call failed.
    #[error("{0}")]
    Said(String),
    /// The agent answered with JSON the CLI cannot read.
    #[error("Error decoding the agent's reply: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Wraps an error in Consul's context line: `<what>: <error>`.
fn ctx<E: Display>(what: impl Display) -> impl FnOnce(E) -> AclCliError {
    move |e| AclCliError::Said(format!("{what}: {e}"))
}

/// The error for a usage problem, with Consul's words.
fn said(text: impl Into<String>) -> AclCliError {
    AclCliError::Said(text.into())
}

/// `-format`, checked before anything is sent.
fn output_format(text: &str) -> Result<Format, AclCliError> {
    Format::parse(text).map_err(AclCliError::Said)
}

/// The text of `value` as `-format` asks: `pretty`'s, or Consul's JSON.
fn show<T: Serialize>(
    value: &T,
    format: Format,
    pretty: impl FnOnce(&T) -> String,
) -> Result<String, AclCliError> {
    match format {
        Format::Pretty => Ok(pretty(value)),
        Format::Json => Ok(format::json(value)?),
    }
}

/// `GET path`, the answer decoded; `what` is the context of either failure.
async fn get_json<T: DeserializeOwned>(api: &Api, path: &str, what: &str) -> Result<T, AclCliError> {
    api.get(path).await.map_err(ctx(what))?.json().map_err(ctx(what))
}

/// `PUT path` with `body` as JSON, the answer decoded; `what` is the context of either failure.
async fn put_json<T: DeserializeOwned>(
    api: &Api,
    path: &str,
    body: &impl Serialize,
    what: &str,
) -> Result<T, AclCliError> {
    let body = serde_json::to_vec(body)?;
    api.put(path, body).await.map_err(ctx(what))?.json().map_err(ctx(what))
}

/// A `list` command: `GET path`, printed by `pretty` (with `-meta`) or as JSON.
async fn list<T: DeserializeOwned + Serialize>(
    api: &Api,
    args: &OutputArgs,
    path: &str,
    what: &str,
    pretty: fn(&[T], bool) -> String,
) -> Result<String, AclCliError> {
    let format = output_format(&args.format)?;
    let list: Vec<T> = get_json(api, path, what).await?;
    show(&list, format, |l| pretty(l, args.meta))
}

/// `DELETE /v1/acl/<noun>/<id>` (`noun` capitalised, as the answer starts), answered with
/// Consul's `<Noun> "<id>" deleted successfully`.
async fn delete(api: &Api, noun: &str, id: &str) -> Result<String, AclCliError> {
    let lower = noun.to_lowercase();
    api.delete(&format!("/v1/acl/{lower}/{id}"))
        .await
        .map_err(ctx(format!("Error deleting {lower} {id:?}")))?;
    Ok(format!("{noun} {id:?} deleted successfully\n"))
}

/// The links of `-policy-name` (sent by name) then `-policy-id` (resolved prefixes).
async fn policy_links(api: &Api, args: &LinkArgs) -> Result<Vec<Link>, AclCliError> {
    let mut links: Vec<Link> =
        args.policy_name.iter().map(|n| Link { id: String::new(), name: n.clone() }).collect();
    for partial in &args.policy_id {
        let id = lookup::policy_id(api, partial).await.map_err(ctx("Error resolving policy ID "))?;
        links.push(Link { id, name: String::new() });
    }
    Ok(links)
}

/// The identities of `-service-identity` and `-node-identity`.
fn identities(args: &LinkArgs) -> Result<(Vec<ServiceIdentity>, Vec<NodeIdentity>), AclCliError> {
    let services = args
        .service_identity
        .iter()
        .map(|s| lookup::service_identity(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| said(e.to_string()))?;
    let nodes = args
        .node_identity
        .iter()
        .map(|n| lookup::node_identity(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| said(e.to_string()))?;
    Ok((services, nodes))
}

/// Adds the links in `new` that `existing` lacks (same ID, or same name for a name-only link).
fn merge_links(existing: &mut Vec<Link>, new: Vec<Link>) {
    for link in new {
        let present =
            existing.iter().any(|l| if link.id.is_empty() { l.name == link.name } else { l.id == link.id });
        if !present {
            existing.push(link);
        }
    }
}

/// Adds service identities, a new one replacing an old one of the same service.
fn merge_services(existing: &mut Vec<ServiceIdentity>, new: Vec<ServiceIdentity>) {
    for s in new {
        match existing.iter_mut().find(|e| e.service_name == s.service_name) {
            Some(old) => *old = s,
            None => existing.push(s),
        }
    }
}

/// Adds the node identities `existing` lacks.
fn merge_nodes(existing: &mut Vec<NodeIdentity>, new: Vec<NodeIdentity>) {
    for n in new {
        if !existing.contains(&n) {
            existing.push(n);
        }
    }
}

/// Runs one `cairn acl` command; returns what to print.
pub async fn run(api: &Api, cmd: AclCommand) -> Result<String, AclCliError> {
    match cmd {
        AclCommand::Bootstrap(args) => token::bootstrap(api, &args).await,
        AclCommand::Token(cmd) => token::run(api, cmd).await,
        AclCommand::Policy(cmd) => policy::run(api, cmd).await,
        AclCommand::Role(cmd) => role::run(api, cmd).await,
        AclCommand::TranslateRules(args) => translate::run(api, &args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, name: &str) -> Link {
        Link { id: id.into(), name: name.into() }
    }

    #[test]
    fn merges_follow_consuls_update() {
        let mut links = vec![link("1", "a")];
        merge_links(&mut links, vec![link("", "a"), link("1", ""), link("2", ""), link("", "b")]);
        assert_eq!(links, vec![link("1", "a"), link("2", ""), link("", "b")]);
        let si = |n: &str, dcs: &[&str]| ServiceIdentity {
            service_name: n.into(),
            datacenters: dcs.iter().map(|d| (*d).to_owned()).collect(),
        };
        let mut services = vec![si("api", &["dc1"])];
        merge_services(&mut services, vec![si("api", &["dc2"]), si("web", &[])]);
        assert_eq!(services, vec![si("api", &["dc2"]), si("web", &[])]);
        let ni = |n: &str, dc: &str| NodeIdentity { node_name: n.into(), datacenter: dc.into() };
        let mut nodes = vec![ni("x", "dc1")];
        merge_nodes(&mut nodes, vec![ni("x", "dc1"), ni("x", "dc2")]);
        assert_eq!(nodes, vec![ni("x", "dc1"), ni("x", "dc2")]);
    }
}
