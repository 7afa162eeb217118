//! Threshold, output-limit, gRPC framing, alias and reaper logic, through small `check_*` helpers.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::probe::{grpc_request, grpc_response_status};
use super::reap::CriticalClock;
use super::runner::alias_status;
use super::status::{StatusHandler, Thresholds, cap, output_limit, tail};
use crate::catalog::apply::apply;
use crate::catalog::{CatalogState, Check, CheckDefinition, HealthStatus, Node, Service};
use crate::catalog::{Command, Registration};

use HealthStatus::{Critical as C, Passing as P, Warning as W};

/// Feeds `results` to a handler with thresholds (success_before_passing,
/// failures_before_warning, failures_before_critical) and compares what it reports.
fn check(t: (u32, u32, u32), results: &[HealthStatus], want: &[Option<HealthStatus>]) {
    let mut h = StatusHandler::new(Thresholds {
        success_before_passing: t.0,
        failures_before_warning: t.1,
        failures_before_critical: t.2,
    });
    let got: Vec<_> = results.iter().map(|r| h.observe(*r)).collect();
    assert_eq!(got, want, "thresholds {t:?}, results {results:?}");
}

#[test]
fn no_thresholds_report_every_result() {
    check((0, 0, 0), &[P, C, W, P], &[Some(P), Some(C), Some(W), Some(P)]);
}

#[test]
fn first_result_is_reported_at_once() {
    // Counters start at their thresholds (Consul's NewStatusHandler).
    check((3, 0, 3), &[P], &[Some(P)]);
    check((3, 0, 3), &[C], &[Some(C)]);
}

#[test]
fn success_before_passing_needs_consecutive_successes_after_a_failure() {
    check((2, 0, 0), &[C, P, P, P], &[Some(C), None, Some(P), Some(P)]);
    // A failure in between resets the count.
    check((2, 0, 0), &[C, P, C, P, P], &[Some(C), None, Some(C), None, Some(P)]);
    // Warning counts as a success and is reported as warning.
    check((2, 0, 0), &[C, W, W], &[Some(C), None, Some(W)]);
}

#[test]
fn failures_before_critical_and_warning() {
    // Critical after 3 failures; with no warning threshold, nothing before.
    check((0, 0, 3), &[P, C, C, C, C], &[Some(P), None, None, Some(C), Some(C)]);
    // Warning after 1, critical after 3.
    check((0, 1, 3), &[P, C, C, C], &[Some(P), Some(W), Some(W), Some(C)]);
    // A success resets the failures.
    check((0, 0, 2), &[P, C, P, C, C], &[Some(P), None, Some(P), None, Some(C)]);
}

proptest! {
    /// With failures_before_critical = n, critical is reported exactly when the last n results
    /// (since the first) are all critical, or the run started with criticals.
    #[test]
    fn critical_only_after_n_consecutive_failures(n in 1u32..5, results in proptest::collection::vec(any::<bool>(), 1..40)) {
        let mut h = StatusHandler::new(Thresholds { success_before_passing: 0, failures_before_warning: 0, failures_before_critical: n });
        let mut run = n; // counters start at the threshold
        for ok in results {
            let got = h.observe(if ok { P } else { C });
            if ok {
                run = 0;
                prop_assert_eq!(got, Some(P));
            } else {
                run += 1;
                prop_assert_eq!(got == Some(C), run >= n);
                prop_assert!(got != Some(P));
            }
        }
    }
}

#[test]
fn output_limits_and_tail() {
    let d = CheckDefinition::default();
    assert_eq!(output_limit(&d, 4096), 4096);
    assert_eq!(output_limit(&CheckDefinition { output_max_size: 100, ..d.clone() }, 4096), 100);
    assert_eq!(output_limit(&CheckDefinition { output_max_size: 10_000, ..d }, 4096), 4096);
    assert_eq!(tail(b"abcdef", 3), "def");
    assert_eq!(tail(b"ab", 3), "ab");
    // Never splits a character: "é" is two bytes.
    assert_eq!(tail("aéé".as_bytes(), 3), "é");
    assert_eq!(cap("héllo".into(), 2), "h");
    assert_eq!(cap("x".repeat(5000), 4096).len(), 4096);
}

#[test]
fn grpc_framing() {
    assert_eq!(grpc_request(""), vec![0, 0, 0, 0, 0]);
    assert_eq!(grpc_request("db"), vec![0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
    assert_eq!(grpc_response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
    assert_eq!(grpc_response_status(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
    // An empty message is UNKNOWN (0).
    assert_eq!(grpc_response_status(&[0, 0, 0, 0, 0]), Ok(0));
    assert!(grpc_response_status(&[0, 0, 0]).is_err());
    assert!(grpc_response_status(&[0, 0, 0, 0, 9, 0x08]).is_err());
}

proptest! {
    #[test]
    fn grpc_response_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = grpc_response_status(&bytes);
    }
}

fn node(name: &str) -> Node {
    Node::new(name, "10.0.0.1", "dc1")
}

fn catalog(checks: Vec<Check>) -> CatalogState {
    let mut state = CatalogState::default();
    let mut changes = Vec::new();
    let cmds = [
        Command::Register(Registration {
            node: node("n1"),
            skip_node_update: false,
            service: Some(Service::new("n1", "web", "web", 80)),
            checks: Vec::new(),
        }),
        Command::Register(Registration { node: node("n1"), skip_node_update: false, service: None, checks }),
    ];
    for (i, cmd) in cmds.iter().enumerate() {
        apply(&mut state, i as u64 + 1, cmd, &mut changes);
    }
    state
}

fn chk(id: &str, service: &str, status: HealthStatus) -> Check {
    Check { output: format!("{id} out"), ..Check::new("n1", id, service, status) }
}

fn check_alias(checks: Vec<Check>, service: &str, want: (HealthStatus, &str)) {
    let cat = catalog(checks);
    let def = CheckDefinition { alias_service: service.into(), ..CheckDefinition::default() };
    let got = alias_status(&cat, "n1", "alias", &def);
    assert_eq!((got.0, got.1.as_str()), want);
}

#[test]
fn alias_mirrors_the_worst_check() {
    check_alias(vec![], "web", (P, "No checks found."));
    check_alias(vec![chk("a", "web", P)], "web", (P, "All checks passing."));
    check_alias(
        vec![chk("a", "web", P), chk("b", "web", C)],
        "web",
        (C, "Aliased check \"b\" failing: b out"),
    );
    // Node-level checks count; the alias check itself does not.
    check_alias(
        vec![chk("serf", "", W), chk("alias", "", C)],
        "web",
        (W, "Aliased check \"serf\" warning: serf out"),
    );
    check_alias(vec![], "nope", (C, "Service \"nope\" could not be found on node \"n1\""));
}

#[test]
fn reaper_waits_the_limit_and_resets_on_recovery() {
    let dcsa = |status| Check {
        definition: CheckDefinition {
            deregister_critical_service_after_ns: 2_000_000_000,
            ..CheckDefinition::default()
        },
        ..chk("c", "web", status)
    };
    let mut clock = CriticalClock::default();
    let t0 = Instant::now();
    let min = Duration::from_secs(1);
    let critical = catalog(vec![dcsa(C)]);
    assert!(clock.observe(&critical, "n1", min, t0).is_empty());
    assert!(clock.observe(&critical, "n1", min, t0 + Duration::from_secs(1)).is_empty());
    assert_eq!(clock.observe(&critical, "n1", min, t0 + Duration::from_secs(2)), vec!["web".to_owned()]);
    // Recovery resets the clock.
    let mut clock = CriticalClock::default();
    clock.observe(&critical, "n1", min, t0);
    clock.observe(&catalog(vec![dcsa(P)]), "n1", min, t0 + Duration::from_secs(1));
    assert!(clock.observe(&critical, "n1", min, t0 + Duration::from_secs(2)).is_empty());
    // The minimum raises a smaller limit.
    let mut clock = CriticalClock::default();
    clock.observe(&critical, "n1", Duration::from_secs(60), t0);
    assert!(clock.observe(&critical, "n1", Duration::from_secs(60), t0 + Duration::from_secs(30)).is_empty());
}
