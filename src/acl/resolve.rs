//! ACL RESOLVE: the seam between where tokens live and where a request is authorized.
//!
//! Input: the secret a caller presented (`?token=`, `X-Consul-Token`, `Authorization: Bearer`,
//! already picked by the HTTP layer in Consul's order), or none. Output: the `Authorizer` the
//! request is checked against, or why there is none.
//!
//! The HTTP layer and DNS ask a `Resolve`; they never read tokens or policies themselves. The
//! implementation that reads the replicated ACL state (tokens, policies, roles in the catalog
//! snapshot, compiled authorizers cached per snapshot, the agent's default and agent_master
//! tokens, `down_policy` on a client agent without a fresh replica) lives above the catalog;
//! `Disabled` here is the agent with `acl.enabled = false`.
//!
//! Invariants: resolving never blocks on IO (a server or client agent answers from its
//! snapshot); no token means the agent's default token, then anonymous; the secrets `allow`,
//! `deny` and `manage` are root names and never resolve (Consul's 500 `Cannot resolve root
//! ACL`); an unknown or expired secret is `NotFound` (403 `ACL not found`), never the
//! anonymous token.

use std::sync::Arc;

use super::Authorizer;

/// Why a presented secret gave no authorizer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// Unknown or expired secret (HTTP 403, DNS SERVFAIL).
    #[error("ACL not found")]
    NotFound,
    /// `allow`, `deny` or `manage` presented as a secret (HTTP 500).
    #[error("Cannot resolve root ACL")]
    RootName,
    /// The token could not be looked up (a client agent with no fresh replica and a
    /// `down_policy` of `deny` or an uncached token under `extend-cache`): HTTP 403/500, DNS
    /// SERVFAIL. The text says why.
    #[error("{0}")]
    Unavailable(String),
}

/// The root names Consul refuses to resolve as secrets.
pub(crate) const ROOT_NAMES: [&str; 3] = ["allow", "deny", "manage"];

/// One of the agent's own tokens (`/v1/agent/token/<name>`, spec §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentToken {
    /// `default`: requests without a token, and DNS.
    Default,
    /// `agent`: the agent's own writes.
    Agent,
    /// `agent_master`: resolved locally.
    AgentMaster,
    /// `replication`.
    Replication,
}

impl AgentToken {
    /// The token a `/v1/agent/token/<name>` path names (1.8's names and the legacy `acl_*`).
    pub(crate) fn from_path(name: &str) -> Option<Self> {
        match name {
            "default" | "acl_token" => Some(Self::Default),
            "agent" | "acl_agent_token" => Some(Self::Agent),
            "agent_master" | "acl_agent_master_token" | "agent_recovery" => Some(Self::AgentMaster),
            "replication" | "acl_replication_token" => Some(Self::Replication),
            _ => None,
        }
    }
}

/// The agent's own tokens, replaced at run time.
pub(crate) trait AgentTokens: Send + Sync {
    /// Replaces one (`None` or empty clears it); persisted first when the agent persists
    /// its tokens, so a failed write changes nothing. The error says why.
    fn set(&self, which: AgentToken, secret: Option<String>) -> Result<(), String>;
}

/// Resolves a presented secret to the authorizer a request is checked against.
pub(crate) trait Resolve: Send + Sync {
    /// Whether ACLs are on (`acl.enabled`). With ACLs off, `/v1/acl/*` and
    /// `/v1/agent/token/*` answer 401 `ACL support disabled`.
    fn enabled(&self) -> bool;

    /// The authorizer of `secret`; `None` (or an empty secret) is the agent's default
    /// token, or anonymous when that is unset.
    fn resolve(&self, secret: Option<&str>) -> Result<Arc<Authorizer>, ResolveError>;

    /// The agent's own tokens, when ACLs are on.
    fn agent_tokens(&self) -> Option<&dyn AgentTokens> {
        None
    }
}

/// ACLs off (`acl.enabled = false`, Consul's default): every request may do everything.
pub(crate) struct Disabled {
    all: Arc<Authorizer>,
}

impl Disabled {
    pub(crate) fn new() -> Self {
        Self { all: Arc::new(Authorizer::manage_all()) }
    }
}

impl Default for Disabled {
    fn default() -> Self {
        Self::new()
    }
}

impl Resolve for Disabled {
    fn enabled(&self) -> bool {
        false
    }

    fn resolve(&self, _secret: Option<&str>) -> Result<Arc<Authorizer>, ResolveError> {
        Ok(self.all.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_allows_everything_whatever_is_presented() {
        let d = Disabled::new();
        assert!(!d.enabled());
        for secret in [None, Some(""), Some("anything"), Some("deny")] {
            let a = d.resolve(secret).expect("resolves");
            assert!(a.key_write("secret/x") && a.acl_write() && a.operator_write());
        }
    }

    #[test]
    fn errors_carry_consuls_texts() {
        assert_eq!(ResolveError::NotFound.to_string(), "ACL not found");
        assert_eq!(ResolveError::RootName.to_string(), "Cannot resolve root ACL");
    }
}
