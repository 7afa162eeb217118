//! Tests: the pure anti-entropy diff (`plan`) through a `check` helper and a proptest (applying
//! a plan brings any catalog in step, and a second plan is empty); the local state on a live
//! single-node Raft (immediate sync, persistence across a restart, rejection undo, no write
//! when in sync).

use std::sync::Arc;

use proptest::prelude::*;

use super::plan::{describe, plan};
use super::{Entries, LocalCheck, LocalService, LocalState, Source};
use crate::catalog::apply::apply;
use crate::catalog::{CatalogState, Check, HealthStatus, Node, Service};
use crate::catalog::{Command, CommandResponse, Registration};

const NODE: &str = "agent1";

fn node() -> Node {
    Node::new(NODE, "10.0.0.1", "dc1")
}

fn own() -> Registration {
    Registration {
        node: node(),
        skip_node_update: false,
        service: Some(Service::new(NODE, "consul", "consul", 8300)),
        checks: vec![Check::new(NODE, "serfHealth", "", HealthStatus::Passing)],
    }
}

fn svc(id: &str, tags: &[&str]) -> Service {
    Service::new(NODE, id, "web", 80).with_tags(tags)
}

fn chk(id: &str, service_id: &str, status: HealthStatus) -> Check {
    Check { check_type: "ttl".into(), ..Check::new(NODE, id, service_id, status) }
}

fn local(services: &[Service], checks: &[Check]) -> Entries {
    let mut e = Entries::default();
    for s in services {
        let ls = LocalService { service: s.clone(), source: Source::Api, in_sync: false };
        e.services.insert(crate::catalog::key(&s.id), ls);
    }
    for c in checks {
        let lc = LocalCheck { check: c.clone(), source: Source::Api, in_sync: false };
        e.checks.insert(crate::catalog::key(&c.check_id), lc);
    }
    e
}

/// A catalog built by applying `cmds`.
fn catalog(cmds: &[Command]) -> CatalogState {
    let mut state = CatalogState::default();
    for (i, cmd) in cmds.iter().enumerate() {
        let r = apply(&mut state, i as u64 + 1, cmd, &mut Vec::new());
        assert_eq!(r, CommandResponse::Applied, "{cmd:?}");
    }
    state
}

fn reg(service: Option<Service>, checks: Vec<Check>) -> Command {
    Command::Register(Registration { node: node(), skip_node_update: false, service, checks })
}

/// The plan for `local` against `cat`, one `describe` line per command.
fn check(local: &Entries, cat: &CatalogState, want: &[&str]) {
    let got: Vec<String> = plan(&own(), local, cat).iter().map(describe).collect();
    assert_eq!(got, want);
}

#[test]
fn in_sync_plans_nothing() {
    let cat = catalog(&[
        Command::Register(own()),
        reg(Some(svc("web1", &["a"])), vec![chk("c1", "web1", HealthStatus::Passing)]),
        reg(None, vec![chk("n1", "", HealthStatus::Warning)]),
    ]);
    check(
        &local(
            &[svc("web1", &["a"])],
            &[chk("c1", "web1", HealthStatus::Passing), chk("n1", "", HealthStatus::Warning)],
        ),
        &cat,
        &[],
    );
}

#[test]
fn missing_node_is_registered_first_then_the_services() {
    let cat = catalog(&[]);
    check(
        &local(
            &[svc("web1", &[])],
            &[chk("c1", "web1", HealthStatus::Passing), chk("n1", "", HealthStatus::Passing)],
        ),
        &cat,
        &[
            "registered node agent1, service consul, check serfHealth",
            "registered service web1, check c1",
            "registered check n1",
        ],
    );
}

#[test]
fn missing_consul_service_or_serf_check_is_added_back_alone() {
    let cat = catalog(&[reg(None, vec![])]);
    check(&local(&[], &[]), &cat, &["registered service consul, check serfHealth"]);
}

#[test]
fn differing_service_is_registered_again() {
    let cat = catalog(&[Command::Register(own()), reg(Some(svc("web1", &["old"])), vec![])]);
    check(&local(&[svc("web1", &["new"])], &[]), &cat, &["registered service web1"]);
}

#[test]
fn enable_tag_override_keeps_the_catalog_tags() {
    let mut s = svc("web1", &["mine"]);
    s.enable_tag_override = true;
    let mut theirs = s.clone();
    theirs.tags = vec!["theirs".into()];
    let cat = catalog(&[Command::Register(own()), reg(Some(theirs), vec![])]);
    check(&local(&[s.clone()], &[]), &cat, &[]);
    // Another difference re-registers it, with the catalog's tags.
    let mut moved = s;
    moved.port = 81;
    let cmds = plan(&own(), &local(&[moved], &[]), &cat);
    let Some(Command::Register(r)) = cmds.first() else { panic!("{cmds:?}") };
    assert_eq!(r.service.as_ref().map(|s| s.tags.clone()), Some(vec!["theirs".to_owned()]));
}

#[test]
fn status_or_output_difference_is_an_update() {
    let cat = catalog(&[Command::Register(own()), reg(None, vec![chk("n1", "", HealthStatus::Critical)])]);
    check(&local(&[], &[chk("n1", "", HealthStatus::Passing)]), &cat, &["set check n1 to passing"]);
    let mut out = chk("n1", "", HealthStatus::Critical);
    out.output = "new".into();
    check(&local(&[], &[out]), &cat, &["set check n1 to critical"]);
}

#[test]
fn check_definition_difference_is_a_registration() {
    let cat = catalog(&[Command::Register(own()), reg(None, vec![chk("n1", "", HealthStatus::Passing)])]);
    let mut c = chk("n1", "", HealthStatus::Passing);
    c.notes = "changed".into();
    check(&local(&[], &[c]), &cat, &["registered check n1"]);
}

#[test]
fn derived_fields_do_not_count_as_differences() {
    // The state machine fills a check's service name and tags, and the node's spelling.
    let cat = catalog(&[
        Command::Register(own()),
        reg(Some(svc("web1", &["t"])), vec![chk("c1", "WEB1", HealthStatus::Passing)]),
    ]);
    let mut c = chk("c1", "web1", HealthStatus::Passing);
    c.node = "AGENT1".into();
    check(&local(&[svc("web1", &["t"])], &[c]), &cat, &[]);
}

#[test]
fn records_the_agent_does_not_own_are_deregistered_except_consul_and_serf_health() {
    let cat = catalog(&[
        Command::Register(own()),
        reg(Some(svc("web1", &[])), vec![chk("c1", "web1", HealthStatus::Passing)]),
        reg(Some(svc("db", &[])), vec![chk("c2", "db", HealthStatus::Passing)]),
        reg(None, vec![chk("n1", "", HealthStatus::Passing)]),
    ]);
    check(
        &local(&[svc("web1", &[])], &[]),
        &cat,
        // c2 goes with its service db.
        &["deregistered service db", "deregistered check c1", "deregistered check n1"],
    );
}

#[test]
fn a_check_on_a_service_the_agent_does_not_own_is_left_out() {
    // Registered over the agent API on a catalog-only service, which anti-entropy removes.
    let cat = catalog(&[Command::Register(own()), reg(Some(svc("theirs", &[])), vec![])]);
    check(&local(&[], &[chk("c1", "theirs", HealthStatus::Passing)]), &cat, &["deregistered service theirs"]);
}

#[test]
fn other_nodes_are_left_alone() {
    let other = Node::new("other", "10.0.0.2", "dc1");
    let cat = catalog(&[
        Command::Register(own()),
        Command::Register(Registration {
            node: other,
            skip_node_update: false,
            service: Some(Service::new("other", "x", "x", 1)),
            checks: vec![Check::new("other", "y", "", HealthStatus::Critical)],
        }),
    ]);
    check(&local(&[], &[]), &cat, &[]);
}

fn status() -> impl Strategy<Value = HealthStatus> {
    prop_oneof![Just(HealthStatus::Passing), Just(HealthStatus::Warning), Just(HealthStatus::Critical)]
}

/// A small world: services s0..s3 (tags vary), checks c0..c5 on the node or on a service.
fn world() -> impl Strategy<Value = (Vec<Service>, Vec<Check>)> {
    let services = proptest::collection::btree_map(0..4u8, 0..3u8, 0..4).prop_map(|m| {
        m.into_iter().map(|(i, t)| svc(&format!("s{i}"), &[&format!("t{t}")])).collect::<Vec<_>>()
    });
    (services, proptest::collection::btree_map(0..6u8, (0..5u8, status(), 0..2u8), 0..6)).prop_map(
        |(services, checks)| {
            let checks = checks
                .into_iter()
                .map(|(i, (on, st, out))| {
                    let sid = services.get(on as usize).map(|s| s.id.clone()).unwrap_or_default();
                    Check { output: format!("o{out}"), ..chk(&format!("c{i}"), &sid, st) }
                })
                .collect();
            (services, checks)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever the catalog holds, applying the plan brings it in step: a second plan is empty
    /// and the node's records are exactly the local ones (plus consul and serfHealth).
    #[test]
    fn applying_the_plan_converges(
        (ls, lc) in world(),
        (cs, cc) in world(),
        node_present in any::<bool>(),
    ) {
        let mut cmds = Vec::new();
        if node_present {
            cmds.push(Command::Register(own()));
            for s in &cs {
                cmds.push(reg(Some(s.clone()), vec![]));
            }
            for c in &cc {
                cmds.push(reg(None, vec![c.clone()]));
            }
        }
        let mut cat = catalog(&cmds);
        let l = local(&ls, &lc);
        let mut index = cmds.len() as u64;
        for cmd in plan(&own(), &l, &cat) {
            index += 1;
            let r = apply(&mut cat, index, &cmd, &mut Vec::new());
            prop_assert_eq!(r, CommandResponse::Applied, "{:?}", cmd);
        }
        prop_assert!(plan(&own(), &l, &cat).is_empty());
        let mut ids: Vec<String> = cat.node_services(NODE).map(|s| s.id.clone()).collect();
        ids.sort();
        let mut want: Vec<String> = ls.iter().map(|s| s.id.clone()).chain(["consul".to_owned()]).collect();
        want.sort();
        prop_assert_eq!(ids, want);
        for c in &lc {
            let got = cat.check(NODE, &c.check_id).expect("local check in the catalog");
            prop_assert_eq!((got.status, &got.output), (c.status, &c.output));
        }
        prop_assert_eq!(cat.node_checks(NODE).count(), lc.len() + 1);
    }
}

// ----- the local state on a live Raft ---------------------------------------------------

async fn live(dir: &std::path::Path) -> (Arc<LocalState>, crate::consensus::Consensus, tempfile::TempDir) {
    let (raft, raft_dir) = crate::http::tests::test_raft().await;
    raft.propose(Command::Register(own())).await.expect("own node registered");
    let local = LocalState::new(raft.clone(), own(), Some(dir), std::time::Duration::from_secs(60));
    (local, raft, raft_dir)
}

fn service_reg(id: &str, checks: Vec<Check>) -> Registration {
    Registration { node: node(), skip_node_update: false, service: Some(svc(id, &[])), checks }
}

#[tokio::test]
async fn api_registrations_persist_and_load_back() {
    let data = tempfile::tempdir().expect("tempdir");
    let (local, raft, _r) = live(data.path()).await;
    local.load(&raft.snapshots().load().catalog).expect("load");
    local
        .register(service_reg("web1", vec![chk("c1", "web1", HealthStatus::Passing)]), Source::Api)
        .await
        .expect("registered");
    local.register(service_reg("cfg", vec![]), Source::Config).await.expect("registered");
    assert!(raft.snapshots().load().catalog.service(NODE, "web1").is_some());
    assert!(local.snapshot().services.values().all(|s| s.in_sync));

    // A new local state on the same data dir (a restart) loads the API records only.
    let (again, raft2, _r2) = live(data.path()).await;
    assert_eq!(again.load(&raft2.snapshots().load().catalog).expect("load"), 2);
    assert!(again.service("web1").is_some());
    assert!(again.check("c1").is_some());
    assert!(again.service("cfg").is_none());
    // The other Raft lost web1: the first full sync puts it back, and a second proposes nothing.
    again.replace_config(&mut []);
    assert_eq!(again.sync_full().await.expect("sync"), 1);
    assert!(raft2.snapshots().load().catalog.service(NODE, "web1").is_some());
    let index = raft2.applied_index();
    assert_eq!(again.sync_full().await.expect("sync"), 0);
    assert_eq!(raft2.applied_index(), index);

    // Deregistering removes the service, its checks and their files.
    again.deregister_service("WEB1").await.expect("deregistered");
    assert!(again.check("c1").is_none());
    let (third, raft3, _r3) = live(data.path()).await;
    assert_eq!(third.load(&raft3.snapshots().load().catalog).expect("load"), 0);
}

#[tokio::test]
async fn a_rejected_registration_is_undone() {
    let data = tempfile::tempdir().expect("tempdir");
    let (local, _raft, _r) = live(data.path()).await;
    // A check on a service that exists nowhere: the state machine rejects it.
    let bad = Registration {
        node: node(),
        skip_node_update: false,
        service: None,
        checks: vec![chk("c9", "nope", HealthStatus::Passing)],
    };
    assert!(local.register(bad, Source::Api).await.is_err());
    assert!(local.check("c9").is_none());
    assert!(std::fs::read_dir(data.path().join("checks")).map_or(true, |mut d| d.next().is_none()));
}

#[tokio::test]
async fn check_updates_land_in_the_local_state_and_the_catalog() {
    let data = tempfile::tempdir().expect("tempdir");
    let (local, raft, _r) = live(data.path()).await;
    local
        .register(service_reg("web1", vec![chk("c1", "web1", HealthStatus::Critical)]), Source::Api)
        .await
        .expect("registered");
    local.update_check("c1", HealthStatus::Passing, "fine".into()).await.expect("updated");
    assert_eq!(local.check("c1").map(|c| c.status), Some(HealthStatus::Passing));
    let cat = raft.snapshots().load_full();
    assert_eq!(cat.catalog.check(NODE, "c1").map(|c| c.status), Some(HealthStatus::Passing));
    // Re-registering keeps the local status rather than the definition's initial one.
    local
        .register(service_reg("web1", vec![chk("c1", "web1", HealthStatus::Critical)]), Source::Api)
        .await
        .expect("registered");
    assert_eq!(local.check("c1").map(|c| c.status), Some(HealthStatus::Passing));
    assert_eq!(local.sync_full().await.expect("sync"), 0);
}

#[tokio::test]
async fn a_new_data_dir_adopts_the_node_records_from_the_catalog() {
    let data = tempfile::tempdir().expect("tempdir");
    let (local, raft, _r) = live(data.path()).await;
    raft.propose(reg(Some(svc("old", &[])), vec![chk("c1", "old", HealthStatus::Warning)]))
        .await
        .expect("proposed");
    assert_eq!(local.load(&raft.snapshots().load().catalog).expect("load"), 2);
    assert_eq!(local.check("c1").map(|c| c.status), Some(HealthStatus::Warning));
    assert!(local.service("consul").is_none());
    assert!(local.check("serfHealth").is_none());
    local.replace_config(&mut []);
    assert_eq!(local.sync_full().await.expect("sync"), 0);
}

#[tokio::test]
async fn config_records_dropped_from_the_files_are_deregistered_by_the_next_sync() {
    let data = tempfile::tempdir().expect("tempdir");
    let (local, raft, _r) = live(data.path()).await;
    local.load(&raft.snapshots().load().catalog).expect("load");
    let mut regs =
        vec![service_reg("a", vec![chk("ca", "a", HealthStatus::Passing)]), service_reg("b", vec![])];
    local.replace_config(&mut regs);
    assert_eq!(local.sync_full().await.expect("sync"), 2);
    let mut regs = vec![service_reg("b", vec![])];
    local.replace_config(&mut regs);
    assert!(local.service("a").is_none() && local.check("ca").is_none());
    assert_eq!(local.sync_full().await.expect("sync"), 1);
    assert!(raft.snapshots().load().catalog.service(NODE, "a").is_none());
}
