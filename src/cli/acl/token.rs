//! `cairn acl bootstrap` and `cairn acl token create|list|read|update|delete|clone`
//! (`/v1/acl/bootstrap`, `/v1/acl/token*`), with Consul 1.8.7's flags, merges and messages.
//!
//! Input: the flags → output: the token as the agent answered it (`format::token`, or JSON).
//! `update` reads the token, keeps what no flag names, and replaces policies, roles and
//! identities with the flags' (or adds them with `-merge-*`), as Consul's CLI does.

use clap::{Args, Subcommand};

use super::format::{self, Format};
use super::wire::{Link, Token, TokenStub, TokenWrite};
use super::{
    AclCliError, FormatArgs, LinkArgs, OutputArgs, ctx, delete, get_json, identities, list, lookup,
    merge_links, merge_nodes, merge_services, output_format, policy_links, put_json, said, show,
};
use crate::cli::api::Api;

/// `cairn acl token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token linked to policies, roles and identities.
    Create(CreateArgs),
    /// List every token (without secrets).
    List(OutputArgs),
    /// Show one token (by AccessorID or unique prefix), or the caller's own with -self.
    Read(ReadArgs),
    /// Change a token's description, links and identities.
    Update(UpdateArgs),
    /// Delete a token.
    Delete(IdArgs),
    /// Copy a token's links into a new token with new IDs.
    Clone(CloneArgs),
}

/// `token create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A description of the token.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Policies and identities.
    #[command(flatten)]
    pub links: LinkArgs,
    /// Roles.
    #[command(flatten)]
    pub roles: RoleLinkArgs,
    /// Make the token valid in this datacenter only.
    #[arg(long)]
    pub local: bool,
    /// How long the token lives (a duration such as 15m, between 1m and 24h).
    #[arg(long, value_name = "DURATION")]
    pub expires_ttl: Option<String>,
    /// The AccessorID to give the token (a UUID; default: a new one).
    #[arg(long, value_name = "UUID")]
    pub accessor: Option<String>,
    /// The SecretID to give the token (a UUID; default: a new one).
    #[arg(long, value_name = "UUID")]
    pub secret: Option<String>,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The roles a token is made with (repeatable flags).
#[derive(Debug, Args)]
pub struct RoleLinkArgs {
    /// ID (or unique ID prefix) of a role to link (repeatable).
    #[arg(long, value_name = "ID")]
    pub role_id: Vec<String>,
    /// Name of a role to link (repeatable).
    #[arg(long, value_name = "NAME")]
    pub role_name: Vec<String>,
}

impl RoleLinkArgs {
    /// The links of `-role-name` then `-role-id` (resolved prefixes).
    async fn links(&self, api: &Api) -> Result<Vec<Link>, AclCliError> {
        let mut links: Vec<Link> =
            self.role_name.iter().map(|n| Link { id: String::new(), name: n.clone() }).collect();
        for partial in &self.role_id {
            let id = lookup::role_id(api, partial).await.map_err(ctx("Error resolving role ID "))?;
            links.push(Link { id, name: String::new() });
        }
        Ok(links)
    }
}

/// `token read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The token's AccessorID, or a unique prefix of it.
    #[arg(long, default_value = "")]
    pub id: String,
    /// Read the token the request is made with.
    #[arg(long = "self")]
    pub own: bool,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `token update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The token's AccessorID, or a unique prefix of it.
    #[arg(long, default_value = "")]
    pub id: String,
    /// A new description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Policies and identities (replacing the token's unless merged).
    #[command(flatten)]
    pub links: LinkArgs,
    /// Roles.
    #[command(flatten)]
    pub roles: RoleLinkArgs,
    /// Add the policies to the token's instead of replacing them.
    #[arg(long)]
    pub merge_policies: bool,
    /// Add the roles to the token's instead of replacing them.
    #[arg(long)]
    pub merge_roles: bool,
    /// Add the service identities to the token's instead of replacing them.
    #[arg(long)]
    pub merge_service_identities: bool,
    /// Add the node identities to the token's instead of replacing them.
    #[arg(long)]
    pub merge_node_identities: bool,
    /// Output.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `token delete`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The token's AccessorID, or a unique prefix of it.
    #[arg(long, default_value = "")]
    pub id: String,
}

/// `token clone`.
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The token's AccessorID, or a unique prefix of it.
    #[arg(long, default_value = "")]
    pub id: String,
    /// The clone's description (default: the original's).
    #[arg(long, default_value = "")]
    pub description: String,
    /// Output.
    #[command(flatten)]
    pub output: FormatArgs,
}

/// Prints a token as `-format` and `-meta` ask.
fn show_token(t: &Token, format: Format, meta: bool) -> Result<String, AclCliError> {
    show(t, format, |t| format::token(t, meta))
}

/// `cairn acl bootstrap`.
pub async fn bootstrap(api: &Api, args: &FormatArgs) -> Result<String, AclCliError> {
    let format = output_format(&args.format)?;
    let reply = api.put("/v1/acl/bootstrap", Vec::new()).await.map_err(ctx("Failed ACL bootstrapping"))?;
    let token: Token = reply.json().map_err(ctx("Failed ACL bootstrapping"))?;
    show_token(&token, format, false)
}

/// Runs one `cairn acl token` command.
pub async fn run(api: &Api, cmd: TokenCommand) -> Result<String, AclCliError> {
    match cmd {
        TokenCommand::Create(a) => create(api, a).await,
        TokenCommand::List(a) => {
            list::<TokenStub>(
                api,
                &a,
                "/v1/acl/tokens",
                "Failed to retrieve the token list",
                format::token_list,
            )
            .await
        }
        TokenCommand::Read(a) => read(api, a).await,
        TokenCommand::Update(a) => update(api, a).await,
        TokenCommand::Delete(a) => {
            if a.id.is_empty() {
                return Err(said("Must specify the -id parameter"));
            }
            let id = lookup::token_id(api, &a.id).await.map_err(ctx("Error determining token ID"))?;
            delete(api, "Token", &id).await
        }
        TokenCommand::Clone(a) => {
            let format = output_format(&a.output.format)?;
            if a.id.is_empty() {
                return Err(said("Cannot update a token without specifying the -id parameter"));
            }
            let id = lookup::token_id(api, &a.id).await.map_err(ctx("Error determining token ID"))?;
            // An empty description keeps the original's, as Consul's clone does.
            let body = if a.description.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({ "Description": a.description })
            };
            let token: Token =
                put_json(api, &format!("/v1/acl/token/{id}/clone"), &body, "Error cloning token").await?;
            show_token(&token, format, false)
        }
    }
}

async fn create(api: &Api, a: CreateArgs) -> Result<String, AclCliError> {
    let format = output_format(&a.output.format)?;
    if !a.links.any() && a.roles.role_id.is_empty() && a.roles.role_name.is_empty() {
        return Err(said(
            "Cannot create a token without specifying -policy-name, -policy-id, -role-name, -role-id, \
             -service-identity, or -node-identity at least once",
        ));
    }
    if let Some(ttl) = &a.expires_ttl
        && crate::agent::parse_go_duration(ttl).is_err()
    {
        return Err(said(format!("invalid value {ttl:?} for flag -expires-ttl: parse error")));
    }
    let policies = policy_links(api, &a.links).await?;
    let roles = a.roles.links(api).await?;
    let (service_identities, node_identities) = identities(&a.links)?;
    let body = TokenWrite {
        accessor_id: a.accessor.unwrap_or_default(),
        secret_id: a.secret.unwrap_or_default(),
        description: a.description,
        policies,
        roles,
        service_identities,
        node_identities,
        local: a.local,
        expiration_ttl: a.expires_ttl,
        expiration_time: None,
    };
    let token: Token = put_json(api, "/v1/acl/token", &body, "Failed to create new token").await?;
    show_token(&token, format, a.output.meta)
}

async fn read(api: &Api, a: ReadArgs) -> Result<String, AclCliError> {
    let format = output_format(&a.output.format)?;
    let token: Token = if a.own {
        get_json(api, "/v1/acl/token/self", "Error reading token").await?
    } else {
        if a.id.is_empty() {
            return Err(said("Must specify the -id parameter"));
        }
        let id = lookup::token_id(api, &a.id).await.map_err(ctx("Error determining token ID"))?;
        get_json(api, &format!("/v1/acl/token/{id}"), &format!("Error reading token {id:?}")).await?
    };
    show_token(&token, format, a.output.meta)
}

async fn update(api: &Api, a: UpdateArgs) -> Result<String, AclCliError> {
    let format = output_format(&a.output.format)?;
    if a.id.is_empty() {
        return Err(said("Cannot update a token without specifying the -id parameter"));
    }
    let id = lookup::token_id(api, &a.id).await.map_err(ctx("Error determining token ID"))?;
    let current: Token =
        get_json(api, &format!("/v1/acl/token/{id}"), "Error when retrieving current token").await?;
    let policies = policy_links(api, &a.links).await?;
    let roles = a.roles.links(api).await?;
    let (services, nodes) = identities(&a.links)?;
    let mut body = TokenWrite::from_token(&current);
    if !a.description.is_empty() {
        body.description = a.description;
    }
    if a.merge_policies {
        merge_links(&mut body.policies, policies);
    } else {
        body.policies = policies;
    }
    if a.merge_roles {
        merge_links(&mut body.roles, roles);
    } else {
        body.roles = roles;
    }
    if a.merge_service_identities {
        merge_services(&mut body.service_identities, services);
    } else {
        body.service_identities = services;
    }
    if a.merge_node_identities {
        merge_nodes(&mut body.node_identities, nodes);
    } else {
        body.node_identities = nodes;
    }
    let what = format!("Failed to update token {id}");
    let token: Token = put_json(api, &format!("/v1/acl/token/{id}"), &body, &what).await?;
    show_token(&token, format, a.output.meta)
}
