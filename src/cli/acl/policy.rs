//! `cairn acl policy create|list|read|update|delete` (`/v1/acl/policy*`), with Consul 1.8.7's
//! flags and messages.
//!
//! Input: the flags (`-rules` as text, `@file` or `-` for stdin) → output: the policy as the
//! agent answered it (`format::policy`, or JSON). `update` keeps what no flag names unless
//! `-no-merge`, which writes exactly the flags (the ID stays).

use clap::{Args, Subcommand};

use super::format::{self, Format};
use super::wire::{Policy, PolicyStub, PolicyWrite};
use super::{
    AclCliError, OutputArgs, ctx, delete, get_json, list, lookup, output_format, put_json, said, show,
};
use crate::cli::api::Api;

/// `cairn acl policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create a policy from rules (HCL or JSON).
    Create(CreateArgs),
    /// List every policy.
    List(OutputArgs),
    /// Show one policy, by ID (or unique prefix) or name.
    Read(ReadArgs),
    /// Change a policy's name, description, rules or datacenters.
    Update(UpdateArgs),
    /// Delete a policy.
    Delete(PickArgs),
}

/// `policy create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The new policy's name (required).
    #[arg(long, default_value = "")]
    pub name: String,
    /// A description of the policy.
    #[arg(long, default_value = "")]
    pub description: String,
    /// The rules: the text, @FILE to read a file, or - to read stdin.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub rules: String,
    /// A datacenter the policy is valid in (repeatable; default: all).
    #[arg(long, value_name = "DC")]
    pub valid_datacenter: Vec<String>,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `policy read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Which policy.
    #[command(flatten)]
    pub pick: PickArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `-id` or `-name` of one policy.
#[derive(Debug, Args)]
pub struct PickArgs {
    /// The policy's ID, or a unique prefix of it.
    #[arg(long, default_value = "")]
    pub id: String,
    /// The policy's name.
    #[arg(long, default_value = "")]
    pub name: String,
}

/// `policy update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The policy's ID, or a unique prefix of it.
    #[arg(long, default_value = "")]
    pub id: String,
    /// The policy's name (finds it without -id; renames it with -id).
    #[arg(long, default_value = "")]
    pub name: String,
    /// A new description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// New rules: the text, @FILE to read a file, or - to read stdin.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub rules: String,
    /// A datacenter the policy is valid in (repeatable; replaces the list).
    #[arg(long, value_name = "DC")]
    pub valid_datacenter: Vec<String>,
    /// Write exactly the given fields instead of merging them into the current policy.
    #[arg(long)]
    pub no_merge: bool,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

fn show_policy(p: &Policy, format: Format, meta: bool) -> Result<String, AclCliError> {
    show(p, format, |p| format::policy(p, meta))
}

/// The ID `-id` (a prefix) or `-name` names.
async fn pick(api: &Api, pick: &PickArgs) -> Result<String, AclCliError> {
    let found = if !pick.id.is_empty() {
        lookup::policy_id(api, &pick.id).await
    } else if !pick.name.is_empty() {
        lookup::policy_id_by_name(api, &pick.name).await
    } else {
        return Err(said("Must specify either the -id or -name parameters"));
    };
    found.map_err(ctx("Error determining policy ID"))
}

async fn get(api: &Api, id: &str) -> Result<Policy, AclCliError> {
    get_json(api, &format!("/v1/acl/policy/{id}"), &format!("Error reading policy {id:?}")).await
}

/// Runs one `cairn acl policy` command.
pub async fn run(api: &Api, cmd: PolicyCommand) -> Result<String, AclCliError> {
    match cmd {
        PolicyCommand::Create(a) => create(api, a).await,
        PolicyCommand::List(a) => {
            list::<PolicyStub>(
                api,
                &a,
                "/v1/acl/policies",
                "Failed to retrieve the policy list",
                format::policy_list,
            )
            .await
        }
        PolicyCommand::Read(a) => {
            let format = output_format(&a.output.format)?;
            let id = pick(api, &a.pick).await?;
            show_policy(&get(api, &id).await?, format, a.output.meta)
        }
        PolicyCommand::Update(a) => update(api, a).await,
        PolicyCommand::Delete(a) => {
            let id = pick(api, &a).await?;
            delete(api, "Policy", &id).await
        }
    }
}

async fn create(api: &Api, a: CreateArgs) -> Result<String, AclCliError> {
    let format = output_format(&a.output.format)?;
    if a.name.is_empty() {
        return Err(said("Missing require '-name' flag"));
    }
    let rules = lookup::rules(&a.rules).map_err(ctx("Error loading rules"))?;
    let body = PolicyWrite {
        id: String::new(),
        name: a.name,
        description: a.description,
        rules,
        datacenters: a.valid_datacenter,
    };
    let policy: Policy = put_json(api, "/v1/acl/policy", &body, "Failed to create new policy").await?;
    show_policy(&policy, format, a.output.meta)
}

async fn update(api: &Api, a: UpdateArgs) -> Result<String, AclCliError> {
    let format = output_format(&a.output.format)?;
    let id = pick(api, &PickArgs { id: a.id.clone(), name: a.name.clone() }).await?;
    let rules = if a.rules.is_empty() {
        None
    } else {
        Some(lookup::rules(&a.rules).map_err(ctx("Error loading data source"))?)
    };
    let body = if a.no_merge {
        PolicyWrite {
            id: id.clone(),
            name: a.name,
            description: a.description,
            rules: rules.unwrap_or_default(),
            datacenters: a.valid_datacenter,
        }
    } else {
        let current = get(api, &id).await?;
        PolicyWrite {
            id: id.clone(),
            name: if a.name.is_empty() { current.name } else { a.name },
            description: if a.description.is_empty() { current.description } else { a.description },
            rules: rules.unwrap_or(current.rules),
            datacenters: if a.valid_datacenter.is_empty() {
                current.datacenters.unwrap_or_default()
            } else {
                a.valid_datacenter
            },
        }
    };
    let what = format!("Error updating policy {id:?}");
    let policy: Policy = put_json(api, &format!("/v1/acl/policy/{id}"), &body, &what).await?;
    show_policy(&policy, format, a.output.meta)
}
