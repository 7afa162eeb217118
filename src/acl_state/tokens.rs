//! The agent's own ACL tokens (`acl.tokens.{default, agent, agent_master, replication}`),
//! replaced at run time by `PUT /v1/agent/token/<name>` and, with
//! `acl.enable_token_persistence`, kept in `<data_dir>/acl-tokens.json` (Consul's file: a JSON
//! object with those four keys) and reloaded at start, where a persisted token wins over the
//! configured one (Consul 1.8's order).
//!
//! Invariants: the file holds secrets: mode 0600, written to a temporary file, synced, then
//! renamed; a write that fails leaves the tokens in memory unchanged; a file that cannot be
//! read or decoded refuses the start (the tokens it held are not guessed); `Debug` never shows
//! a secret.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::acl::{AgentToken, Authorizer, DefaultPolicy, PolicyRules};
use crate::codec::Format;
use crate::config::AclConfig;

/// The file's name under the data directory.
pub(crate) const TOKENS_FILE: &str = "acl-tokens.json";

/// `acl-tokens.json`: absent or empty keys are unset.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct TokensFile {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    default: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    agent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    agent_master: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    replication: String,
}

/// The tokens in effect; `agent_master` with its compiled authorizer.
#[derive(Clone, Default)]
pub(crate) struct TokenSet {
    pub(crate) default: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) agent_master: Option<(String, Arc<Authorizer>)>,
    pub(crate) replication: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSet(<hidden>)")
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The `agent_master` authorizer of `node`.
pub(crate) fn agent_master(secret: String, node: &str, default: DefaultPolicy) -> (String, Arc<Authorizer>) {
    let rules = PolicyRules::agent_master(node);
    (secret, Arc::new(Authorizer::new([&rules], default)))
}

impl TokenSet {
    /// The configured tokens, overridden by a persisted file's (`file`), if any.
    pub(crate) fn load(config: &AclConfig, node: &str, file: Option<&Path>) -> Result<Self, String> {
        let t = &config.tokens;
        let mut set = Self {
            default: t.default.clone(),
            agent: t.agent.clone(),
            agent_master: t.agent_master.clone().map(|s| agent_master(s, node, config.default_policy)),
            replication: t.replication.clone(),
        };
        let Some(path) = file else { return Ok(set) };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(set),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let saved: TokensFile =
            Format::AclTokensFile.decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(s) = non_empty(&saved.default) {
            set.default = Some(s);
        }
        if let Some(s) = non_empty(&saved.agent) {
            set.agent = Some(s);
        }
        if let Some(s) = non_empty(&saved.agent_master) {
            set.agent_master = Some(agent_master(s, node, config.default_policy));
        }
        if let Some(s) = non_empty(&saved.replication) {
            set.replication = Some(s);
        }
        Ok(set)
    }

    /// This set with `which` replaced.
    pub(crate) fn with(
        &self,
        which: AgentToken,
        secret: Option<String>,
        node: &str,
        default: DefaultPolicy,
    ) -> Self {
        let mut next = self.clone();
        let secret = secret.filter(|s| !s.is_empty());
        match which {
            AgentToken::Default => next.default = secret,
            AgentToken::Agent => next.agent = secret,
            AgentToken::AgentMaster => next.agent_master = secret.map(|s| agent_master(s, node, default)),
            AgentToken::Replication => next.replication = secret,
        }
        next
    }

    /// Writes this set to `path` (`store::write_secret_file`: 0600, atomic).
    pub(crate) fn persist(&self, path: &Path) -> Result<(), String> {
        let file = TokensFile {
            default: self.default.clone().unwrap_or_default(),
            agent: self.agent.clone().unwrap_or_default(),
            agent_master: self.agent_master.as_ref().map(|(s, _)| s.clone()).unwrap_or_default(),
            replication: self.replication.clone().unwrap_or_default(),
        };
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let bytes = Format::AclTokensFile.encode(&file).map_err(|e| err(&e))?;
        crate::store::write_secret_file(path, &bytes).map_err(|e| err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_bytes_are_consuls_shape_and_pinned() {
        let file = TokensFile { default: "d".into(), agent_master: "am".into(), ..TokensFile::default() };
        let bytes = Format::AclTokensFile.encode(&file).expect("encode");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "{\n  \"default\": \"d\",\n  \"agent_master\": \"am\"\n}"
        );
        let back: TokensFile =
            Format::AclTokensFile.decode(br#"{"agent":"a","replication":"r"}"#).expect("decode");
        assert_eq!((back.agent.as_str(), back.replication.as_str(), back.default.as_str()), ("a", "r", ""));
    }
}
