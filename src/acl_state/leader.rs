//! The leader's ACL duties (Consul's `initializeACLs`): on a leader with ACLs on, propose the
//! built-in `global-management` policy and anonymous token when missing, then the configured
//! master token (`acl.tokens.master` / `initial_management`) when no token has its secret.
//!
//! Stage: a feed, like the session timers. Input: the published snapshot, leadership, the
//! config. Output: `Command::Acl` proposals (and the deletion of expired tokens, Consul's
//! reaper). Invariants: only the leader proposes; every
//! proposal is idempotent at apply (`InitBuiltins` creates only what is missing; the master
//! token is proposed only while absent), so a retry after a lost leadership is harmless; the
//! master token goes through bootstrap when the cluster is not bootstrapped yet (a configured
//! master counts as the bootstrap, spec §1.3), as a plain token create otherwise. The secret
//! is never logged.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::acl::{ANONYMOUS_TOKEN_ACCESSOR_ID, GLOBAL_MANAGEMENT_POLICY_ID};
use crate::catalog::acl::{AclLink, AclToken, GLOBAL_MANAGEMENT_NAME};
use crate::catalog::{AclCommand, Command, CommandResponse};
use crate::clock::unix_ms;
use crate::consensus::Consensus;

/// How often the leader checks.
const TICK: Duration = Duration::from_secs(1);

/// Runs until `stop`; `master` is the configured master token's secret.
pub(crate) async fn run_leader_duties(consensus: Consensus, master: Option<String>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !consensus.is_leader() {
            continue;
        }
        for cmd in due(&consensus, master.as_deref()) {
            let what = cmd.to_string();
            match consensus.propose_for(Command::Acl(cmd)).await {
                Ok(CommandResponse::Applied) => tracing::info!("{what}"),
                Ok(other) => tracing::warn!(response = ?other, "{what}: refused"),
                Err(e) => tracing::warn!(error = %e, "{what}: not proposed"),
            }
        }
    }
}

/// The ACL writes the current snapshot still needs.
fn due(consensus: &Consensus, master: Option<&str>) -> Vec<AclCommand> {
    let snap = consensus.snapshots().load_full();
    let acl = snap.catalog.acl();
    let mut out = Vec::new();
    if acl.policy(GLOBAL_MANAGEMENT_POLICY_ID).is_none() || acl.token(ANONYMOUS_TOKEN_ACCESSOR_ID).is_none() {
        out.push(AclCommand::InitBuiltins { now_ms: unix_ms() });
    }
    // Expired tokens are invisible at once (the resolver checks); the leader deletes them.
    let now = unix_ms();
    out.extend(
        acl.tokens().filter(|t| t.expired(now)).map(|t| AclCommand::TokenDelete(t.accessor_id.clone())),
    );
    if let Some(secret) = master.filter(|s| acl.token_by_secret(s).is_none()) {
        let token = Box::new(management_token(secret.to_owned(), "Master Token", unix_ms()));
        out.push(match acl.bootstrap_index() {
            None => AclCommand::Bootstrap { token, reset_index: None },
            Some(_) => AclCommand::TokenSet { token, update: false },
        });
    }
    out
}

/// A new token linked to `global-management`, with a fresh AccessorID (legacy type management).
pub(crate) fn management_token(secret: String, description: &str, now_ms: u64) -> AclToken {
    AclToken {
        accessor_id: uuid::Uuid::new_v4().to_string(),
        secret_id: secret,
        description: description.to_owned(),
        policies: vec![AclLink {
            id: GLOBAL_MANAGEMENT_POLICY_ID.into(),
            name: GLOBAL_MANAGEMENT_NAME.into(),
        }],
        roles: Vec::new(),
        service_identities: Vec::new(),
        node_identities: Vec::new(),
        local: false,
        expiration_time_ms: None,
        create_time_ms: now_ms,
        create_index: 0,
        modify_index: 0,
        // Consul marks the master and bootstrap tokens legacy `management` so that the legacy
        // API still lists them (`GET /v1/acl/list` shows the master token) [live on 1.8.7].
        legacy_type: crate::catalog::acl::LEGACY_MANAGEMENT.into(),
        rules: String::new(),
    }
}
