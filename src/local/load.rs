//! Where the local records come from at start and at reload.
//!
//! Stage: agent local state, loading. Input: the persisted files under `data_dir` (or, for a
//! data dir from before the local state existed, this node's records in the catalog) and the
//! config-file registrations -> output: the local entries, `Source::Api` and `Source::Config`.
//! Invariants: a config-file record wins over a persisted one with the same ID; a check
//! already known keeps its status and output; nothing here proposes (the caller proposes the
//! config registrations, and the sync loop, woken by `replace_config`, repairs the rest).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use super::persist::PersistError;
use super::{LocalCheck, LocalService, LocalState, Source, Undo, plan, put};
use crate::catalog::{CatalogState, Check, Registration, Service, key};

impl LocalState {
    /// Reads the persisted services and checks (a config-file record with the same ID wins).
    /// A data dir from before the local state existed adopts this node's records from
    /// `catalog` instead (except `consul` and `serfHealth`), so an upgrade keeps them.
    /// Checks take their status and output from `catalog` when it has them. Returns how many
    /// records were loaded.
    pub(crate) fn load(&self, catalog: &CatalogState) -> Result<usize, PersistError> {
        let Some(disk) = &self.disk else { return Ok(0) };
        let node = self.own.node.name.clone();
        let (services, checks, adopted) = if disk.is_new() {
            let services: Vec<Service> = catalog
                .node_services(&node)
                .filter(|s| key(&s.id) != key(plan::CONSUL_SERVICE_ID))
                .map(|s| (**s).clone())
                .collect();
            let checks: Vec<Check> = catalog
                .node_checks(&node)
                .filter(|c| key(&c.check_id) != key(plan::SERF_CHECK_ID))
                .map(|c| (**c).clone())
                .collect();
            disk.create()?;
            (services, checks, true)
        } else {
            let (s, c) = disk.load()?;
            (s, c, false)
        };
        let mut e = self.entries();
        let mut n = 0;
        for mut s in services {
            let k = key(&s.id);
            if e.services.get(&k).is_some_and(|l| l.source == Source::Config) {
                continue;
            }
            s.node.clone_from(&node);
            (s.create_index, s.modify_index) = (0, 0);
            if adopted {
                disk.write_service(&s)?;
            }
            e.services.insert(k, LocalService { service: s, source: Source::Api, in_sync: false });
            n += 1;
        }
        for mut c in checks {
            let k = key(&c.check_id);
            if e.checks.get(&k).is_some_and(|l| l.source == Source::Config) {
                continue;
            }
            c.node.clone_from(&node);
            (c.create_index, c.modify_index) = (0, 0);
            if let Some(cur) = catalog.check(&node, &c.check_id) {
                c.status = cur.status;
                c.output.clone_from(&cur.output);
            }
            if adopted {
                disk.write_check(&c)?;
            }
            e.checks.insert(k, LocalCheck { check: c, source: Source::Api, in_sync: false });
            n += 1;
        }
        if adopted && n > 0 {
            tracing::info!(
                records = n,
                "adopted this node's services and checks from the catalog into the agent's local state"
            );
        }
        Ok(n)
    }

    /// Makes the config-file records those of `regs` (registrations of this node): new and
    /// changed ones are put in, ones no longer defined are dropped (the next sync deregisters
    /// them). Checks the local state already has keep their status and output, and `regs` is
    /// updated to carry them, so proposing `regs` does not flap a check.
    pub(crate) fn replace_config(&self, regs: &mut [Registration]) {
        let keep_services: BTreeSet<String> =
            regs.iter().filter_map(|r| r.service.as_ref()).map(|s| key(&s.id)).collect();
        let keep_checks: BTreeSet<String> =
            regs.iter().flat_map(|r| r.checks.iter()).map(|c| key(&c.check_id)).collect();
        let mut touched = Undo::default();
        {
            let mut e = self.entries();
            let dropped: Vec<String> = e
                .services
                .iter()
                .filter(|(k, s)| s.source == Source::Config && !keep_services.contains(*k))
                .map(|(k, _)| k.clone())
                .collect();
            for k in &dropped {
                tracing::info!(service = %k, "service no longer defined in the config files; deregistering it");
                touched.services.push((k.clone(), e.services.remove(k)));
            }
            let dropped_checks: Vec<String> = e
                .checks
                .iter()
                .filter(|(k, c)| {
                    (c.source == Source::Config && !keep_checks.contains(*k))
                        || (!c.check.service_id.is_empty() && dropped.contains(&key(&c.check.service_id)))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in dropped_checks {
                let prev = e.checks.remove(&k);
                touched.checks.push((k, prev));
            }
            for reg in regs.iter_mut() {
                let undo = put(&mut e, reg, Source::Config);
                touched.services.extend(undo.services);
                touched.checks.extend(undo.checks);
            }
        }
        if let Err(err) = self.persist(&touched) {
            tracing::warn!(error = %err, "local state: removing replaced records' files");
        }
        self.loaded.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}
