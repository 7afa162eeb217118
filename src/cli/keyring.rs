//! `cairn keyring`: list, install, use or remove gossip encryption keys on every member of the
//! pool, through the local agent's `/v1/operator/keyring`, printing what Consul's
//! `consul keyring` prints.
//!
//! Input: one action (`--list`, `--list-primary`, `--install K`, `--use K`, `--remove K`) and
//! `--relay-factor N` (0..5), `--local-only` (lists only) → output: `==> <what>...`, then for
//! a list one block per pool (`dc1 (LAN):` and `  <key> [have/total]` lines, keys sorted).
//! Invariant: the command succeeds (exit 0) only when every member replied without error: the
//! agent answers anything else with a 500, which is this command's error.

use std::io::Write as _;

use clap::Args;
use reqwest::Method;
use serde::Deserialize;
use std::collections::BTreeMap;

use super::api::{Api, ApiError};

/// The largest `--relay-factor` (Consul's).
const MAX_RELAY_FACTOR: u8 = 5;

/// `cairn keyring` options: exactly one action.
#[derive(Debug, Args)]
pub struct KeyringArgs {
    /// List all keys currently in use within the cluster.
    #[arg(long)]
    pub list: bool,
    /// List all primary keys currently in use within the cluster.
    #[arg(long)]
    pub list_primary: bool,
    /// Install a new encryption key; it is broadcast to all members of the cluster.
    #[arg(long, value_name = "KEY")]
    pub install: Option<String>,
    /// Change the primary encryption key (the one that encrypts); it must be installed.
    #[arg(long = "use", value_name = "KEY")]
    pub use_key: Option<String>,
    /// Remove a key that is not the primary key from the cluster.
    #[arg(long, value_name = "KEY")]
    pub remove: Option<String>,
    /// Members that also relay each node's reply (0 to 5).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub relay_factor: i64,
    /// Query only this datacenter's servers (list requests only).
    #[arg(long)]
    pub local_only: bool,
}

/// Why `cairn keyring` failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringCliError {
    /// No action or more than one.
    #[error("Only a single action is allowed")]
    Action,
    /// `--local-only` with a write.
    #[error("Error validating local-only: local-only can only be set for list requests")]
    LocalOnly,
    /// `--relay-factor` out of range.
    #[error("Error parsing relay factor: Relay factor must be in range: [0, {MAX_RELAY_FACTOR}]")]
    RelayFactor,
    /// The agent refused or a member failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// One pool's keys as the agent reports them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Pool {
    #[serde(rename = "WAN")]
    wan: bool,
    datacenter: String,
    #[serde(default)]
    segment: String,
    keys: BTreeMap<String, usize>,
    primary_keys: BTreeMap<String, usize>,
    num_nodes: usize,
}

enum Action<'a> {
    List { primary: bool },
    Write { method: Method, key: &'a str, doing: &'static str },
}

fn action(args: &KeyringArgs) -> Result<Action<'_>, KeyringCliError> {
    let mut actions = Vec::new();
    if args.list {
        actions.push(Action::List { primary: false });
    }
    if args.list_primary {
        actions.push(Action::List { primary: true });
    }
    let writes = [
        (&args.install, Method::POST, "Installing new gossip encryption key"),
        (&args.use_key, Method::PUT, "Changing primary gossip encryption key"),
        (&args.remove, Method::DELETE, "Removing gossip encryption key"),
    ];
    for (key, method, doing) in writes {
        if let Some(key) = key {
            actions.push(Action::Write { method, key, doing });
        }
    }
    let Ok([action]) = <[Action<'_>; 1]>::try_from(actions) else { return Err(KeyringCliError::Action) };
    Ok(action)
}

/// Runs one keyring action; prints its heading at once (so it shows before an error, as
/// Consul's does) and returns the rest of the output.
pub async fn keyring(api: &Api, args: &KeyringArgs) -> Result<String, KeyringCliError> {
    let action = action(args)?;
    let relay = u8::try_from(args.relay_factor)
        .ok()
        .filter(|n| *n <= MAX_RELAY_FACTOR)
        .ok_or(KeyringCliError::RelayFactor)?;
    if args.local_only && matches!(action, Action::Write { .. }) {
        return Err(KeyringCliError::LocalOnly);
    }
    let mut path = format!("/v1/operator/keyring?relay-factor={relay}");
    if args.local_only {
        path.push_str("&local-only=1");
    }
    match action {
        Action::List { primary } => {
            let what =
                if primary { "installed primary encryption keys" } else { "installed encryption keys" };
            heading(&format!("Gathering {what}"));
            let pools: Vec<Pool> = api.get(&path).await?.json()?;
            Ok(render(&pools, primary))
        }
        Action::Write { method, key, doing } => {
            heading(doing);
            let body = serde_json::to_vec(&serde_json::json!({ "Key": key })).map_err(ApiError::Decode)?;
            api.send(method, &path, Some(body), false).await?;
            Ok(String::new())
        }
    }
}

fn heading(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "==> {what}...");
    let _ = out.flush();
}

/// Consul's blocks: a blank line, `<pool>:`, then `  <key> [have/total]` per key.
fn render(pools: &[Pool], primary: bool) -> String {
    let mut out = String::new();
    for pool in pools {
        let mut name = if pool.wan { "WAN".to_owned() } else { format!("{} (LAN)", pool.datacenter) };
        if !pool.segment.is_empty() {
            name.push_str(&format!(" [segment: {}]", pool.segment));
        }
        out.push_str(&format!("\n{name}:\n"));
        let keys = if primary { &pool.primary_keys } else { &pool.keys };
        for (key, have) in keys {
            out.push_str(&format!("  {key} [{have}/{}]\n", pool.num_nodes));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> KeyringArgs {
        KeyringArgs {
            list: false,
            list_primary: false,
            install: None,
            use_key: None,
            remove: None,
            relay_factor: 0,
            local_only: false,
        }
    }

    #[test]
    fn exactly_one_action() {
        assert!(matches!(action(&args()), Err(KeyringCliError::Action)));
        let both = KeyringArgs { list: true, install: Some("k".into()), ..args() };
        assert!(matches!(action(&both), Err(KeyringCliError::Action)));
        let one = KeyringArgs { use_key: Some("k".into()), ..args() };
        assert!(matches!(action(&one), Ok(Action::Write { method: Method::PUT, key: "k", .. })));
    }

    #[test]
    fn lists_render_as_consuls() {
        let pool = Pool {
            wan: false,
            datacenter: "dc1".into(),
            segment: String::new(),
            keys: BTreeMap::from([("A=".into(), 3), ("B=".into(), 2)]),
            primary_keys: BTreeMap::from([("A=".into(), 3)]),
            num_nodes: 3,
        };
        assert_eq!(render(std::slice::from_ref(&pool), false), "\ndc1 (LAN):\n  A= [3/3]\n  B= [2/3]\n");
        assert_eq!(render(&[pool], true), "\ndc1 (LAN):\n  A= [3/3]\n");
    }
}
