//! The writers: agent API registrations and deregistrations, check results, and their
//! immediate sync.
//!
//! Stage: agent local state, writing. Input: a registration, a deregistration or a check's new
//! status and output -> output: the local entries changed (and, for API records, their files)
//! and one proposal of the matching command (`Consensus::propose`); a deferred check result is
//! only recorded (`record_result`).
//! Invariants: writers hold the sync gate shared; API records are persisted before they are
//! proposed; a rejected proposal undoes the local change; any other failure wakes the sync
//! loop, which retries.

use super::{LocalError, LocalState, Source, Undo, put};
use crate::catalog::{CheckUpdate, Command, Deregistration, HealthStatus, Registration, key};
use crate::consensus::ProposeError;

impl LocalState {
    /// Registers a service (with its checks) or checks on this agent: local state, file (API
    /// records), then the proposal of `reg`. Checks already known keep their status and output.
    pub(crate) async fn register(&self, mut reg: Registration, source: Source) -> Result<(), LocalError> {
        let _shared = self.gate.read().await;
        let undo = put(&mut self.entries(), &mut reg, source);
        if let Err(e) = self.persist(&undo) {
            self.restore(undo);
            return Err(e.into());
        }
        let keys = keys_of(&undo);
        let service = reg.service.as_ref().map(|s| s.id.clone());
        self.propose_change(Command::Register(reg), undo, keys).await?;
        // Consul's line for a service reaching the catalog (`consul monitor` shows it).
        if let Some(service) = service {
            tracing::info!(%service, "Synced service");
        }
        Ok(())
    }

    /// Deregisters a service of this agent (and its checks) from the local state, its files
    /// and the catalog.
    pub(crate) async fn deregister_service(&self, id: &str) -> Result<(), LocalError> {
        let _shared = self.gate.read().await;
        let mut undo = Undo::default();
        {
            let mut e = self.entries();
            let k = key(id);
            undo.services.push((k.clone(), e.services.remove(&k)));
            let checks: Vec<String> = e
                .checks
                .iter()
                .filter(|(_, c)| key(&c.check.service_id) == k)
                .map(|(ck, _)| ck.clone())
                .collect();
            for ck in checks {
                let prev = e.checks.remove(&ck);
                undo.checks.push((ck, prev));
            }
        }
        if let Err(e) = self.persist(&undo) {
            self.restore(undo);
            return Err(e.into());
        }
        let cmd = Command::Deregister(Deregistration {
            node: self.own.node.name.clone(),
            service_id: Some(id.to_owned()),
            check_id: None,
        });
        self.propose_change(cmd, undo, (Vec::new(), Vec::new())).await
    }

    /// Deregisters a check of this agent from the local state, its file and the catalog.
    pub(crate) async fn deregister_check(&self, id: &str) -> Result<(), LocalError> {
        let _shared = self.gate.read().await;
        let mut undo = Undo::default();
        {
            let k = key(id);
            let prev = self.entries().checks.remove(&k);
            undo.checks.push((k, prev));
        }
        if let Err(e) = self.persist(&undo) {
            self.restore(undo);
            return Err(e.into());
        }
        let cmd = Command::Deregister(Deregistration {
            node: self.own.node.name.clone(),
            service_id: None,
            check_id: Some(id.to_owned()),
        });
        self.propose_change(cmd, undo, (Vec::new(), Vec::new())).await
    }

    /// A check result whose write waits (an output-only change within `check_update_interval`):
    /// recorded in the local state only, so `/v1/agent/checks` shows it at once as Consul's
    /// does; the deferred `update_check` (or the next full sync) writes it to the catalog.
    pub(crate) fn record_result(&self, id: &str, status: HealthStatus, output: &str) {
        if let Some(lc) = self.entries().checks.get_mut(&key(id))
            && (lc.check.status != status || lc.check.output != output)
        {
            lc.check.status = status;
            output.clone_into(&mut lc.check.output);
            lc.in_sync = false;
        }
    }

    /// A check's new status and output (probe results, TTL updates and expiries): recorded
    /// locally, then proposed unless the catalog already has them. A local check missing from
    /// the catalog is left to the next sync, which is woken.
    pub(crate) async fn update_check(
        &self,
        id: &str,
        status: HealthStatus,
        output: String,
    ) -> Result<(), ProposeError> {
        let _shared = self.gate.read().await;
        let k = key(id);
        let local = {
            let mut e = self.entries();
            match e.checks.get_mut(&k) {
                Some(lc) => {
                    lc.check.status = status;
                    lc.check.output.clone_from(&output);
                    lc.in_sync = false;
                    true
                }
                None => false,
            }
        };
        let snapshot = self.consensus.snapshots().load_full();
        let Some(cur) = snapshot.catalog.check(&self.own.node.name, id) else {
            if local {
                self.wake.notify_one();
            }
            return Ok(());
        };
        if cur.status != status || cur.output != output {
            let cmd = Command::UpdateCheck(CheckUpdate {
                node: cur.node.clone(),
                check_id: cur.check_id.clone(),
                status,
                output: output.clone(),
            });
            if let Err(e) = self.consensus.propose(cmd).await {
                if !matches!(e, ProposeError::Rejected(_)) {
                    self.wake.notify_one();
                }
                return Err(e);
            }
        }
        if let Some(lc) = self.entries().checks.get_mut(&k)
            && lc.check.status == status
            && lc.check.output == output
        {
            lc.in_sync = true;
        }
        Ok(())
    }

    /// The immediate sync of records already put in the local state (`replace_config`): proposes
    /// `cmd` under the shared gate; a failure is left to the sync loop, which is woken.
    pub(crate) async fn propose(&self, cmd: Command) -> Result<(), ProposeError> {
        let _shared = self.gate.read().await;
        let r = self.consensus.propose(cmd).await;
        if r.is_err() {
            self.wake.notify_one();
        }
        r
    }

    /// Proposes a writer's command: in sync on success, undone on a rejection, retried by the
    /// sync loop on any other failure.
    async fn propose_change(
        &self,
        cmd: Command,
        undo: Undo,
        (services, checks): (Vec<String>, Vec<String>),
    ) -> Result<(), LocalError> {
        match self.consensus.propose(cmd).await {
            Ok(()) => {
                let mut e = self.entries();
                for k in services {
                    if let Some(s) = e.services.get_mut(&k) {
                        s.in_sync = true;
                    }
                }
                for k in checks {
                    if let Some(c) = e.checks.get_mut(&k) {
                        c.in_sync = true;
                    }
                }
                Ok(())
            }
            Err(ProposeError::Rejected(msg)) => {
                self.restore(undo);
                Err(ProposeError::Rejected(msg).into())
            }
            Err(e) => {
                self.wake.notify_one();
                Err(e.into())
            }
        }
    }
}

fn keys_of(undo: &Undo) -> (Vec<String>, Vec<String>) {
    (
        undo.services.iter().map(|(k, _)| k.clone()).collect(),
        undo.checks.iter().map(|(k, _)| k.clone()).collect(),
    )
}
