//! The write -> permission map: each command kind against tokens that have and lack the
//! permission Consul's endpoint checks.

use super::*;
use crate::acl::{DefaultPolicy, parse_rules};
use crate::catalog::apply::apply;
use crate::catalog::kv::SessionBehavior;
use crate::catalog::testing::{deregister, health_check, node, register, service, session, update_check};
use crate::catalog::{KvWrite, PreparedQuery, QueryService, QueryUpsert};

fn authz(rules: &str) -> Authorizer {
    let r = parse_rules(rules).expect("rules");
    Authorizer::new([&r], DefaultPolicy::Deny)
}

fn kv_set(key: &str) -> Command {
    Command::Kv { op: KvOp::Set(KvWrite { key: key.into(), ..KvWrite::default() }), now_ms: 1 }
}

/// A catalog with node n1 running web (with check web-chk) and a node check, and session s1 on n1.
fn catalog() -> CatalogState {
    let mut cat = CatalogState::default();
    let reg = register(
        node("n1", "10.0.0.1"),
        Some(service("n1", "web-1", "web", 80, &[])),
        vec![
            health_check("n1", "web-chk", "web-1", crate::catalog::HealthStatus::Passing),
            health_check("n1", "node-chk", "", crate::catalog::HealthStatus::Passing),
        ],
    );
    assert_eq!(apply(&mut cat, 1, &reg, &mut Vec::new()), crate::catalog::CommandResponse::Applied);
    let s = Command::SessionCreate { session: session("s1", "n1", &[], SessionBehavior::Release), now_ms: 1 };
    apply(&mut cat, 2, &s, &mut Vec::new());
    cat
}

#[test]
fn kv_writes_need_key_write_and_check_verbs_key_read() {
    let cat = CatalogState::default();
    let ro = authz(r#"key_prefix "app/" { policy = "read" }"#);
    let rw = authz(r#"key_prefix "app/" { policy = "write" }"#);
    assert_eq!(authorize(&ro, &cat, &kv_set("app/a")), Err(Refusal::Denied));
    assert_eq!(authorize(&rw, &cat, &kv_set("app/a")), Ok(()));
    assert_eq!(authorize(&rw, &cat, &kv_set("other")), Err(Refusal::Denied));
    let check = |a: &Authorizer, op| authorize(a, &cat, &Command::Kv { op, now_ms: 1 });
    assert_eq!(check(&ro, KvOp::CheckIndex("app/x".into(), 1)), Ok(()));
    assert_eq!(check(&ro, KvOp::CheckNotExists("app/x".into())), Err(Refusal::Denied));
    assert_eq!(check(&ro, KvOp::DeleteTree("app/".into())), Err(Refusal::Denied));
    assert_eq!(check(&rw, KvOp::DeleteTree("app/".into())), Ok(()));
}

#[test]
fn a_transaction_reports_each_refused_operation() {
    let ro = authz(r#"key_prefix "app/" { policy = "read" }"#);
    let ops = vec![
        TxnOp::Kv(KvOp::Get("app/a".into())),
        TxnOp::Kv(KvOp::Delete("app/a".into())),
        TxnOp::NodeGet("n1".into()),
        TxnOp::Kv(KvOp::Delete("other".into())),
    ];
    let r = authorize(&ro, &CatalogState::default(), &Command::Txn { ops, now_ms: 1 });
    let Err(Refusal::Txn(errors)) = r else { panic!("{r:?}") };
    assert_eq!(errors.iter().map(|e| e.op_index).collect::<Vec<_>>(), vec![1, 3]);
    assert!(errors.iter().all(|e| e.what == PERMISSION_DENIED));
}

#[test]
fn catalog_writes_need_node_and_service_write() {
    let cat = catalog();
    let agent = authz(r#"node_prefix "" { policy = "write" } service_prefix "" { policy = "write" }"#);
    let web_only = authz(r#"service "web" { policy = "write" }"#);
    let new_node = register(node("n2", "10.0.0.2"), None, vec![]);
    assert_eq!(authorize(&agent, &cat, &new_node), Ok(()));
    assert_eq!(authorize(&web_only, &cat, &new_node), Err(Refusal::Denied));
    // The unchanged node with a web instance: service:write on web is enough.
    let web = register(node("n1", "10.0.0.1"), Some(service("n1", "web-2", "web", 81, &[])), vec![]);
    assert_eq!(authorize(&web_only, &cat, &web), Ok(()));
    // Check results: a service check needs service:write, a node check node:write.
    let st = crate::catalog::HealthStatus::Critical;
    assert_eq!(authorize(&web_only, &cat, &update_check("n1", "web-chk", st, "")), Ok(()));
    assert_eq!(authorize(&web_only, &cat, &update_check("n1", "node-chk", st, "")), Err(Refusal::Denied));
    assert_eq!(authorize(&agent, &cat, &update_check("n1", "node-chk", st, "")), Ok(()));
    // Deregistration: a service by its name; an unknown one is Consul's 500.
    assert_eq!(authorize(&web_only, &cat, &deregister("n1", Some("web-1"), None)), Ok(()));
    assert_eq!(authorize(&web_only, &cat, &deregister("n1", None, None)), Err(Refusal::Denied));
    assert_eq!(
        authorize(&web_only, &cat, &deregister("n1", Some("nope"), None)),
        Err(Refusal::Unknown("Unknown service 'nope'".into()))
    );
    // A batch needs every command's permission.
    let batch = Command::Batch(vec![web, new_node]);
    assert_eq!(authorize(&web_only, &cat, &batch), Err(Refusal::Denied));
    assert_eq!(authorize(&agent, &cat, &batch), Ok(()));
}

#[test]
fn sessions_queries_acl_and_restores() {
    let cat = catalog();
    let sess = authz(r#"session_prefix "n1" { policy = "write" }"#);
    let none = authz("");
    let destroy = Command::SessionDestroy { id: "s1".into(), now_ms: 1 };
    assert_eq!(authorize(&sess, &cat, &destroy), Ok(()));
    assert_eq!(authorize(&none, &cat, &destroy), Err(Refusal::Denied));
    // An unknown session is a no-op write.
    assert_eq!(authorize(&none, &cat, &Command::SessionDestroy { id: "x".into(), now_ms: 1 }), Ok(()));
    let create =
        Command::SessionCreate { session: session("s2", "n2", &[], SessionBehavior::Release), now_ms: 1 };
    assert_eq!(authorize(&sess, &cat, &create), Err(Refusal::Denied));

    let mut q = PreparedQuery {
        id: "q1".into(),
        name: "api".into(),
        session: String::new(),
        token: String::new(),
        service: QueryService { service: "api".into(), ..Default::default() },
        dns_ttl: String::new(),
        create_index: 0,
        modify_index: 0,
    };
    let upsert = Command::QueryUpsert(QueryUpsert { query: q.clone(), update: false });
    assert_eq!(authorize(&none, &cat, &upsert), Err(Refusal::Denied));
    assert_eq!(authorize(&authz(r#"query "api" { policy = "write" }"#), &cat, &upsert), Ok(()));
    q.name.clear();
    assert_eq!(
        authorize(&none, &cat, &Command::QueryUpsert(QueryUpsert { query: q, update: false })),
        Ok(())
    );

    let mgmt = Authorizer::manage_all();
    let acl_write = Command::Acl(AclCommand::TokenDelete("t".into()));
    assert_eq!(authorize(&none, &cat, &acl_write), Err(Refusal::Denied));
    assert_eq!(authorize(&mgmt, &cat, &acl_write), Ok(()));
    assert_eq!(authorize(&none, &cat, &Command::KvReap(5)), Err(Refusal::Denied));
    assert_eq!(authorize(&mgmt, &cat, &Command::Restore(Box::new(cat.dump()))), Ok(()));
}
