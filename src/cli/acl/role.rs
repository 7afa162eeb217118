//! `cairn acl role create|list|read|update|delete` (`/v1/acl/role*`), with Consul 1.8.7's
//! flags and messages.
//!
//! Input: the flags → output: the role as the agent answered it (`format::role`, or JSON). A
//! missing role is the agent's 404, printed as Consul prints it (`Role not found with ID
//! "…"`). `update` adds the given policies and identities to the role's (Consul's merge)
//! unless `-no-merge`, which writes exactly the flags under the role's full ID.

use clap::{Args, Subcommand};
use reqwest::Method;

use super::format::{self, Format};
use super::wire::{Role, RoleWrite};
use super::{
    AclCliError, LinkArgs, OutputArgs, ctx, delete, identities, list, lookup, merge_links, merge_nodes,
    merge_services, output_format, policy_links, put_json, said, show,
};
use crate::cli::api::Api;

/// `cairn acl role …`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role linked to policies and identities.
    Create(CreateArgs),
    /// List every role.
    List(OutputArgs),
    /// Show one role, by ID (or unique prefix) or name.
    Read(ReadArgs),
    /// Change a role's name, description, policies or identities.
    Update(UpdateArgs),
    /// Delete a role.
    Delete(PickArgs),
}

/// `role create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The new role's name (required).
    #[arg(long, default_value = "")]
    pub name: String,
    /// A description of the role.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Policies and identities.
    #[command(flatten)]
    pub links: LinkArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `-id` or `-name` of one role.
#[derive(Debug, Args)]
pub struct PickArgs {
    /// The role's ID, or a unique prefix of it.
    #[arg(long, default_value = "")]
    pub id: String,
    /// The role's name.
    #[arg(long, default_value = "")]
    pub name: String,
}

/// `role read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Which role.
    #[command(flatten)]
    pub pick: PickArgs,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `role update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The role's ID, or a unique prefix of it.
    #[arg(long, default_value = "")]
    pub id: String,
    /// A new name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// A new description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Policies and identities to add (or, with -no-merge, the role's whole set).
    #[command(flatten)]
    pub links: LinkArgs,
    /// Write exactly the given fields instead of merging them into the current role.
    #[arg(long)]
    pub no_merge: bool,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

fn show_role(r: &Role, format: Format, meta: bool) -> Result<String, AclCliError> {
    show(r, format, |r| format::role(r, meta))
}

/// `GET path` for one role: `None` on the agent's 404.
async fn fetch(api: &Api, path: &str, what: &str) -> Result<Option<Role>, AclCliError> {
    let reply = api.send(Method::GET, path, None, true).await.map_err(ctx(what))?;
    if reply.status == 404 {
        return Ok(None);
    }
    Ok(Some(reply.json().map_err(ctx(what))?))
}

/// The role with ID `id`, or Consul's `Role not found with ID "…"`.
async fn by_id(api: &Api, id: &str, what: &str) -> Result<Role, AclCliError> {
    fetch(api, &format!("/v1/acl/role/{id}"), what)
        .await?
        .ok_or_else(|| said(format!("Role not found with ID {id:?}")))
}

/// Runs one `cairn acl role` command.
pub async fn run(api: &Api, cmd: RoleCommand) -> Result<String, AclCliError> {
    match cmd {
        RoleCommand::Create(a) => create(api, a).await,
        RoleCommand::List(a) => {
            list::<Role>(api, &a, "/v1/acl/roles", "Failed to retrieve the role list", format::role_list)
                .await
        }
        RoleCommand::Read(a) => {
            let format = output_format(&a.output.format)?;
            let role = if !a.pick.id.is_empty() {
                let id = lookup::role_id(api, &a.pick.id).await.map_err(ctx("Error determining role ID"))?;
                by_id(api, &id, &format!("Error reading role {id:?}")).await?
            } else if !a.pick.name.is_empty() {
                let name = &a.pick.name;
                fetch(api, &name_path(name), &format!("Error reading role {name:?}"))
                    .await?
                    .ok_or_else(|| said(format!("Role not found with name {name:?}")))?
            } else {
                return Err(said("Must specify either the -id or -name parameters"));
            };
            show_role(&role, format, a.output.meta)
        }
        RoleCommand::Update(a) => update(api, a).await,
        RoleCommand::Delete(a) => {
            let id = if !a.id.is_empty() {
                lookup::role_id(api, &a.id).await.map_err(ctx("Error determining role ID"))?
            } else if !a.name.is_empty() {
                let what = "Error determining role ID";
                let role = fetch(api, &name_path(&a.name), what).await?;
                role.map(|r| r.id)
                    .ok_or_else(|| said(format!("{what}: No such role with name {}", a.name)))?
            } else {
                return Err(said("Must specify the -id or -name parameters"));
            };
            delete(api, "Role", &id).await
        }
    }
}

/// `/v1/acl/role/name/<name>`, the name percent-encoded.
fn name_path(name: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("/v1/acl/role/name/{}", encoded.replace('+', "%20"))
}

async fn create(api: &Api, a: CreateArgs) -> Result<String, AclCliError> {
    let format = output_format(&a.output.format)?;
    if a.name.is_empty() {
        return Err(said("Missing require '-name' flag"));
    }
    if !a.links.any() {
        return Err(said(
            "Cannot create a role without specifying -policy-name, -policy-id, -service-identity, or \
             -node-identity at least once",
        ));
    }
    let policies = policy_links(api, &a.links).await?;
    let (service_identities, node_identities) = identities(&a.links)?;
    let body = RoleWrite {
        id: String::new(),
        name: a.name,
        description: a.description,
        policies,
        service_identities,
        node_identities,
    };
    let role: Role = put_json(api, "/v1/acl/role", &body, "Failed to create new role").await?;
    show_role(&role, format, a.output.meta)
}

async fn update(api: &Api, a: UpdateArgs) -> Result<String, AclCliError> {
    let format = output_format(&a.output.format)?;
    if a.id.is_empty() {
        return Err(said("Cannot update a role without specifying the -id parameter"));
    }
    let id = lookup::role_id(api, &a.id).await.map_err(ctx("Error determining role ID"))?;
    let policies = policy_links(api, &a.links).await?;
    let (services, nodes) = identities(&a.links)?;
    let body = if a.no_merge {
        RoleWrite {
            id: id.clone(),
            name: a.name,
            description: a.description,
            policies,
            service_identities: services,
            node_identities: nodes,
        }
    } else {
        let current = by_id(api, &id, "Error when retrieving current role").await?;
        let mut body = RoleWrite {
            id: id.clone(),
            name: if a.name.is_empty() { current.name } else { a.name },
            description: if a.description.is_empty() { current.description } else { a.description },
            policies: current.policies,
            service_identities: current.service_identities,
            node_identities: current.node_identities,
        };
        merge_links(&mut body.policies, policies);
        merge_services(&mut body.service_identities, services);
        merge_nodes(&mut body.node_identities, nodes);
        body
    };
    let what = format!("Error updating role {id:?}");
    let role: Role = put_json(api, &format!("/v1/acl/role/{id}"), &body, &what).await?;
    show_role(&role, format, a.output.meta)
}
