//! TTL timer tests on a live single-node Raft with short real TTLs (openraft runs its own
//! timers, so time is not paused here).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ttl::{TtlChecks, TtlError, truncate_output};
use crate::agent::TtlSpec;
use crate::catalog::{Check, CheckDefinition, HealthStatus, Node};
use crate::catalog::{Command, Registration};
use crate::snapshot::SnapshotHandle;

fn check(id: &str, ttl_ns: u64, status: HealthStatus, output: &str) -> Check {
    Check {
        node: "agent1".into(),
        check_id: id.into(),
        name: id.into(),
        status,
        notes: String::new(),
        output: output.into(),
        service_id: String::new(),
        service_name: String::new(),
        service_tags: Vec::new(),
        check_type: if ttl_ns > 0 { "ttl".into() } else { "http".into() },
        definition: CheckDefinition { ttl_ns, ..CheckDefinition::default() },
        create_index: 0,
        modify_index: 0,
    }
}

/// A live single-node Raft holding `checks` on node agent1, and TTL timers on it.
async fn setup(checks: Vec<Check>) -> (Arc<TtlChecks>, Arc<SnapshotHandle>, tempfile::TempDir) {
    let (raft, dir) = crate::http::tests::test_raft().await;
    let node = Node::new("agent1", "10.0.0.1", "dc1");
    let cmd = Command::Register(Registration { node, skip_node_update: false, service: None, checks });
    raft.propose(cmd).await.expect("proposed");
    let snaps = raft.snapshots();
    (TtlChecks::new(local_state(raft), snaps.clone(), "agent1".into()), snaps, dir)
}

/// An in-memory local state for node agent1 (nothing persisted).
fn local_state(raft: crate::consensus::Consensus) -> Arc<crate::local::LocalState> {
    let own = Registration {
        node: Node::new("agent1", "10.0.0.1", "dc1"),
        skip_node_update: false,
        service: None,
        checks: Vec::new(),
    };
    crate::local::LocalState::new(raft, own, None, crate::local::DEFAULT_INTERVAL)
}

fn status_of(snaps: &SnapshotHandle, id: &str) -> (HealthStatus, String) {
    let s = snaps.load();
    let c = s.catalog.check("agent1", id).expect("check exists");
    (c.status, c.output.clone())
}

fn check_update_err(r: Result<(), TtlError>, want: &str) {
    match r {
        Err(e) => assert_eq!(e.to_string(), want),
        Ok(()) => panic!("expected {want}"),
    }
}

#[tokio::test]
async fn update_validates_and_proposes_only_changes() {
    let (t, snaps, _dir) = setup(vec![
        check("ttl1", 10_000_000_000, HealthStatus::Passing, "ok"),
        check("web", 0, HealthStatus::Passing, ""),
    ])
    .await;
    check_update_err(
        t.update("nope", HealthStatus::Passing, String::new()).await,
        "Unknown check ID \"nope\". Ensure that the check ID is passed, not the check name.",
    );
    check_update_err(
        t.update("web", HealthStatus::Passing, String::new()).await,
        "CheckID \"web\" does not have associated TTL",
    );
    // Unchanged status and output: no proposal (the index stays), timer reset.
    let before = snaps.load().index;
    let now = Instant::now();
    t.update("TTL1", HealthStatus::Passing, "ok".into()).await.expect("no proposal needed");
    assert_eq!(snaps.load().index, before);
    let d = t.deadline("ttl1").expect("armed");
    assert!(
        d >= now + Duration::from_secs(10)
            && d < Instant::now() + Duration::from_secs(10) + Duration::from_millis(1)
    );
    // Changed: proposed and applied.
    t.update("ttl1", HealthStatus::Warning, "meh".into()).await.expect("applied");
    assert_eq!(status_of(&snaps, "ttl1"), (HealthStatus::Warning, "meh".to_owned()));
    assert!(snaps.load().index > before);
}

async fn wait_for_status(snaps: &SnapshotHandle, id: &str, want: (HealthStatus, &str)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = status_of(snaps, id);
        if got.0 == want.0 && got.1 == want.1 {
            return;
        }
        assert!(Instant::now() < deadline, "check {id} is {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn run_rearms_from_snapshot_and_fires_expiry() {
    let (t, snaps, _dir) = setup(vec![check("ttl1", 300_000_000, HealthStatus::Passing, "ok")]).await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(t.clone().run(shutdown.clone()));
    // Re-armed from the snapshot (no update ever arrived), then expired.
    wait_for_status(&snaps, "ttl1", (HealthStatus::Critical, "TTL expired")).await;
    // An update revives it; the next expiry quotes the last output.
    t.update("ttl1", HealthStatus::Passing, "alive".into()).await.expect("applied");
    assert_eq!(status_of(&snaps, "ttl1").0, HealthStatus::Passing);
    wait_for_status(
        &snaps,
        "ttl1",
        (HealthStatus::Critical, "TTL expired (last output before timeout follows): alive"),
    )
    .await;
    shutdown.cancel();
    task.await.expect("join");
}

#[tokio::test]
async fn arm_starts_a_full_ttl() {
    let (t, _snaps, _dir) = setup(vec![]).await;
    let now = Instant::now();
    t.arm(&TtlSpec { check_id: "x".into(), ttl: Duration::from_secs(30) });
    let d = t.deadline("X").expect("armed");
    assert!(d >= now + Duration::from_secs(30));
}

#[test]
fn output_truncation() {
    assert_eq!(truncate_output("short".into()), "short");
    let long = "é".repeat(3000);
    let out = truncate_output(long);
    assert!(out.ends_with(" ... (captured 4096 of 6000 bytes)"), "{}", &out[out.len() - 40..]);
}

/// A live single-node Raft holding `check` on node agent1, and a check runner on it.
async fn runner_with(
    check: Check,
    config: crate::config::CheckConfig,
) -> (Arc<super::CheckRunner>, Arc<SnapshotHandle>, CancellationToken, tempfile::TempDir) {
    let (raft, dir) = crate::http::tests::test_raft().await;
    let node = Node::new("agent1", "10.0.0.1", "dc1");
    let cmd =
        Command::Register(Registration { node, skip_node_update: false, service: None, checks: vec![check] });
    raft.propose(cmd).await.expect("proposed");
    let snaps = raft.snapshots();
    let runner =
        super::CheckRunner::new(local_state(raft), snaps.clone(), "agent1".into(), config, Vec::new());
    let stop = CancellationToken::new();
    tokio::spawn(runner.clone().run(stop.clone()));
    (runner, snaps, stop, dir)
}

/// A script check whose output differs on every probe, every 100 ms.
fn changing_script() -> Check {
    Check {
        check_type: "script".into(),
        definition: CheckDefinition {
            interval_ns: 100_000_000,
            script_args: vec!["sh".into(), "-c".into(), "date +%s%N".into()],
            ..CheckDefinition::default()
        },
        ..check("s", 0, HealthStatus::Critical, "")
    }
}

#[tokio::test]
async fn output_only_changes_are_coalesced_per_update_interval() {
    let config = crate::config::CheckConfig {
        enable_script_checks: true,
        update_interval: Duration::from_millis(500),
        ..crate::config::CheckConfig::default()
    };
    let (runner, snaps, stop, _dir) = runner_with(changing_script(), config).await;
    wait_for_status_only(&snaps, "s", HealthStatus::Passing).await;
    let first = status_of(&snaps, "s").1;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (probes, updates) = (
        runner.stats().probes.load(std::sync::atomic::Ordering::Relaxed),
        runner.stats().updates.load(std::sync::atomic::Ordering::Relaxed),
    );
    stop.cancel();
    // ~16 probes, each with new output: one status change plus one deferred write per 500 ms.
    assert!(probes >= 8, "{probes} probes");
    assert!((2..=6).contains(&updates), "{updates} updates for {probes} probes");
    assert_ne!(status_of(&snaps, "s").1, first, "the deferred output was written");
}

#[tokio::test]
async fn without_update_interval_every_output_is_written_and_disabled_scripts_never_run() {
    let config = crate::config::CheckConfig {
        enable_script_checks: true,
        update_interval: Duration::ZERO,
        ..crate::config::CheckConfig::default()
    };
    let (runner, snaps, stop, _dir) = runner_with(changing_script(), config).await;
    wait_for_status_only(&snaps, "s", HealthStatus::Passing).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let probes = runner.stats().probes.load(std::sync::atomic::Ordering::Relaxed);
    let updates = runner.stats().updates.load(std::sync::atomic::Ordering::Relaxed);
    stop.cancel();
    assert!(updates + 1 >= probes && probes >= 3, "{updates} updates for {probes} probes");

    let (runner, snaps, stop, _dir) =
        runner_with(changing_script(), crate::config::CheckConfig::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runner.stats().probes.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(status_of(&snaps, "s"), (HealthStatus::Critical, String::new()));
    stop.cancel();
}

async fn wait_for_status_only(snaps: &SnapshotHandle, id: &str, want: HealthStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(snaps, id).0 != want {
        assert!(Instant::now() < deadline, "check {id} never became {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
