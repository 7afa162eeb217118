//! Consul's check thresholds (`StatusHandler` in `agent/checks/check.go`) and probe output limits.
//!
//! Input: one raw probe result at a time → output: the status to report, or nothing while a
//! threshold is not reached. Pure: no clock, no IO.
//! Invariants: a passing or warning result counts as a success and resets the failures; a
//! critical one counts as a failure and resets the successes; both counters start at their
//! thresholds, so the first result is reported at once; `failures_before_warning` 0 means "the
//! critical threshold".

use crate::catalog::{CheckDefinition, HealthStatus};

/// Consul's default and maximum output size (`checks.DefaultBufSize`).
pub(crate) const DEFAULT_OUTPUT_MAX_SIZE: usize = 4096;

/// The three thresholds of a check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Thresholds {
    /// Consecutive successes before a success is reported.
    pub success_before_passing: u32,
    /// Consecutive failures before `warning` is reported (0: same as critical).
    pub failures_before_warning: u32,
    /// Consecutive failures before `critical` is reported.
    pub failures_before_critical: u32,
}

impl Thresholds {
    /// The thresholds of a stored definition.
    pub(crate) fn of(d: &CheckDefinition) -> Self {
        Self {
            success_before_passing: d.success_before_passing,
            failures_before_warning: d.failures_before_warning,
            failures_before_critical: d.failures_before_critical,
        }
    }
}

/// Counts consecutive results and decides what to report.
#[derive(Debug, Clone)]
pub(crate) struct StatusHandler {
    t: Thresholds,
    successes: u32,
    failures: u32,
}

impl StatusHandler {
    /// Counters start at their thresholds, so the first result is reported at once.
    pub(crate) fn new(t: Thresholds) -> Self {
        Self { t, successes: t.success_before_passing, failures: t.failures_before_critical }
    }

    /// Feeds one probe result; returns the status to report, if a threshold is reached.
    pub(crate) fn observe(&mut self, status: HealthStatus) -> Option<HealthStatus> {
        if status == HealthStatus::Critical {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            let warn_at = if self.t.failures_before_warning == 0 {
                self.t.failures_before_critical
            } else {
                self.t.failures_before_warning
            };
            if self.failures >= self.t.failures_before_critical {
                Some(HealthStatus::Critical)
            } else if self.failures >= warn_at {
                Some(HealthStatus::Warning)
            } else {
                None
            }
        } else {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            (self.successes >= self.t.success_before_passing).then_some(status)
        }
    }
}

/// The output limit of a check: its `OutputMaxSize` (0: default), capped by the agent's.
pub(crate) fn output_limit(d: &CheckDefinition, agent_max: u32) -> usize {
    let agent = if agent_max == 0 { DEFAULT_OUTPUT_MAX_SIZE } else { agent_max as usize };
    match d.output_max_size {
        0 => agent,
        n => (n as usize).min(agent),
    }
}

/// Keeps the last `max` bytes of `bytes` (Consul's circular buffer), cut on a UTF-8 boundary,
/// decoded lossily.
pub(crate) fn tail(bytes: &[u8], max: usize) -> String {
    let mut start = bytes.len().saturating_sub(max);
    // Skip UTF-8 continuation bytes so the cut does not split a character.
    while start < bytes.len() && start > 0 && (bytes[start] & 0xC0) == 0x80 {
        start += 1;
    }
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Caps a whole output line to `max` bytes, keeping its start (for messages we compose).
pub(crate) fn cap(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
