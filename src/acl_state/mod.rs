//! ACL STATE READER: the real `acl::Resolve` over the replicated ACL tables, and the leader's
//! ACL duties (built-ins, the configured master token).
//!
//! Stage: between the read model and the request paths. Input: a presented secret (already
//! picked by HTTP in Consul's order), the published `CatalogSnapshot`, the agent's ACL config.
//! Output: an `Arc<Authorizer>` or Consul's `ResolveError`.
//!
//! Resolution (spec §1.4): none or empty -> the agent's default token (`acl.tokens.default`,
//! settable at run time) -> `anonymous`; `allow`/`deny`/`manage` -> `RootName`; the configured
//! `agent_master` secret -> `PolicyRules::agent_master(node)`, resolved locally with no table
//! read; otherwise the token whose SecretID matches in the current snapshot (unknown or
//! expired -> `NotFound`), compiled from its policies, its roles' policies and its service and
//! node identities (policies and identities scoped to other datacenters left out), over
//! `default_policy`.
//!
//! DNS never resolves: it loads the `DnsView` (`dns_view`), the default token's and captured
//! query tokens' outcomes computed here once per ACL state, query set and agent tokens.
//!
//! Invariants: resolving never awaits and never touches LMDB or Raft: it loads the published
//! snapshot (arc-swap, lock-free) and takes a short lock on the authorizer cache. The cache is
//! keyed by secret and valid for one ACL-table index: any ACL write (or restore) moves the
//! index and empties it, so a revoked or edited token stops working at the next request (Consul
//! waits up to `token_ttl`; doing better is allowed, spec §1.12). A cached entry keeps its
//! token's expiration, so an expired token is refused even from the cache. Secrets are never
//! logged.

mod dns_view;
mod leader;
pub(crate) mod permission;
mod reset;
mod tokens;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::acl::{
    ANONYMOUS_TOKEN_SECRET, AgentToken, AgentTokens, Authorizer, DefaultPolicy, PolicyRules, ROOT_NAMES,
    Resolve, ResolveError, parse_legacy_rules, parse_rules,
};
use crate::catalog::CatalogState;
use crate::catalog::acl::{AclLink, AclState, AclToken, NodeIdentity, ServiceIdentity};
use crate::clock::unix_ms;
use crate::config::{AclConfig, DownPolicy};
use crate::consensus::{Authority, Consensus, Credentials};
use crate::rpc::Secret;
use crate::snapshot::SnapshotHandle;

pub(crate) use dns_view::{DnsView, DnsViewHandle, follow as follow_dns_view};
pub(crate) use leader::{management_token, run_leader_duties};
pub(crate) use reset::{read_reset_index, spend_reset_file};
use tokens::{TOKENS_FILE, TokenSet};

/// Most cached authorizers; a full cache is emptied (tokens in use are few).
const CACHE_CAP: usize = 4096;

/// One compiled token.
#[derive(Clone)]
struct Cached {
    authorizer: Arc<Authorizer>,
    expires_ms: Option<u64>,
}

/// The authorizers compiled at one ACL index.
#[derive(Default)]
struct Cache {
    acl_index: u64,
    by_secret: HashMap<String, Cached>,
}

/// The token resolver of an agent with `acl.enabled = true`.
pub(crate) struct AclResolver {
    snapshots: Arc<SnapshotHandle>,
    default_policy: DefaultPolicy,
    node: String,
    datacenter: String,
    /// The agent's own tokens (`acl.tokens`, `PUT /v1/agent/token/*`).
    tokens: RwLock<TokenSet>,
    /// `<data_dir>/acl-tokens.json` under `acl.enable_token_persistence`.
    tokens_file: Option<PathBuf>,
    cache: Mutex<Cache>,
    /// On a client agent: when its replica counts as stale, and `acl.down_policy`.
    down: Option<Down>,
    /// What DNS answers under (`dns_view`), refreshed on token and ACL changes.
    dns_view: Arc<DnsViewHandle>,
}

/// A client agent's `down_policy` (spec §1.1). Its replica is the servers' ACL state, fresh
/// while the replica heard from a server (which heard from its leader) within `stale_after`
/// (`acl.token_ttl`: as long as Consul caches a token it fetched), so tokens resolve locally
/// with no server round trip. Past it, or before the first catalog arrived, no server is
/// reachable: `allow` and `deny` answer with an allow-all or a deny-all authorizer (the
/// `agent_master` token still resolves locally); `extend-cache` and `async-cache` keep using
/// the last snapshot's tokens and policies (the replica holds them all, so every token is
/// "cached"; an unknown one stays `ACL not found`).
struct Down {
    consensus: Consensus,
    stale_after_ms: u64,
    /// The authorizer answered while stale, or `None` to keep resolving from the snapshot.
    verdict: Option<Arc<Authorizer>>,
}

impl AclResolver {
    /// A resolver for an agent named `node` in `datacenter` with `config`, its tokens
    /// persisted under `data_dir` when the config says so (a persisted file that cannot be
    /// read refuses: the error says why).
    pub(crate) fn load(
        snapshots: Arc<SnapshotHandle>,
        config: &AclConfig,
        node: &str,
        datacenter: &str,
        data_dir: &std::path::Path,
    ) -> Result<Self, String> {
        let tokens_file = config.enable_token_persistence.then(|| data_dir.join(TOKENS_FILE));
        let tokens = TokenSet::load(config, node, tokens_file.as_deref())?;
        let resolver = Self {
            snapshots,
            default_policy: config.default_policy,
            node: node.to_owned(),
            datacenter: datacenter.to_owned(),
            tokens: RwLock::new(tokens),
            tokens_file,
            cache: Mutex::new(Cache::default()),
            down: None,
            dns_view: Arc::new(DnsViewHandle::new(DnsView::fixed(0, Err(ResolveError::NotFound)))),
        };
        resolver.refresh_dns_view();
        Ok(resolver)
    }

    /// On a client agent: applies `policy` when the replica behind `consensus` is stale for
    /// longer than `stale_after` (see `Down`).
    pub(crate) fn with_down_policy(
        mut self,
        consensus: Consensus,
        policy: DownPolicy,
        stale_after: Duration,
    ) -> Self {
        let verdict = match policy {
            DownPolicy::Allow => Some(Arc::new(Authorizer::new(std::iter::empty(), DefaultPolicy::Allow))),
            DownPolicy::Deny => Some(Arc::new(Authorizer::new(std::iter::empty(), DefaultPolicy::Deny))),
            DownPolicy::ExtendCache | DownPolicy::AsyncCache => None,
        };
        let stale_after_ms = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
        self.down = Some(Down { consensus, stale_after_ms, verdict });
        self
    }

    /// Whether resolving can change with no publish: a client agent whose `down_policy`
    /// (`allow`, `deny`) answers once its replica goes stale.
    fn may_go_down(&self) -> bool {
        self.down.as_ref().is_some_and(|d| d.verdict.is_some())
    }

    /// Whether the `down_policy` answer is in force now.
    fn is_down(&self) -> bool {
        self.when_down().is_some()
    }

    /// The `down_policy` answer while no server is reachable (`None`: resolve from the snapshot).
    fn when_down(&self) -> Option<Arc<Authorizer>> {
        let down = self.down.as_ref()?;
        let verdict = down.verdict.as_ref()?;
        let never = self.snapshots.load().index == 0;
        (never || down.consensus.last_contact_ms() > down.stale_after_ms).then(|| verdict.clone())
    }

    /// The secret a request without one stands for: the default token, or anonymous.
    fn effective_default(&self) -> String {
        let guard = match self.tokens.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.default.clone().unwrap_or_else(|| ANONYMOUS_TOKEN_SECRET.to_owned())
    }

    fn with_cache<T>(&self, f: impl FnOnce(&mut Cache) -> T) -> T {
        let mut guard = match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Resolves a non-empty secret that is not a root name.
    fn resolve_secret(&self, secret: &str) -> Result<Arc<Authorizer>, ResolveError> {
        let agent_master = {
            let guard = match self.tokens.read() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            guard.agent_master.as_ref().filter(|(master, _)| master == secret).map(|(_, a)| a.clone())
        };
        if let Some(authz) = agent_master {
            return Ok(authz);
        }
        if let Some(authz) = self.when_down() {
            return Ok(authz);
        }
        let now = unix_ms();
        let snap = self.snapshots.load();
        let acl = snap.catalog.acl();
        let hit = self.with_cache(|c| {
            if c.acl_index != acl.index() {
                c.acl_index = acl.index();
                c.by_secret.clear();
            }
            c.by_secret.get(secret).cloned()
        });
        if let Some(hit) = hit {
            return match hit.expires_ms {
                Some(t) if t <= now => Err(ResolveError::NotFound),
                _ => Ok(hit.authorizer),
            };
        }
        let token = acl.token_by_secret(secret).ok_or(ResolveError::NotFound)?;
        if token.expired(now) {
            return Err(ResolveError::NotFound);
        }
        let authorizer = Arc::new(compile(&snap.catalog, token, &self.datacenter, self.default_policy));
        let cached = Cached { authorizer: authorizer.clone(), expires_ms: token.expiration_time_ms };
        self.with_cache(|c| {
            if c.acl_index == acl.index() {
                if c.by_secret.len() >= CACHE_CAP {
                    c.by_secret.clear();
                }
                c.by_secret.insert(secret.to_owned(), cached);
            }
        });
        Ok(authorizer)
    }
}

impl Resolve for AclResolver {
    fn enabled(&self) -> bool {
        true
    }

    fn resolve(&self, secret: Option<&str>) -> Result<Arc<Authorizer>, ResolveError> {
        let secret = match secret {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => self.effective_default(),
        };
        if ROOT_NAMES.contains(&secret.as_str()) {
            return Err(ResolveError::RootName);
        }
        self.resolve_secret(&secret)
    }

    fn agent_tokens(&self) -> Option<&dyn AgentTokens> {
        Some(self)
    }
}

/// The secrets a forwarded write carries (`Consensus::set_credentials`): the caller's, else
/// the default token, else anonymous; the agent's own writes use `acl.tokens.agent`, else the
/// default token (Consul's `AgentToken()` fallback), else anonymous.
impl Credentials for AclResolver {
    fn secret(&self, who: Authority<'_>) -> Secret {
        let guard = match self.tokens.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let chosen = match who {
            Authority::Caller(Some(s)) if !s.is_empty() => Some(s.to_owned()),
            Authority::Caller(_) => guard.default.clone(),
            Authority::Agent => guard.agent.clone().or_else(|| guard.default.clone()),
        };
        Secret::new(chosen.unwrap_or_else(|| ANONYMOUS_TOKEN_SECRET.to_owned()))
    }
}

impl AgentTokens for AclResolver {
    fn set(&self, which: AgentToken, secret: Option<String>) -> Result<(), String> {
        {
            let mut guard = match self.tokens.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let next = guard.with(which, secret, &self.node, self.default_policy);
            if let Some(path) = &self.tokens_file {
                next.persist(path)?;
            }
            *guard = next;
        }
        // Before the HTTP reply: the next DNS answer follows the new default token.
        self.refresh_dns_view();
        Ok(())
    }
}

/// The token `secret` names in `state` (unexpired at `now_ms`), for `token/self`.
pub(crate) fn token_of<'a>(state: &'a CatalogState, secret: &str, now_ms: u64) -> Option<&'a Arc<AclToken>> {
    state.acl().token_by_secret(secret).filter(|t| !t.expired(now_ms))
}

/// Compiles `token`'s effective rules (spec §1.4) into an authorizer.
pub(crate) fn compile(
    state: &CatalogState,
    token: &AclToken,
    dc: &str,
    default: DefaultPolicy,
) -> Authorizer {
    let acl = state.acl();
    let mut rules: Vec<PolicyRules> = Vec::new();
    add_policies(acl, &token.policies, dc, &mut rules);
    add_identities(&token.service_identities, &token.node_identities, dc, &mut rules);
    // A legacy token's own rules (Consul's `EmbeddedPolicy`); they were checked before the
    // token was proposed, so one that no longer parses grants nothing.
    if !token.rules.is_empty() {
        match parse_legacy_rules(&token.rules) {
            Ok(r) => rules.push(r),
            Err(e) => {
                tracing::warn!(token = %token.accessor_id, error = %e, "stored legacy rules do not parse; ignored")
            }
        }
    }
    for link in &token.roles {
        if let Some(role) = acl.role(&link.id) {
            add_policies(acl, &role.policies, dc, &mut rules);
            add_identities(&role.service_identities, &role.node_identities, dc, &mut rules);
        }
    }
    Authorizer::new(rules.iter(), default)
}

/// The rules of the linked policies that still exist and apply in `dc`. A stored policy's
/// rules were parsed before they were proposed; one that no longer parses grants nothing.
fn add_policies(acl: &AclState, links: &[AclLink], dc: &str, out: &mut Vec<PolicyRules>) {
    for link in links {
        let Some(p) = acl.policy(&link.id) else { continue };
        if !p.datacenters.is_empty() && !p.datacenters.iter().any(|d| d == dc) {
            continue;
        }
        match parse_rules(&p.rules) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(policy = %p.id, error = %e, "stored ACL policy does not parse; ignored"),
        }
    }
}

fn add_identities(
    services: &[ServiceIdentity],
    nodes: &[NodeIdentity],
    dc: &str,
    out: &mut Vec<PolicyRules>,
) {
    for s in services {
        if s.datacenters.is_empty() || s.datacenters.iter().any(|d| d == dc) {
            out.push(PolicyRules::service_identity(&s.service_name));
        }
    }
    for n in nodes.iter().filter(|n| n.datacenter == dc) {
        out.push(PolicyRules::node_identity(&n.node_name));
    }
}

#[cfg(test)]
mod tests;
