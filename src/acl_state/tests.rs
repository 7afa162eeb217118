//! ACL state and resolver: apply determinism and Consul's texts, the snapshot round trip,
//! resolution precedence and the cache.

use super::leader::management_token;
use super::*;
use crate::acl::{ANONYMOUS_TOKEN_ACCESSOR_ID, GLOBAL_MANAGEMENT_POLICY_ID};
use crate::catalog::acl::{AclPolicy, AclRole};
use crate::catalog::apply::apply;
use crate::catalog::{AclCommand, Command, CommandResponse};
use crate::codec::Format;
use crate::snapshot::CatalogSnapshot;

const T1: &str = "11111111-1111-1111-1111-111111111111";
const S1: &str = "aaaaaaaa-1111-1111-1111-111111111111";
const P1: &str = "22222222-2222-2222-2222-222222222222";

fn run(state: &mut CatalogState, index: u64, cmd: AclCommand) -> CommandResponse {
    let cmd = Command::Acl(cmd);
    if let Err(e) = cmd.validate() {
        return CommandResponse::Rejected(e.to_string());
    }
    apply(state, index, &cmd, &mut Vec::new())
}

fn rejected(r: CommandResponse) -> String {
    match r {
        CommandResponse::Rejected(m) => m,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn policy(id: &str, name: &str, rules: &str) -> AclPolicy {
    AclPolicy {
        id: id.into(),
        name: name.into(),
        description: String::new(),
        rules: rules.into(),
        datacenters: Vec::new(),
        create_index: 0,
        modify_index: 0,
    }
}

fn token(accessor: &str, secret: &str, policy_name: &str) -> AclToken {
    let mut t = management_token(secret.into(), "t", 1_000);
    t.accessor_id = accessor.into();
    t.policies = vec![AclLink { id: String::new(), name: policy_name.into() }];
    t
}

/// A state with the built-ins, policy `web-read` and a token linked to it by name.
fn seeded() -> CatalogState {
    let mut s = CatalogState::default();
    assert_eq!(run(&mut s, 1, AclCommand::InitBuiltins { now_ms: 5 }), CommandResponse::Applied);
    let p = policy(P1, "web-read", r#"service "web" { policy = "read" }"#);
    assert_eq!(
        run(&mut s, 2, AclCommand::PolicySet { policy: Box::new(p), update: false }),
        CommandResponse::Applied
    );
    let t = token(T1, S1, "web-read");
    assert_eq!(
        run(&mut s, 3, AclCommand::TokenSet { token: Box::new(t), update: false }),
        CommandResponse::Applied
    );
    s
}

#[test]
fn apply_is_deterministic_and_links_are_stored_by_id() {
    let (a, b) = (seeded(), seeded());
    assert_eq!(a, b);
    let t = a.acl().token(T1).expect("token");
    assert_eq!(t.policies, vec![AclLink { id: P1.into(), name: "web-read".into() }]);
    assert_eq!((t.create_index, t.modify_index, t.create_time_ms), (3, 3, 1_000));
    assert_eq!(a.acl().index(), 3);
    assert_eq!(
        a.acl().policy_by_name("global-management").map(|p| p.id.as_str()),
        Some(GLOBAL_MANAGEMENT_POLICY_ID)
    );
    assert_eq!(
        a.acl().token_by_secret("anonymous").map(|t| t.accessor_id.as_str()),
        Some(ANONYMOUS_TOKEN_ACCESSOR_ID)
    );
}

#[test]
fn validation_and_state_rules_use_consuls_texts() {
    let mut s = seeded();
    let bad = policy("33333333-3333-3333-3333-333333333333", "bad name", "");
    let m = rejected(run(&mut s, 4, AclCommand::PolicySet { policy: Box::new(bad), update: false }));
    assert_eq!(m, "Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed");
    let dup = policy("33333333-3333-3333-3333-333333333333", "web-read", "");
    let m = rejected(run(&mut s, 4, AclCommand::PolicySet { policy: Box::new(dup), update: false }));
    assert_eq!(m, "Invalid Policy: A Policy with Name \"web-read\" already exists");
    let t = token("44444444-4444-4444-4444-444444444444", "bbbbbbbb-1111-1111-1111-111111111111", "x");
    let m = rejected(run(&mut s, 4, AclCommand::TokenSet { token: Box::new(t), update: false }));
    assert_eq!(m, "No such ACL policy with name \"x\"");
    let t = token("00000000-0000-0000-0000-000000000009", "bbbbbbbb-1111-1111-1111-111111111111", "web-read");
    let m = rejected(run(&mut s, 4, AclCommand::TokenSet { token: Box::new(t), update: false }));
    assert!(m.contains("reserved"), "{m}");
    let mut t =
        token("44444444-4444-4444-4444-444444444444", "bbbbbbbb-1111-1111-1111-111111111111", "web-read");
    t.expiration_time_ms = Some(t.create_time_ms + 30_000);
    let m = rejected(run(&mut s, 4, AclCommand::TokenSet { token: Box::new(t.clone()), update: false }));
    assert_eq!(m, "ExpirationTTL cannot be less than 1m0s");
    t.expiration_time_ms = Some(t.create_time_ms + 25 * 3_600_000);
    let m = rejected(run(&mut s, 4, AclCommand::TokenSet { token: Box::new(t), update: false }));
    assert_eq!(m, "ExpirationTTL cannot be more than 24h0m0s");
    let m = rejected(run(&mut s, 4, AclCommand::TokenDelete(ANONYMOUS_TOKEN_ACCESSOR_ID.into())));
    assert_eq!(m, "Delete operation not permitted on the anonymous token");
    let m = rejected(run(&mut s, 4, AclCommand::PolicyDelete(GLOBAL_MANAGEMENT_POLICY_ID.into())));
    assert!(m.starts_with("Delete operation not permitted"), "{m}");
    let mut gm = (**s.acl().policy(GLOBAL_MANAGEMENT_POLICY_ID).expect("gm")).clone();
    gm.rules = "acl = \"read\"".into();
    let m = rejected(run(&mut s, 4, AclCommand::PolicySet { policy: Box::new(gm.clone()), update: true }));
    assert!(m.starts_with("Changing the Rules for the builtin global-management policy"), "{m}");
    gm.rules = s.acl().policy(GLOBAL_MANAGEMENT_POLICY_ID).expect("gm").rules.clone();
    gm.name = "root".into();
    assert_eq!(
        run(&mut s, 4, AclCommand::PolicySet { policy: Box::new(gm), update: true }),
        CommandResponse::Applied
    );
    assert_eq!(s.acl().index(), 4, "an applied write moves the ACL index; rejections do not");
}

#[test]
fn bootstrap_once_then_only_with_the_reset_index() {
    let mut s = seeded();
    let boot = |n: u8| Box::new(management_token(format!("cccccccc-1111-1111-1111-11111111111{n}"), "b", 1));
    assert_eq!(
        run(&mut s, 10, AclCommand::Bootstrap { token: boot(1), reset_index: None }),
        CommandResponse::Applied
    );
    assert_eq!(s.acl().bootstrap_index(), Some(10));
    let m = rejected(run(&mut s, 11, AclCommand::Bootstrap { token: boot(2), reset_index: None }));
    assert_eq!(m, "ACL bootstrap no longer allowed (reset index: 10)");
    let m = rejected(run(&mut s, 11, AclCommand::Bootstrap { token: boot(2), reset_index: Some(9) }));
    assert_eq!(m, "Invalid bootstrap reset index (specified 9, reset index: 10)");
    assert_eq!(
        run(&mut s, 12, AclCommand::Bootstrap { token: boot(3), reset_index: Some(10) }),
        CommandResponse::Applied
    );
    assert_eq!(s.acl().bootstrap_index(), Some(12));
}

#[test]
fn acl_state_survives_dump_codec_and_restore() {
    let mut s = seeded();
    let role = AclRole {
        id: "55555555-5555-5555-5555-555555555555".into(),
        name: "r".into(),
        description: String::new(),
        policies: vec![AclLink { id: P1.into(), name: String::new() }],
        service_identities: vec![ServiceIdentity { service_name: "db".into(), datacenters: Vec::new() }],
        node_identities: Vec::new(),
        create_index: 0,
        modify_index: 0,
    };
    assert_eq!(
        run(&mut s, 5, AclCommand::RoleSet { role: Box::new(role), update: false }),
        CommandResponse::Applied
    );
    let bytes = Format::Snapshot.encode(&s.dump()).expect("encode");
    let back = CatalogState::from_dump(Format::Snapshot.decode(&bytes).expect("decode"));
    assert_eq!(back, s);
    let mut restored = CatalogState::default();
    let mut changes = Vec::new();
    apply(&mut restored, 20, &Command::Restore(Box::new(s.dump())), &mut changes);
    assert!(changes.contains(&crate::catalog::Change::Acl));
    assert_eq!(restored.acl().token_by_secret(S1).map(|t| t.accessor_id.as_str()), Some(T1));
    assert_eq!(restored.acl().index(), 20);
    assert!(!format!("{:?}", restored.acl().token(T1)).contains(S1), "Debug redacts SecretIDs");
}

fn resolver(state: CatalogState, default: Option<&str>) -> AclResolver {
    let handle = Arc::new(SnapshotHandle::new(CatalogSnapshot { index: 3, catalog: state }));
    let mut config = AclConfig::disabled("dc1");
    config.enabled = true;
    config.default_policy = DefaultPolicy::Deny;
    config.tokens.default = default.map(str::to_owned);
    config.tokens.agent_master = Some("agent-master-secret".into());
    AclResolver::load(handle, &config, "n1", "dc1", std::path::Path::new("/nonexistent")).expect("resolver")
}

#[test]
fn resolution_follows_consuls_precedence() {
    let r = resolver(seeded(), None);
    assert!(r.enabled());
    let web = r.resolve(Some(S1)).expect("token");
    assert!(web.service_read("web") && !web.service_read("db") && !web.acl_read());
    let anon = r.resolve(None).expect("anonymous");
    assert!(!anon.service_read("web"), "anonymous has no policies under deny");
    assert!(!r.resolve(Some("")).expect("anonymous").service_read("web"));
    assert_eq!(r.resolve(Some("00000000-1111-2222-3333-444444444444")).err(), Some(ResolveError::NotFound));
    for root in ["allow", "deny", "manage"] {
        assert_eq!(r.resolve(Some(root)).err(), Some(ResolveError::RootName));
    }
    let am = r.resolve(Some("agent-master-secret")).expect("agent master");
    assert!(am.agent_write("n1") && !am.agent_write("n2") && am.node_read("x") && !am.key_read("k"));
    r.set(AgentToken::Default, Some(S1.into())).expect("set");
    assert!(r.resolve(None).expect("default").service_read("web"));
    let r = resolver(seeded(), Some(S1));
    assert!(r.resolve(None).expect("configured default").service_read("web"));
    let r = resolver(seeded(), Some("gone"));
    assert_eq!(r.resolve(None).err(), Some(ResolveError::NotFound), "an unknown default token is NotFound");
}

#[test]
fn cache_is_dropped_by_any_acl_write_and_expiry_is_rechecked() {
    let mut s = seeded();
    let handle = Arc::new(SnapshotHandle::new(CatalogSnapshot { index: 3, catalog: s.clone() }));
    let mut config = AclConfig::disabled("dc1");
    config.default_policy = DefaultPolicy::Deny;
    let r = AclResolver::load(handle.clone(), &config, "n1", "dc1", std::path::Path::new("/nonexistent"))
        .expect("r");
    let first = r.resolve(Some(S1)).expect("token");
    assert!(Arc::ptr_eq(&first, &r.resolve(Some(S1)).expect("cached")), "second resolve is a cache hit");
    assert_eq!(run(&mut s, 4, AclCommand::TokenDelete(T1.into())), CommandResponse::Applied);
    handle.publish(CatalogSnapshot { index: 4, catalog: s.clone() });
    assert_eq!(r.resolve(Some(S1)).err(), Some(ResolveError::NotFound), "a deleted token stops at once");
    let mut t = token(T1, S1, "web-read");
    t.create_time_ms = unix_ms() - 3_600_000;
    t.expiration_time_ms = Some(unix_ms() - 1);
    assert_eq!(
        run(&mut s, 5, AclCommand::TokenSet { token: Box::new(t), update: false }),
        CommandResponse::Applied
    );
    handle.publish(CatalogSnapshot { index: 5, catalog: s });
    assert_eq!(r.resolve(Some(S1)).err(), Some(ResolveError::NotFound), "an expired token is NotFound");
}

#[test]
fn agent_tokens_persist_to_acl_tokens_json_and_win_over_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = Arc::new(SnapshotHandle::new(CatalogSnapshot { index: 3, catalog: seeded() }));
    let mut config = AclConfig::disabled("dc1");
    config.default_policy = DefaultPolicy::Deny;
    config.enable_token_persistence = true;
    config.tokens.default = Some("configured".into());
    let r = AclResolver::load(handle.clone(), &config, "n1", "dc1", dir.path()).expect("resolver");
    assert_eq!(r.resolve(None).err(), Some(ResolveError::NotFound), "the configured default is unknown");
    r.set(AgentToken::Default, Some(S1.into())).expect("set");
    r.set(AgentToken::AgentMaster, Some("am".into())).expect("set");
    let path = dir.path().join("acl-tokens.json");
    let text = std::fs::read_to_string(&path).expect("file");
    assert!(text.contains("\"default\"") && text.contains("\"agent_master\""), "{text}");
    let mode = std::fs::metadata(&path).expect("meta").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    let again = AclResolver::load(handle.clone(), &config, "n1", "dc1", dir.path()).expect("reload");
    assert!(again.resolve(None).expect("persisted default").service_read("web"));
    assert!(again.resolve(Some("am")).expect("agent master").agent_write("n1"));
    std::fs::write(&path, "{not json").expect("write");
    assert!(AclResolver::load(handle, &config, "n1", "dc1", dir.path()).is_err(), "a bad file refuses");
}

#[test]
fn forwarded_writes_carry_the_callers_then_the_agent_then_the_default_token() {
    use crate::consensus::{Authority, Credentials};
    let r = resolver(seeded(), None);
    let secret = |who| r.secret(who).expose().to_owned();
    assert_eq!(secret(Authority::Caller(Some(S1))), S1);
    assert_eq!(secret(Authority::Caller(None)), ANONYMOUS_TOKEN_SECRET);
    assert_eq!(secret(Authority::Caller(Some(""))), ANONYMOUS_TOKEN_SECRET);
    assert_eq!(secret(Authority::Agent), ANONYMOUS_TOKEN_SECRET);
    r.set(AgentToken::Default, Some("default-secret".into())).expect("set");
    assert_eq!(secret(Authority::Caller(None)), "default-secret");
    assert_eq!(secret(Authority::Agent), "default-secret", "the agent token falls back to the default");
    r.set(AgentToken::Agent, Some("agent-secret".into())).expect("set");
    assert_eq!(secret(Authority::Agent), "agent-secret");
    assert_eq!(secret(Authority::Caller(None)), "default-secret");
    assert!(!format!("{:?}", r.secret(Authority::Agent)).contains("agent-secret"), "Debug hides it");
}
