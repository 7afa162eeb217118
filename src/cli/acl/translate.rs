//! `cairn acl translate-rules [-token-accessor | -token-secret] TRANSLATE`: Consul 1.8.7's
//! command [live]. TRANSLATE is rules text, `@FILE` or `-` (stdin); without a flag the rules
//! are translated here, with no agent call (as Consul does); with `-token-accessor` it is a
//! legacy token's AccessorID (or a unique prefix), with `-token-secret` its SecretID, and the
//! token's rules are read from the agent (`GET /v1/acl/token/:id`, or `/v1/acl/token/self`
//! with that secret) and translated here. Output: the translated rules and a newline.

use clap::Args;
use serde_json::Value;

use super::{AclCliError, lookup, said};
use crate::cli::api::Api;

/// `cairn acl translate-rules` flags.
#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// TRANSLATE is a legacy token's AccessorID (or a unique prefix of it).
    #[arg(long)]
    pub token_accessor: bool,
    /// TRANSLATE is a legacy token's SecretID.
    #[arg(long)]
    pub token_secret: bool,
    /// The rules (text, @FILE or - for stdin), or the token's ID with a flag.
    #[arg(value_name = "TRANSLATE")]
    pub args: Vec<String>,
}

/// Runs the command; returns what to print.
pub async fn run(api: &Api, args: &TranslateArgs) -> Result<String, AclCliError> {
    if args.token_accessor && args.token_secret {
        return Err(said("Error - cannot specify both -token-secret and -token-accessor"));
    }
    let arg = match args.args.as_slice() {
        [] => return Err(said("Error! Missing TRANSLATE argument")),
        [one] => one,
        many => return Err(said(format!("Error! Too many arguments: expected 1 got {}", many.len()))),
    };
    let data = lookup::rules(arg).map_err(|e| said(format!("Error! {e}")))?;
    let rules = if args.token_accessor || args.token_secret {
        let id = lookup::token_id(api, data.trim()).await.map_err(|e| said(e.to_string()))?;
        let reply = if args.token_secret {
            let api = api.with_token(&id).map_err(|e| said(format!("Error reading token: {e}")))?;
            api.get("/v1/acl/token/self").await
        } else {
            api.get(&format!("/v1/acl/token/{id}")).await
        };
        let token: Value = reply
            .map_err(|e| said(format!("Error reading token: {e}")))?
            .json()
            .map_err(|e| said(format!("Error reading token: {e}")))?;
        match token.get("Rules").and_then(Value::as_str) {
            Some(r) if !r.is_empty() => r.to_owned(),
            _ => return Err(said("Token is not a legacy token with rules")),
        }
    } else {
        data
    };
    let translated = crate::acl::translate_legacy_rules(&rules)
        .map_err(|e| said(format!("Error translating rules: {e}")))?;
    Ok(format!("{translated}\n"))
}
