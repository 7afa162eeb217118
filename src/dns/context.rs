//! Shared input of every stage: the configuration the DNS path reads (`DnsContext`) and the
//! transport a request came on (`Transport`).
//!
//! Input: the resolved agent `Config` (and the zones its owner loaded). Output: one
//! immutable `DnsContext`, swapped whole on reload (`ArcSwap` in the listener).
//!
//! Invariants: a context is never mutated while queries read it; `generation` changes on
//! every reload (answer caches key on it); only the owner reads the clock (`unix_serial`),
//! never a stage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Config, DnsConfig};
use crate::zone::ZoneSet;

/// Everything the DNS path needs from the configuration, swappable as a whole on reload.
#[derive(Debug, Clone)]
pub struct DnsContext {
    /// Primary domain, lower-case and fully qualified (`consul.`).
    pub domain: String,
    /// Alternative domain, lower-case and fully qualified.
    pub alt_domain: Option<String>,
    /// This agent's datacenter, lower-case.
    pub datacenter: String,
    /// This agent's node name (the NS fallback target).
    pub node_name: String,
    /// `dns_config{}`.
    pub dns_config: DnsConfig,
    /// Upstream resolvers for names outside our domains; empty = answer REFUSED.
    pub recursors: Vec<SocketAddr>,
    /// SOA SERIAL. Consul uses the current Unix time; it is set when the context is built
    /// (and may be refreshed by the owner) so that `handle` never reads the clock.
    pub soa_serial: u32,
    /// Bumped by every configuration reload (the serial refresh keeps it); answer caches
    /// key on it.
    pub generation: u64,
    /// Static zones (`zones_dir`) answered beside the domains; loaded by the owner (IO).
    pub zones: Arc<ZoneSet>,
}

impl DnsContext {
    /// Builds the DNS context from the resolved agent configuration.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            domain: normalise_domain(&cfg.domain),
            alt_domain: cfg.alt_domain.as_deref().map(normalise_domain).filter(|d| d != "."),
            datacenter: cfg.datacenter.to_ascii_lowercase(),
            node_name: cfg.node_name.clone(),
            dns_config: cfg.dns.clone(),
            recursors: cfg.recursors.clone(),
            soa_serial: unix_serial(),
            generation: 0,
            zones: Arc::default(),
        }
    }

    /// The same context serving `zones`.
    #[must_use]
    pub fn with_zones(mut self, zones: Arc<ZoneSet>) -> Self {
        self.zones = zones;
        self
    }

    /// Whether `name` is the domain or the alt domain or below one of them (no allocation).
    pub fn in_domains(&self, name: &hickory_proto::rr::Name) -> bool {
        let under = |d: &str| crate::zone::name_under(name, d);
        under(&self.domain) || self.alt_domain.as_deref().is_some_and(under)
    }

    /// The same context with a new SOA serial (e.g. refreshed periodically by the owner).
    #[must_use]
    pub fn with_serial(mut self, serial: u32) -> Self {
        self.soa_serial = serial;
        self
    }
}

/// Seconds since the Unix epoch, truncated to 32 bits (an RFC 1982 serial wraps anyway).
pub(crate) fn unix_serial() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs & u64::from(u32::MAX)) as u32
}

fn normalise_domain(d: &str) -> String {
    let mut d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    d.push('.');
    d
}

/// The transport a request arrived on; it decides the size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the client's EDNS size (capped at 65467).
    Udp,
    /// TCP: up to 65523 bytes.
    Tcp,
}
