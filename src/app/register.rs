//! Start-up, the agent's own records: its node with `serfHealth` (and `consul` on a server),
//! and the services and checks of the config files, as registrations to propose.
//!
//! Input: `Config`, the published catalog, the consensus handle or the local state. Output:
//! `Registration`s, proposed through `Consensus` (own node) or `LocalState` (config records).
//! Invariants: registering is idempotent (an unchanged registration proposes a no-op); checks
//! already in the catalog keep their status and output.

use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Check, Command, HealthStatus, Registration, Service};
use crate::config::Config;
use crate::consensus::{Consensus, ProposeError};
use crate::local::LocalState;

/// How long to wait between attempts while the cluster has no leader.
const RETRY: Duration = Duration::from_millis(500);

/// Registers the agent's node and its config-file records once a leader takes them, retrying
/// until then or until `stop` (in a cluster and on a client agent, the leader comes later).
pub(super) async fn register_when_led(
    config: std::sync::Arc<Config>,
    consensus: Consensus,
    local: std::sync::Arc<LocalState>,
    stop: CancellationToken,
) {
    let mut blocked_logged = false;
    loop {
        let attempt = async {
            register_self(&config, &consensus).await?;
            register_config_services(&config, &local).await
        };
        match attempt.await {
            Ok(()) => break,
            // Consul's line when the agent token (`acl.tokens.agent`, else the default token)
            // may not write this node; logged once, retried until a token that may is set.
            Err(e) if blocked_by_acls(&e) => {
                if !blocked_logged {
                    tracing::warn!(node = %config.node_name, error = %format!("{e:#}"), "Node info update blocked by ACLs");
                    blocked_logged = true;
                }
            }
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "registering this agent; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// This agent's catalog node, from the config (`agent::agent_node`, with `node_meta`).
pub(super) fn own_node(config: &Config) -> crate::catalog::Node {
    let mut node =
        crate::agent::agent_node(&config.node_id, &config.node_name, &config.datacenter, config.bind_addr);
    node.meta.extend(config.node_meta.iter().map(|(k, v)| (k.clone(), v.clone())));
    node
}

/// The agent's node (with Consul's tagged addresses), the `serfHealth` check and, on servers,
/// the `consul` service: what `register_self` proposes and anti-entropy restores when missing.
pub(super) fn own_registration(config: &Config) -> Registration {
    let node = own_node(config);
    let service =
        config.server.then(|| Service::new(&config.node_name, "consul", "consul", config.ports.server));
    let serf = Check {
        name: "Serf Health Status".into(),
        output: "Agent alive and reachable".into(),
        ..Check::new(&config.node_name, "serfHealth", "", HealthStatus::Passing)
    };
    Registration { node, skip_node_update: false, service, checks: vec![serf] }
}

/// Registers the agent's node, `serfHealth` and, on servers, `consul`. Idempotent: an
/// unchanged registration is a no-op.
pub(super) async fn register_self(config: &Config, consensus: &Consensus) -> anyhow::Result<()> {
    let cmd = Command::Register(own_registration(config));
    propose_ok(consensus, cmd).await.context("registering this agent's node")
}

/// Makes the service and check definitions found in config files the agent's config-file
/// records (definitions gone from the files leave) and registers them on this agent's node.
pub(super) async fn register_config_services(config: &Config, local: &LocalState) -> anyhow::Result<()> {
    let snap = local.snapshots().load_full();
    let Some(node) = snap.catalog.node(&config.node_name).cloned() else {
        anyhow::bail!("invariant: own node {} missing after registration", config.node_name);
    };
    let (whats, mut regs): (Vec<String>, Vec<Registration>) =
        config_registrations(config, &node, &snap.catalog)?.into_iter().unzip();
    local.replace_config(&mut regs);
    for (what, registration) in whats.into_iter().zip(regs) {
        local
            .propose(Command::Register(registration))
            .await
            .with_context(|| format!("registering {what} from the config"))?;
    }
    Ok(())
}

/// The registrations of the config files' services, then of their `check`/`checks` (on the
/// node, or on a service: one of those services, else one already in the catalog), each with
/// what it registers for error messages. Existing checks keep their status and output.
pub(super) fn config_registrations(
    config: &Config,
    node: &crate::catalog::Node,
    catalog: &crate::catalog::CatalogState,
) -> anyhow::Result<Vec<(String, Registration)>> {
    let mut out = Vec::new();
    let mut sidecar_ports = Vec::new();
    for def in &config.services {
        // A `Connect.SidecarService` registers a sidecar after its service, as in Consul.
        let sidecar =
            def.sidecar_for(catalog, &config.node_name, &sidecar_ports).context("service definition")?;
        for def in std::iter::once(def.clone()).chain(sidecar) {
            // TTL timers are armed by `TtlChecks::run` from the snapshot, so the specs are not needed.
            let (mut registration, _ttl) = def.into_registration(node).context("service definition")?;
            crate::agent::keep_check_state(&mut registration.checks, catalog);
            let name = registration.service.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            sidecar_ports.extend(registration.service.as_ref().filter(|s| s.mesh.sidecar).map(|s| s.port));
            out.push((format!("service {name:?}"), registration));
        }
    }
    for spec in &config.check_definitions {
        let service = if spec.service_id.is_empty() {
            None
        } else {
            let from_config = out
                .iter()
                .filter_map(|(_, r)| r.service.as_ref())
                .find(|s| s.id.eq_ignore_ascii_case(&spec.service_id));
            let s = from_config
                .or_else(|| catalog.service(&config.node_name, &spec.service_id).map(|s| &**s))
                .with_context(|| {
                    format!(
                        "check {:?} from the config: ServiceID {:?} does not exist",
                        spec.name, spec.service_id
                    )
                })?;
            Some((s.id.clone(), s.name.clone(), s.tags.clone()))
        };
        let (mut check, _ttl) = spec
            .clone()
            .into_check(
                &config.node_name,
                service.as_ref().map(|(id, name, tags)| (id.as_str(), name.as_str(), tags.as_slice())),
                &spec.name,
                &spec.name,
            )
            .context("check definition")?;
        crate::agent::keep_check_state(std::slice::from_mut(&mut check), catalog);
        let registration =
            Registration { node: node.clone(), skip_node_update: false, service: None, checks: vec![check] };
        out.push((format!("check {:?}", spec.name), registration));
    }
    Ok(out)
}

/// Whether `e` is a server's refusal by ACLs.
fn blocked_by_acls(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<ProposeError>(), Some(ProposeError::Denied(_)))
            || matches!(
                c.downcast_ref::<crate::local::LocalError>(),
                Some(crate::local::LocalError::Propose(ProposeError::Denied(_)))
            )
    })
}

async fn propose_ok(consensus: &Consensus, cmd: Command) -> anyhow::Result<()> {
    Ok(consensus.propose(cmd).await?)
}
