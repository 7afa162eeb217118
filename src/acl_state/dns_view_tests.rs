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
    let handle =
        Arc::new(SnapshotHandle::new(CatalogSnapshot { index: 3, catalog: seeded(Some(unix_ms() + 300)) }));
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
