//! DNS VIEW: the authorizers DNS answers under, computed once per ACL state, query set and
//! agent tokens, outside the query path (spec §1.9, §1.12).
//!
//! Input: the `AclResolver` (the default token, else anonymous; each prepared query's captured
//! token) and the published `CatalogSnapshot`. Output: an immutable `DnsView` in an arc-swap
//! that the DNS loops load lock-free once per batch of queries.
//!
//! When it is computed: at start; by `AgentTokens::set` before `PUT /v1/agent/token/*`
//! answers (so a new default token shows in the very next DNS answer, as in Consul); by
//! `follow` when a published snapshot moved the ACL tables or the prepared queries; and when
//! a token it resolved expires. Between an ACL write's publish and `follow`'s refresh, DNS
//! answers under the previous view for a moment (Consul's client agents keep a resolved token
//! for `token_ttl`, 30 s).
//!
//! Invariants: a view is never mutated; every stored view has a greater `generation` than the
//! one it replaces (DNS answer caches key on it); refreshes are serialised, so the last one
//! stored read the latest tokens and snapshot; no secret is logged or shown by `Debug`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::AclResolver;
use crate::acl::{Authorizer, Resolve, ResolveError};
use crate::clock::unix_ms;
use crate::snapshot::{CatalogSnapshot, SnapshotHandle};

/// One token's outcome: its authorizer, or why it has none (DNS: SERVFAIL).
pub(crate) type Grant = Result<Arc<Authorizer>, ResolveError>;

/// The authorizers DNS answers under, at one ACL state, query set and set of agent tokens.
pub(crate) struct DnsView {
    /// Bumped by every refresh; DNS answer caches are emptied when it moves.
    pub(crate) generation: u64,
    /// The default token's (or anonymous's) outcome: every DNS lookup but prepared queries
    /// with a captured token.
    default: Grant,
    /// The outcome of each prepared query's captured token, by secret.
    captured: HashMap<String, Grant>,
    /// What it was computed from.
    acl_index: u64,
    queries_index: u64,
    /// The earliest expiration among the tokens it resolved (Unix ms), if any.
    expires_ms: Option<u64>,
}

impl std::fmt::Debug for DnsView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsView")
            .field("generation", &self.generation)
            .field("default_resolved", &self.default.is_ok())
            .field("captured", &self.captured.len())
            .field("acl_index", &self.acl_index)
            .field("queries_index", &self.queries_index)
            .finish_non_exhaustive()
    }
}

impl DnsView {
    /// A view resolving every lookup to `default` (tests and benches).
    pub(crate) fn fixed(generation: u64, default: Grant) -> Self {
        Self {
            generation,
            default,
            captured: HashMap::new(),
            acl_index: 0,
            queries_index: 0,
            expires_ms: None,
        }
    }

    /// The same view with a captured token's outcome (tests).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn with_captured(mut self, secret: &str, grant: Grant) -> Self {
        self.captured.insert(secret.to_owned(), grant);
        self
    }

    /// The default token's outcome.
    pub(crate) fn default_grant(&self) -> &Grant {
        &self.default
    }

    /// The outcome for a prepared query that captured `token` (empty: none, so the default
    /// token's). A token captured after this view was computed has no outcome until the next
    /// refresh, a moment later: `NotFound` meanwhile (fail closed).
    pub(crate) fn query_grant(&self, token: &str) -> Result<&Arc<Authorizer>, &ResolveError> {
        const NOT_YET: ResolveError = ResolveError::NotFound;
        if token.is_empty() {
            return self.default.as_ref();
        }
        match self.captured.get(token) {
            Some(g) => g.as_ref(),
            None => Err(&NOT_YET),
        }
    }
}

/// The current `DnsView`, loaded lock-free by DNS; refreshed by the resolver.
pub(crate) struct DnsViewHandle {
    current: ArcSwap<DnsView>,
    /// Serialises refreshes (never taken on the DNS path).
    refreshing: Mutex<()>,
}

impl std::fmt::Debug for DnsViewHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DnsViewHandle").field(&*self.current.load()).finish()
    }
}

impl DnsViewHandle {
    /// A handle holding `view` (the resolver refreshes it; tests and benches hold it fixed).
    pub(crate) fn new(view: DnsView) -> Self {
        Self { current: ArcSwap::from_pointee(view), refreshing: Mutex::new(()) }
    }

    /// The underlying arc-swap, for a per-thread `arc_swap::Cache` in a hot loop.
    pub(crate) fn swap(&self) -> &ArcSwap<DnsView> {
        &self.current
    }

    /// The current view.
    pub(crate) fn load_full(&self) -> Arc<DnsView> {
        self.current.load_full()
    }
}

impl AclResolver {
    /// The view DNS answers under (shared; refreshed by this resolver).
    pub(crate) fn dns_view(&self) -> Arc<DnsViewHandle> {
        self.dns_view.clone()
    }

    /// Computes the view from the current snapshot and tokens and stores it.
    pub(crate) fn refresh_dns_view(&self) {
        let _serial = match self.dns_view.refreshing.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let snap = self.snapshots.load_full();
        let generation = self.dns_view.current.load().generation + 1;
        let view = self.compute_dns_view(&snap, generation);
        self.dns_view.current.store(Arc::new(view));
    }

    /// The view at `snap` with the current agent tokens.
    fn compute_dns_view(&self, snap: &CatalogSnapshot, generation: u64) -> DnsView {
        let now = unix_ms();
        let acl = snap.catalog.acl();
        let expiry = |secret: &str, g: &Grant| {
            g.as_ref().ok().and_then(|_| acl.token_by_secret(secret)).and_then(|t| t.expiration_time_ms)
        };
        let default_secret = self.effective_default();
        let default = self.resolve(None);
        let mut expires_ms = expiry(&default_secret, &default);
        let mut captured = HashMap::new();
        for q in snap.catalog.queries().filter(|q| !q.token.is_empty()) {
            if captured.contains_key(&q.token) {
                continue;
            }
            let grant = self.resolve(Some(&q.token));
            if let Some(t) = expiry(&q.token, &grant) {
                expires_ms = Some(expires_ms.map_or(t, |e| e.min(t)));
            }
            captured.insert(q.token.clone(), grant);
        }
        DnsView {
            generation,
            default,
            captured,
            acl_index: acl.index(),
            queries_index: snap.catalog.table_indexes().queries,
            expires_ms: expires_ms.filter(|&t| t > now),
        }
    }

    /// Whether `snap` moved what the current view was computed from.
    fn dns_view_behind(&self, snap: &CatalogSnapshot) -> bool {
        let view = self.dns_view.current.load();
        view.acl_index != snap.catalog.acl().index()
            || view.queries_index != snap.catalog.table_indexes().queries
    }
}

/// Keeps `resolver`'s DNS view current until `stop`: refreshes it when a published snapshot
/// moved the ACL tables or the prepared queries, when a token it resolved expires, and on a
/// client agent with `down_policy = allow | deny` when its replica goes stale or fresh again.
pub(crate) async fn follow(
    resolver: Arc<AclResolver>,
    snapshots: Arc<SnapshotHandle>,
    stop: CancellationToken,
) {
    let mut published = snapshots.subscribe();
    let mut down = resolver.is_down();
    loop {
        if resolver.dns_view_behind(&snapshots.load()) || resolver.is_down() != down {
            down = resolver.is_down();
            resolver.refresh_dns_view();
        }
        let mut wait = match resolver.dns_view.current.load().expires_ms {
            // A millisecond past the expiry, so that the token is expired when resolved again.
            Some(t) => Duration::from_millis(t.saturating_sub(unix_ms()) + 1),
            None => Duration::MAX,
        };
        if resolver.may_go_down() {
            // A client agent's replica goes stale with no publish: look again each second.
            wait = wait.min(DOWN_CHECK);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = published.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sleep_for(wait) => {
                if resolver.dns_view.current.load().expires_ms.is_some_and(|t| t <= unix_ms()) {
                    resolver.refresh_dns_view();
                }
            }
        }
    }
}

/// How often a client agent with `down_policy = allow | deny` checks whether its replica
/// went stale (or fresh again), to move DNS to (or off) the `down_policy` answer.
const DOWN_CHECK: Duration = Duration::from_secs(1);

/// Sleeps for `d`, or forever when `d` is `Duration::MAX`.
async fn sleep_for(d: Duration) {
    if d == Duration::MAX {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    //! The DNS view: computed at start, refreshed before `set` returns, followed across ACL
    //! writes, prepared queries with captured tokens, and token expiry.

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::acl::{AgentToken, AgentTokens, DefaultPolicy};
    use crate::catalog::acl::AclLink;
    use crate::catalog::apply::apply;
    use crate::catalog::{AclCommand, CatalogState, Command, CommandResponse, PreparedQuery, QueryService};
    use crate::config::AclConfig;

    const T1: &str = "11111111-1111-1111-1111-111111111111";
    const S1: &str = "aaaaaaaa-1111-1111-1111-111111111111";

    fn run(state: &mut CatalogState, index: u64, cmd: AclCommand) {
        assert_eq!(apply(state, index, &Command::Acl(cmd), &mut Vec::new()), CommandResponse::Applied);
    }

    /// Built-ins, a policy reading `web`, and token S1 linked to it (expiring at `expires_ms`).
    fn seeded(expires_ms: Option<u64>) -> CatalogState {
        let mut s = CatalogState::default();
        run(&mut s, 1, AclCommand::InitBuiltins { now_ms: 5 });
        let p = crate::catalog::acl::AclPolicy {
            id: "22222222-2222-2222-2222-222222222222".into(),
            name: "web-read".into(),
            description: String::new(),
            rules: r#"service "web" { policy = "read" }"#.into(),
            datacenters: Vec::new(),
            create_index: 0,
            modify_index: 0,
        };
        run(&mut s, 2, AclCommand::PolicySet { policy: Box::new(p), update: false });
        let mut t = crate::acl_state::management_token(S1.into(), "t", unix_ms().saturating_sub(1000));
        t.accessor_id = T1.into();
        t.policies = vec![AclLink { id: String::new(), name: "web-read".into() }];
        t.expiration_time_ms = expires_ms;
        run(&mut s, 3, AclCommand::TokenSet { token: Box::new(t), update: false });
        s
    }

    fn resolver(handle: Arc<SnapshotHandle>) -> Arc<AclResolver> {
        let mut config = AclConfig::disabled("dc1");
        config.enabled = true;
        config.default_policy = DefaultPolicy::Deny;
        Arc::new(
            AclResolver::load(handle, &config, "n1", "dc1", std::path::Path::new("/nonexistent")).expect("r"),
        )
    }

    fn reads_web(view: &DnsView) -> Option<bool> {
        view.default_grant().as_ref().ok().map(|a| a.service_read("web"))
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn the_view_follows_the_default_token_before_set_returns() {
        let handle = Arc::new(SnapshotHandle::new(CatalogSnapshot { index: 3, catalog: seeded(None) }));
        let r = resolver(handle);
        let views = r.dns_view();
        let first = views.load_full();
        assert_eq!(reads_web(&first), Some(false), "anonymous reads nothing under deny");
        r.set(AgentToken::Default, Some(S1.into())).expect("set");
        let second = views.load_full();
        assert!(second.generation > first.generation);
        assert_eq!(reads_web(&second), Some(true));
        r.set(AgentToken::Default, Some("unknown-secret".into())).expect("set");
        let third = views.load_full();
        assert!(third.generation > second.generation);
        assert_eq!(third.default_grant().as_ref().err(), Some(&ResolveError::NotFound));
        assert!(!format!("{third:?}").contains("unknown-secret"), "Debug shows no secret");
    }

    #[tokio::test]
    async fn follow_refreshes_on_acl_writes_captured_tokens_and_expiry() {
        let mut state = seeded(None);
        let handle = Arc::new(SnapshotHandle::new(CatalogSnapshot { index: 3, catalog: state.clone() }));
        let r = resolver(handle.clone());
        r.set(AgentToken::Default, Some(S1.into())).expect("set");
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow(r.clone(), handle.clone(), stop.clone()));
        let views = r.dns_view();

        // A prepared query that captured S1: resolved once the query is published.
        let q = PreparedQuery {
            id: "33333333-3333-3333-3333-333333333333".into(),
            name: "q".into(),
            session: String::new(),
            token: S1.into(),
            service: QueryService { service: "web".into(), ..Default::default() },
            dns_ttl: String::new(),
            create_index: 0,
            modify_index: 0,
        };
        state.upsert_query(4, q, &mut Vec::new());
        handle.publish(CatalogSnapshot { index: 4, catalog: state.clone() });
        until("the captured token resolves", || views.load_full().query_grant(S1).is_ok()).await;

        // A write that leaves the ACL tables and queries alone keeps the view.
        let before = views.load_full().generation;
        handle.publish(CatalogSnapshot { index: 5, catalog: state.clone() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(views.load_full().generation, before);

        // The default token deleted: NotFound (DNS SERVFAIL).
        run(&mut state, 6, AclCommand::TokenDelete(T1.into()));
        handle.publish(CatalogSnapshot { index: 6, catalog: state });
        until("the deleted token fails", || views.load_full().default_grant().is_err()).await;
        stop.cancel();
        task.await.expect("follow ends on stop");

        // A token that expires: the view fails once it has, with no write in between.
        let handle = Arc::new(SnapshotHandle::new(CatalogSnapshot {
            index: 3,
            catalog: seeded(Some(unix_ms() + 300)),
        }));
        let r = resolver(handle.clone());
        r.set(AgentToken::Default, Some(S1.into())).expect("set");
        let views = r.dns_view();
        assert_eq!(reads_web(&views.load_full()), Some(true));
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow(r.clone(), handle, stop.clone()));
        until("the expired token fails", || views.load_full().default_grant().is_err()).await;
        stop.cancel();
        task.await.expect("follow ends on stop");
    }
}
