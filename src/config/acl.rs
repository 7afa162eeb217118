//! The ACL section: `acl {}`, `primary_datacenter` and Consul's pre-1.4 top-level `acl_*`
//! keys, merged into `AclConfig` (spec §1.1).
//!
//! Stage: merged layers -> `AclConfig`. Input: `Layers`, the agent's datacenter. Output: the
//! resolved ACL settings. Invariants:
//! - Every setting has up to three spellings (1.8's, the 1.11+ one, the legacy top-level key);
//!   each is read as the last layer that gives it, and two spellings given with different values
//!   refuse the start (Consul would silently pick one; a security setting must not be a guess).
//! - Invalid values refuse with Consul's texts (`Unsupported default ACL policy: X`,
//!   `invalid ACL down policy "X"`).
//! - Never fail open: what cairn cannot honour yet refuses the start with a one-line reason:
//!   token replication (cairn has one datacenter, nothing to replicate from) and a
//!   `primary_datacenter` other than this agent's datacenter (the ACL primary would be a
//!   datacenter cairn cannot reach).
//! - `acl_datacenter` turns ACLs on, as in Consul 1.8; `acl_replication_token` asks for token
//!   replication, as in Consul 1.8 (and is therefore refused).

use std::time::Duration;

use super::ConfigError;
use super::merge::{Layers, Sourced};
use super::schema::{AclFile, AclTokensFile, FileConfig};
use super::types::{AclConfig, AclTokens, DownPolicy};
use super::value::{Flag, GoDuration, Text};
use crate::acl::DefaultPolicy;

/// Consul's default `token_ttl`, `policy_ttl`, `role_ttl`.
const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// Resolves the ACL section for an agent in `datacenter`.
pub(super) fn resolve(layers: &Layers, datacenter: &str) -> Result<AclConfig, ConfigError> {
    let legacy_dc = layers.last_sourced("acl_datacenter", |f| f.acl_datacenter.get());
    let primary = pick(
        layers,
        &[
            ("primary_datacenter", &|f| f.primary_datacenter.get()),
            ("acl_datacenter", &|f| f.acl_datacenter.get()),
        ],
    )?;
    let primary_datacenter = match primary {
        Some(p) if !p.value.0.is_empty() => {
            let dc = p.value.0.to_ascii_lowercase();
            if dc != datacenter {
                return Err(p.err(format!(
                    "{dc:?}: cairn runs a single datacenter ({datacenter:?}) and cannot use another as the ACL primary"
                )));
            }
            dc
        }
        _ => datacenter.to_owned(),
    };
    let enabled = acl_flag(layers, |a| a.enabled.get()) || legacy_dc.is_some_and(|d| !d.value.0.is_empty());
    let default_policy = default_policy(layers)?;
    let down_policy = down_policy(layers)?;
    let replication = pick_flag(
        layers,
        &[
            ("acl.enable_token_replication", &|f| acl(f)?.enable_token_replication.get()),
            ("enable_acl_replication", &|f| f.enable_acl_replication.get()),
        ],
    )?;
    if let Some(r) = replication.filter(|r| r.value.0) {
        return Err(r.err("token replication is not supported: cairn runs a single datacenter"));
    }
    let tokens = tokens(layers)?;
    if let Some(t) = layers.last_sourced("acl_replication_token", |f| f.acl_replication_token.get())
        && !t.value.0.is_empty()
    {
        return Err(
            t.err("implies token replication, which is not supported: cairn runs a single datacenter")
        );
    }
    let ttl = |get: fn(&AclFile) -> Option<&GoDuration>| acl_duration(layers, get).unwrap_or(DEFAULT_TTL);
    let legacy_ttl = layers.last_sourced("acl_ttl", |f| f.acl_ttl.get());
    let token_ttl = match (acl_duration(layers, |a| a.token_ttl.get()), legacy_ttl) {
        (Some(a), Some(b)) if a != b.value.0 => return Err(b.err("conflicts with acl.token_ttl")),
        (Some(a), _) => a,
        (None, Some(b)) => b.value.0,
        (None, None) => DEFAULT_TTL,
    };
    Ok(AclConfig {
        enabled,
        default_policy,
        down_policy,
        enable_key_list_policy: acl_flag(layers, |a| a.enable_key_list_policy.get()),
        enable_token_persistence: acl_flag(layers, |a| a.enable_token_persistence.get()),
        token_ttl,
        policy_ttl: ttl(|a| a.policy_ttl.get()),
        role_ttl: ttl(|a| a.role_ttl.get()),
        tokens,
        primary_datacenter,
    })
}

/// A getter of one spelling of a setting.
type Get<'a, T> = &'a dyn Fn(&FileConfig) -> Option<&T>;

/// The `acl {}` table of a layer.
fn acl(f: &FileConfig) -> Option<&AclFile> {
    f.acl.get().map(|t| &t.0)
}

/// The `acl.tokens {}` table of a layer.
fn acl_tokens(f: &FileConfig) -> Option<&AclTokensFile> {
    acl(f)?.tokens.get().map(|t| &t.0)
}

/// The value of a setting given under several spellings: the last layer of each; two given
/// with different values refuse the start.
fn pick<T: Clone + PartialEq>(
    layers: &Layers,
    spellings: &[(&str, Get<'_, T>)],
) -> Result<Option<Sourced<T>>, ConfigError> {
    let mut found: Option<Sourced<T>> = None;
    for (key, get) in spellings {
        let Some(v) = layers.last_sourced(key, get) else { continue };
        match &found {
            Some(first) if first.value != v.value => {
                return Err(v.err(format!(
                    "conflicts with {} ({}): both spellings of one setting are given, with different values",
                    first.key, first.file
                )));
            }
            Some(_) => {}
            None => found = Some(v),
        }
    }
    Ok(found)
}

fn pick_flag(
    layers: &Layers,
    spellings: &[(&str, Get<'_, Flag>)],
) -> Result<Option<Sourced<Flag>>, ConfigError> {
    pick(layers, spellings)
}

/// The last value of a flag of `acl {}` (one spelling).
fn acl_flag(layers: &Layers, get: impl Fn(&AclFile) -> Option<&Flag>) -> bool {
    layers.last(|f| get(acl(f)?)).is_some_and(|f| f.0)
}

/// The last value of a duration of `acl {}` (one spelling).
fn acl_duration(layers: &Layers, get: impl Fn(&AclFile) -> Option<&GoDuration>) -> Option<Duration> {
    layers.last(|f| get(acl(f)?)).map(|d| d.0)
}

/// `acl.default_policy` / `acl_default_policy`: `allow` (default) or `deny`.
fn default_policy(layers: &Layers) -> Result<DefaultPolicy, ConfigError> {
    let given = pick(
        layers,
        &[
            ("acl.default_policy", &|f| acl(f)?.default_policy.get()),
            ("acl_default_policy", &|f| f.acl_default_policy.get()),
        ],
    )?;
    match given {
        None => Ok(DefaultPolicy::Allow),
        Some(p) => match p.value.0.as_str() {
            "allow" => Ok(DefaultPolicy::Allow),
            "deny" => Ok(DefaultPolicy::Deny),
            other => Err(p.err(format!("Unsupported default ACL policy: {other}"))),
        },
    }
}

/// `acl.down_policy` / `acl_down_policy`: `extend-cache` (default), `async-cache`, `allow`, `deny`.
fn down_policy(layers: &Layers) -> Result<DownPolicy, ConfigError> {
    let given = pick(
        layers,
        &[
            ("acl.down_policy", &|f| acl(f)?.down_policy.get()),
            ("acl_down_policy", &|f| f.acl_down_policy.get()),
        ],
    )?;
    match given {
        None => Ok(DownPolicy::ExtendCache),
        Some(p) => match p.value.0.as_str() {
            "extend-cache" => Ok(DownPolicy::ExtendCache),
            "async-cache" => Ok(DownPolicy::AsyncCache),
            "allow" => Ok(DownPolicy::Allow),
            "deny" => Ok(DownPolicy::Deny),
            other => Err(p.err(format!("invalid ACL down policy {other:?}"))),
        },
    }
}

/// `acl.tokens {}` with its modern and legacy spellings; an empty string is no token.
fn tokens(layers: &Layers) -> Result<AclTokens, ConfigError> {
    let token = |spellings: &[(&str, Get<'_, Text>)]| -> Result<Option<String>, ConfigError> {
        Ok(pick(layers, spellings)?.map(|t| t.value.0).filter(|t| !t.is_empty()))
    };
    Ok(AclTokens {
        master: token(&[
            ("acl.tokens.master", &|f| acl_tokens(f)?.master.get()),
            ("acl.tokens.initial_management", &|f| acl_tokens(f)?.initial_management.get()),
            ("acl_master_token", &|f| f.acl_master_token.get()),
        ])?,
        agent: token(&[
            ("acl.tokens.agent", &|f| acl_tokens(f)?.agent.get()),
            ("acl_agent_token", &|f| f.acl_agent_token.get()),
        ])?,
        agent_master: token(&[
            ("acl.tokens.agent_master", &|f| acl_tokens(f)?.agent_master.get()),
            ("acl.tokens.agent_recovery", &|f| acl_tokens(f)?.agent_recovery.get()),
            ("acl_agent_master_token", &|f| f.acl_agent_master_token.get()),
        ])?,
        default: token(&[
            ("acl.tokens.default", &|f| acl_tokens(f)?.default.get()),
            ("acl_token", &|f| f.acl_token.get()),
        ])?,
        replication: token(&[("acl.tokens.replication", &|f| acl_tokens(f)?.replication.get())])?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Overrides};
    use super::*;

    /// Loads `json` as the only config file of a dev agent in dc1.
    fn load(json: &str) -> Result<AclConfig, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.json");
        std::fs::write(&p, json).expect("write");
        let o = Overrides {
            dev: true,
            node_name: Some("n1".into()),
            config_files: vec![p],
            ..Overrides::default()
        };
        Config::load(&o).map(|(c, _)| c.acl).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_consuls() {
        let a = load("{}").expect("loads");
        assert_eq!(a, AclConfig::disabled("dc1"));
        assert_eq!(a.token_ttl, Duration::from_secs(30));
    }

    #[test]
    fn the_acl_block_and_its_modern_spellings_load() {
        let a = load(
            r#"{"acl":{"enabled":true,"default_policy":"deny","down_policy":"async-cache",
                "enable_key_list_policy":true,"enable_token_persistence":true,"token_ttl":"1m",
                "tokens":{"initial_management":"root","agent_recovery":"am","agent":"ag","default":"d"}},
                "primary_datacenter":"DC1"}"#,
        )
        .expect("loads");
        assert!(a.enabled && a.enable_key_list_policy && a.enable_token_persistence);
        assert_eq!(a.default_policy, DefaultPolicy::Deny);
        assert_eq!(a.down_policy, DownPolicy::AsyncCache);
        assert_eq!(a.token_ttl, Duration::from_secs(60));
        assert_eq!(a.tokens.master.as_deref(), Some("root"));
        assert_eq!(a.tokens.agent_master.as_deref(), Some("am"));
        assert_eq!(a.tokens.agent.as_deref(), Some("ag"));
        assert_eq!(a.tokens.default.as_deref(), Some("d"));
        assert_eq!(a.primary_datacenter, "dc1");
        assert!(!format!("{a:?}").contains("root"), "secrets never in Debug");
    }

    #[test]
    fn legacy_keys_map_and_acl_datacenter_turns_acls_on() {
        let a = load(
            r#"{"acl_datacenter":"dc1","acl_default_policy":"deny","acl_down_policy":"deny",
                "acl_master_token":"root","acl_token":"d","acl_agent_token":"ag",
                "acl_agent_master_token":"am","acl_ttl":"45s"}"#,
        )
        .expect("loads");
        assert!(a.enabled);
        assert_eq!((a.default_policy, a.down_policy), (DefaultPolicy::Deny, DownPolicy::Deny));
        assert_eq!(a.tokens.master.as_deref(), Some("root"));
        assert_eq!(a.tokens.default.as_deref(), Some("d"));
        assert_eq!(a.token_ttl, Duration::from_secs(45));
    }

    #[test]
    fn bad_values_and_conflicts_refuse_with_consuls_texts() {
        let cases = [
            (
                r#"{"acl":{"default_policy":"maybe"}}"#,
                "acl.default_policy: Unsupported default ACL policy: maybe",
            ),
            (r#"{"acl_default_policy":"x"}"#, "acl_default_policy: Unsupported default ACL policy: x"),
            (r#"{"acl":{"down_policy":"nope"}}"#, "acl.down_policy: invalid ACL down policy \"nope\""),
            (
                r#"{"acl":{"tokens":{"master":"a","initial_management":"b"}}}"#,
                "acl.tokens.initial_management: conflicts with acl.tokens.master",
            ),
            (
                r#"{"acl":{"tokens":{"master":"a"}},"acl_master_token":"b"}"#,
                "acl_master_token: conflicts with",
            ),
            (r#"{"acl":{"enable_token_replication":true}}"#, "token replication is not supported"),
            (r#"{"enable_acl_replication":true}"#, "token replication is not supported"),
            (r#"{"acl_replication_token":"r"}"#, "implies token replication"),
            (r#"{"primary_datacenter":"dc2"}"#, "cannot use another as the ACL primary"),
            (r#"{"acl":{"tokens":{"nope":"x"}}}"#, "nope"),
        ];
        for (json, want) in cases {
            let err = load(json).expect_err(json);
            assert!(err.contains(want), "{json}: {err}");
        }
        // The same value under both spellings is one setting.
        let a = load(r#"{"acl":{"tokens":{"master":"a","initial_management":"a"}}}"#).expect("same value");
        assert_eq!(a.tokens.master.as_deref(), Some("a"));
    }
}
