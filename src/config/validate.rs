//! Validation per section: the merged layers become the resolved `Config`.
//!
//! Stage: merged view -> `Config`. Input: `Layers` (files, then flags) and `--dev`. Output: the
//! `Config` every module reads. Invariants: each section reads its keys through `Layers` (last
//! value wins, lists append) and applies its default here, in one expression per field; checks
//! that span keys or files (domains against the datacenter, definitions against the node and
//! the script-check switches, `bootstrap_expect` against `server`) live in their section, and
//! an error names the file and key the offending value came from.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::merge::{COMMAND_LINE, Layers, Sourced, indexed};
use super::schema::{DnsFile, FileConfig, SoaFile};
use super::value::{self, Count, Flag, GoDuration, Int, OneOrList};
use super::{
    CheckConfig, Config, ConfigError, DEFAULT_ANTI_ENTROPY_INTERVAL, DEFAULT_SNAPSHOT_THRESHOLD,
    DEFAULT_TRAILING_LOGS, DnsConfig, ListenAddr, Ports, SoaConfig, UnixSockets, WanConfig,
};
use crate::agent::{CheckSpec, ServiceDefinition};

/// `data_dir`: required unless `--dev`, which creates a temporary directory at start (`app`).
fn data_dir(layers: &Layers, dev: bool) -> Result<PathBuf, ConfigError> {
    match layers.last(|f| f.data_dir.get()) {
        Some(d) => Ok(d.0),
        None if dev => Ok(PathBuf::new()),
        None => Err(ConfigError::Key {
            file: COMMAND_LINE.into(),
            key: "data_dir".into(),
            msg: "must be set in a config file or with -data-dir (or run with -dev)".into(),
        }),
    }
}

/// Builds the `Config` from the layers, section by section, in the order errors are reported.
pub(super) fn resolve(layers: &Layers, dev: bool, sources: Vec<PathBuf>) -> Result<Config, ConfigError> {
    let id = identity(layers)?;
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let client_addr = layers.last(|f| f.client_addr.get()).map_or(loopback, |ip| ip.0);
    let bind_addr = layers.last(|f| f.bind_addr.get().or(f.advertise_addr.get())).map_or(loopback, |ip| ip.0);
    let data_dir = data_dir(layers, dev)?;
    // `--dev` serves the repository's example zones when run from a checkout.
    let zones_dir = layers
        .last(|f| f.zones_dir.get())
        .map(|d| d.0)
        .or_else(|| (dev && Path::new("zones").is_dir()).then(|| PathBuf::from("zones")));
    let log_level = log_level(layers)?;
    let checks = checks(layers);
    let (services, check_definitions) = definitions(layers, &id, bind_addr, &checks)?;
    let (server, bootstrap_expect) = cluster(layers, dev)?;
    let mut ports = ports(layers);
    let tls = super::tls::resolve(layers)?;
    if !tls.https.has_cert() {
        ports.https = -1;
    }
    let acl = super::acl::resolve(layers, &id.datacenter)?;
    Ok(Config {
        datacenter: id.datacenter,
        node_name: id.node_name,
        node_id: layers.last(|f| f.node_id.get()).map(|t| t.0).unwrap_or_default(),
        node_meta: node_meta(layers)?,
        domain: id.domain,
        alt_domain: id.alt_domain,
        data_dir,
        dev,
        server,
        bootstrap_expect,
        bind_addr,
        retry_join: layers.all(joins).into_iter().map(|a| a.value).collect(),
        wan: wan(layers),
        raft_snapshot_threshold: layers
            .last(|f| f.raft_snapshot_threshold.get())
            .map_or(DEFAULT_SNAPSHOT_THRESHOLD, |n| n.0.unsigned_abs()),
        raft_trailing_logs: layers
            .last(|f| f.raft_trailing_logs.get())
            .map_or(DEFAULT_TRAILING_LOGS, |n| n.0.unsigned_abs()),
        anti_entropy_interval: layers
            .last(|f| f.anti_entropy_interval.get())
            .map_or(DEFAULT_ANTI_ENTROPY_INTERVAL, |d| d.0),
        cleanup_dead_servers: layers
            .last(|f| f.autopilot.get()?.0.cleanup_dead_servers.get())
            .is_none_or(|b| b.0),
        encrypt: layers.last(|f| f.encrypt.get()).map(|k| k.0),
        insecure_rpc: layers.last(|f| f.insecure_rpc.get()).is_some_and(|b| b.0),
        disable_keyring_file: layers.last(|f| f.disable_keyring_file.get()).is_some_and(|b| b.0),
        encrypt_verify_incoming: layers.last(|f| f.encrypt_verify_incoming.get()).is_none_or(|b| b.0),
        encrypt_verify_outgoing: layers.last(|f| f.encrypt_verify_outgoing.get()).is_none_or(|b| b.0),
        client_addr,
        dns_addr: layers.last(|f| f.addresses.get()?.0.dns.get()).map_or(client_addr, |ip| ip.0),
        http_addrs: layers
            .last(|f| f.addresses.get()?.0.http.get())
            .map_or_else(|| vec![ListenAddr::Ip(client_addr)], |a| a.0.clone()),
        unix_sockets: unix_sockets(layers),
        https_addr: layers.last(|f| f.addresses.get()?.0.https.get()).map_or(client_addr, |ip| ip.0),
        tls,
        ports,
        recursors: recursors(layers),
        dns: dns(layers),
        services,
        checks,
        check_definitions,
        zones_dir,
        log_level,
        enable_debug: layers.last(|f| f.enable_debug.get()).map_or(dev, |b| b.0),
        sources,
        acl,
    })
}

/// Consul's limits on metadata (`structs.metaMaxKeyPairs`, `metaKeyMaxLength`,
/// `metaValueMaxLength`).
const META_MAX_PAIRS: usize = 64;
const META_KEY_MAX: usize = 128;
const META_VALUE_MAX: usize = 512;

/// `node_meta`, merged key by key over the files in order, validated with Consul's rules and
/// texts (`ValidateNodeMetadata`: the `consul-` prefix is reserved).
fn node_meta(layers: &Layers) -> Result<BTreeMap<String, String>, ConfigError> {
    let pairs = layers.all(|f| {
        let table = f.node_meta.get().map(|t| &t.0);
        table.into_iter().flatten().map(|(k, v)| ("node_meta".to_owned(), (k.clone(), v.0.clone()))).collect()
    });
    let mut meta = BTreeMap::new();
    for p in &pairs {
        let (key, value) = &p.value;
        meta_pair_problem(key, value).map_or(Ok(()), |why| {
            Err(p.err(format!("invalid: Couldn't load metadata pair ('{key}', '{value}'): {why}")))
        })?;
        meta.insert(key.clone(), value.clone());
    }
    if meta.len() > META_MAX_PAIRS {
        let last = pairs.last().map_or_else(|| COMMAND_LINE.to_owned(), |p| p.file.clone());
        return Err(ConfigError::Key {
            file: last,
            key: "node_meta".into(),
            msg: format!("invalid: Node metadata cannot contain more than {META_MAX_PAIRS} key/value pairs"),
        });
    }
    Ok(meta)
}

/// Consul's `validateMetaPair` for node metadata, its texts.
fn meta_pair_problem(key: &str, value: &str) -> Option<String> {
    if key.is_empty() {
        return Some("Key cannot be blank".into());
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Some("Key contains invalid characters".into());
    }
    if key.len() > META_KEY_MAX {
        return Some(format!("Key is too long (limit: {META_KEY_MAX} characters)"));
    }
    if key.starts_with("consul-") {
        return Some("Key prefix 'consul-' is reserved for internal use".into());
    }
    if value.len() > META_VALUE_MAX {
        return Some(format!("Value is too long (limit: {META_VALUE_MAX} characters)"));
    }
    None
}

/// Who and where this agent is.
struct Identity {
    datacenter: String,
    node_name: String,
    domain: String,
    alt_domain: Option<String>,
}

/// A value given nowhere: its default, named after the key.
fn defaulted(v: &str, key: &str) -> Sourced<String> {
    Sourced { value: v.to_owned(), file: "defaults".into(), key: key.into() }
}

/// The last value of a string key, with its source.
fn text(
    layers: &Layers,
    key: &str,
    get: impl Fn(&FileConfig) -> Option<&value::Text>,
) -> Option<Sourced<String>> {
    layers.last_sourced(key, get).map(|s| Sourced { value: s.value.0, file: s.file, key: s.key })
}

fn identity(layers: &Layers) -> Result<Identity, ConfigError> {
    let dc =
        text(layers, "datacenter", |f| f.datacenter.get()).unwrap_or_else(|| defaulted("dc1", "datacenter"));
    let datacenter = dc.value.to_ascii_lowercase();
    if datacenter.is_empty() || !datacenter.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(dc.err(format!("{:?} must be letters, digits, - or _", dc.value)));
    }
    let node = match text(layers, "node_name", |f| f.node_name.get()) {
        Some(n) => n,
        None => {
            let host =
                hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "cairn".into());
            defaulted(&host, "node_name")
        }
    };
    if node.value.is_empty() || node.value.len() > 255 {
        return Err(node.err("must be 1 to 255 characters"));
    }
    let dom = text(layers, "domain", |f| f.domain.get()).unwrap_or_else(|| defaulted("consul", "domain"));
    let domain = value::normalise_domain(&dom.value).map_err(|m| dom.err(m))?;
    let alt_domain = match text(layers, "alt_domain", |f| f.alt_domain.get()) {
        Some(a) if !a.value.is_empty() => {
            let alt = value::normalise_domain(&a.value).map_err(|m| a.err(m))?;
            let reserved = ["service.", "connect.", "node.", "query.", "addr."];
            if alt == domain
                || reserved.iter().any(|r| alt.starts_with(r))
                || alt.starts_with(&format!("{datacenter}."))
            {
                return Err(a.err(format!(
                    "{:?} must differ from the domain and not start with service., connect., node., query., addr. or <datacenter>.",
                    a.value
                )));
            }
            Some(alt)
        }
        _ => None,
    };
    Ok(Identity { datacenter, node_name: node.value, domain, alt_domain })
}

fn log_level(layers: &Layers) -> Result<String, ConfigError> {
    let lvl =
        text(layers, "log_level", |f| f.log_level.get()).unwrap_or_else(|| defaulted("info", "log_level"));
    let log_level = lvl.value.to_ascii_lowercase();
    if !["trace", "debug", "info", "warn", "err", "error"].contains(&log_level.as_str()) {
        return Err(lvl.err(format!("{:?}: expected trace, debug, info, warn or err", lvl.value)));
    }
    Ok(log_level)
}

/// `retry_join` then `start_join` of one layer.
fn joins(f: &FileConfig) -> Vec<(String, String)> {
    let mut out = indexed("retry_join", &f.retry_join.0);
    out.extend(indexed("start_join", &f.start_join.0));
    out.into_iter().map(|(k, a)| (k, a.0)).collect()
}

/// The WAN pool's keys.
fn wan(layers: &Layers) -> WanConfig {
    let d = WanConfig::default();
    WanConfig {
        retry_join: layers.all(wan_joins).into_iter().map(|a| a.value).collect(),
        retry_interval: layers.last(|f| f.retry_interval_wan.get()).map_or(d.retry_interval, |t| t.0),
        retry_max: layers.last(|f| f.retry_max_wan.get()).map_or(d.retry_max, |n| n.0.unsigned_abs()),
        bind: layers.last(|f| f.serf_wan.get()).map(|ip| ip.0),
        advertise: layers.last(|f| f.advertise_addr_wan.get()).map(|ip| ip.0),
    }
}

/// `retry_join_wan` then `start_join_wan` of one layer.
fn wan_joins(f: &FileConfig) -> Vec<(String, String)> {
    let mut out = indexed("retry_join_wan", &f.retry_join_wan.0);
    out.extend(indexed("start_join_wan", &f.start_join_wan.0));
    out.into_iter().map(|(k, a)| (k, a.0)).collect()
}

/// Start-up notes on settings given but not served, beside the accepted-but-unused keys.
pub(super) fn notes(layers: &Layers, config: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if ports(layers).https >= 0 && config.ports.https < 0 {
        notes.push(
            "ports.https: no certificate for HTTPS (cert_file and key_file, or tls.https / tls.defaults), \
             so HTTPS is not served, as in Consul"
                .to_owned(),
        );
    }
    notes
}

fn ports(layers: &Layers) -> Ports {
    let d = Ports::default();
    let files = layers.sections(|f| f.ports.get().map(|t| &t.0));
    // The value types bound the ranges, so the narrowing casts are exact.
    Ports {
        dns: last_in(&files, |p| p.dns.get()).map_or(d.dns, |n| n.0 as i32),
        http: last_in(&files, |p| p.http.get()).map_or(d.http, |n| n.0 as i32),
        https: last_in(&files, |p| p.https.get()).map_or(d.https, |n| n.0 as i32),
        server: last_in(&files, |p| p.server.get()).map_or(d.server, |n| n.0 as u16),
        serf_lan: last_in(&files, |p| p.serf_lan.get()).map_or(d.serf_lan, |n| n.0 as u16),
        serf_wan: last_in(&files, |p| p.serf_wan.get()).map_or(d.serf_wan, |n| n.0 as i32),
    }
}

/// `unix_sockets {}`, each key from the last file that gives it.
fn unix_sockets(layers: &Layers) -> UnixSockets {
    let files = layers.sections(|f| f.unix_sockets.get().map(|t| &t.0));
    UnixSockets {
        user: last_in(&files, |u| u.user.get()).map(|t| t.0.clone()),
        group: last_in(&files, |u| u.group.get()).map(|t| t.0.clone()),
        mode: last_in(&files, |u| u.mode.get()).map(|m| m.0),
    }
}

/// The last of `sections` that gives a value.
fn last_in<'a, S, T: 'a>(sections: &[&'a S], get: impl Fn(&'a S) -> Option<&'a T>) -> Option<&'a T> {
    sections.iter().rev().find_map(|s| get(s))
}

/// Every layer's recursors in order, each address once.
fn recursors(layers: &Layers) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for r in layers.all(|f| indexed("recursors", &f.recursors.0)) {
        if !out.contains(&r.value.0) {
            out.push(r.value.0);
        }
    }
    out
}

fn dns(layers: &Layers) -> DnsConfig {
    let d = DnsConfig::default();
    let files = layers.sections(|f| f.dns_config.get().map(|t| &t.0));
    let flag =
        |get: fn(&DnsFile) -> Option<&Flag>, default: bool| last_in(&files, get).map_or(default, |b| b.0);
    let dur =
        |get: fn(&DnsFile) -> Option<&GoDuration>, default| last_in(&files, get).map_or(default, |t| t.0);
    let count =
        |get: fn(&DnsFile) -> Option<&Count>, default| last_in(&files, get).map_or(default, |n| n.0 as u32);
    let soas = layers.sections(|f| f.dns_config.get()?.0.soa.get().map(|t| &t.0));
    let soa =
        |get: fn(&SoaFile) -> Option<&Count>, default| last_in(&soas, get).map_or(default, |n| n.0 as u32);
    let mut service_ttl = BTreeMap::new();
    for f in &files {
        for (name, ttl) in f.service_ttl.get().map(|t| &t.0).into_iter().flatten() {
            service_ttl.insert(name.to_ascii_lowercase(), ttl.0);
        }
    }
    DnsConfig {
        allow_stale: flag(|f| f.allow_stale.get(), d.allow_stale),
        max_stale: dur(|f| f.max_stale.get(), d.max_stale),
        node_ttl: dur(|f| f.node_ttl.get(), d.node_ttl),
        service_ttl,
        enable_truncate: flag(|f| f.enable_truncate.get(), d.enable_truncate),
        only_passing: flag(|f| f.only_passing.get(), d.only_passing),
        recursor_strategy: last_in(&files, |f| f.recursor_strategy.get())
            .map_or(d.recursor_strategy, |s| s.0),
        recursor_timeout: dur(|f| f.recursor_timeout.get(), d.recursor_timeout),
        disable_compression: flag(|f| f.disable_compression.get(), d.disable_compression),
        udp_answer_limit: count(|f| f.udp_answer_limit.get(), d.udp_answer_limit),
        a_record_limit: count(|f| f.a_record_limit.get(), d.a_record_limit),
        enable_additional_node_meta_txt: flag(
            |f| f.enable_additional_node_meta_txt.get(),
            d.enable_additional_node_meta_txt,
        ),
        soa: SoaConfig {
            refresh: soa(|s| s.refresh.get(), d.soa.refresh),
            retry: soa(|s| s.retry.get(), d.soa.retry),
            expire: soa(|s| s.expire.get(), d.soa.expire),
            min_ttl: soa(|s| s.min_ttl.get(), d.soa.min_ttl),
        },
        strict_rfc: flag(|f| f.strict_rfc.get(), d.strict_rfc),
        weighted_shuffle: flag(|f| f.weighted_shuffle.get(), d.weighted_shuffle),
    }
}

fn checks(layers: &Layers) -> CheckConfig {
    let d = CheckConfig::default();
    let flag =
        |get: fn(&FileConfig) -> Option<&Flag>, default: bool| layers.last(get).map_or(default, |b| b.0);
    CheckConfig {
        enable_script_checks: flag(|f| f.enable_script_checks.get(), d.enable_script_checks),
        enable_local_script_checks: flag(
            |f| f.enable_local_script_checks.get(),
            d.enable_local_script_checks,
        ),
        update_interval: layers.last(|f| f.check_update_interval.get()).map_or(d.update_interval, |t| t.0),
        output_max_size: layers
            .last(|f| f.check_output_max_size.get())
            .map_or(d.output_max_size, |n| n.0 as u32),
        deregister_interval_min: layers
            .last(|f| f.check_deregister_interval_min.get())
            .map_or(d.deregister_interval_min, |t| t.0),
        reap_interval: layers.last(|f| f.check_reap_interval.get()).map_or(d.reap_interval, |t| t.0),
    }
}

/// `service` (one or a list) then `services`, or `check` then `checks`, of one layer.
fn one_or_list(key: &str, one: Option<&OneOrList>) -> Vec<(String, Value)> {
    match one.map(|o| &o.0) {
        Some(Ok(list)) => indexed(key, list),
        Some(Err(single)) => vec![(key.to_owned(), single.clone())],
        None => Vec::new(),
    }
}

/// Service and check definitions, decoded once and checked as registrations on this agent's
/// node, so an invalid value (weights, meta, check) names its file and key here rather than
/// failing start-up.
fn definitions(
    layers: &Layers,
    id: &Identity,
    bind_addr: IpAddr,
    checks: &CheckConfig,
) -> Result<(Vec<ServiceDefinition>, Vec<CheckSpec>), ConfigError> {
    let placeholder = crate::catalog::Node::new(&id.node_name, &bind_addr.to_string(), &id.datacenter);
    let mut services = Vec::new();
    for s in layers.all(|f| {
        let mut out = one_or_list("service", f.service.get());
        out.extend(indexed("services", &f.services.0).into_iter().map(|(k, d)| (k, d.0)));
        out
    }) {
        let def = crate::agent::decode_service_definition(&s.value)
            .and_then(|def| def.clone().into_registration(&placeholder).map(|_| def))
            .map_err(|e| s.err(e.to_string()))?;
        if !checks.local_scripts() && def.checks.iter().any(|c| c.kind() == "script") {
            return Err(s.err(crate::agent::SCRIPTS_DISABLED_LOCAL));
        }
        services.push(def);
    }
    let mut check_definitions = Vec::new();
    for c in layers.all(|f| {
        let mut out = one_or_list("check", f.check.get());
        out.extend(indexed("checks", &f.checks.0).into_iter().map(|(k, d)| (k, d.0)));
        out
    }) {
        let spec = crate::agent::decode_check_definition(&c.value).map_err(|e| c.err(e.to_string()))?;
        if spec.name.is_empty() {
            return Err(c.err("Missing check name"));
        }
        if !spec.service_id.is_empty()
            && !services.iter().any(|s| s.service_id().eq_ignore_ascii_case(&spec.service_id))
        {
            return Err(c.err(format!("ServiceID {:?} does not exist", spec.service_id)));
        }
        spec.clone()
            .into_check(&id.node_name, None, &spec.name, &spec.name)
            .map_err(|e| c.err(e.to_string()))?;
        if spec.kind() == "script" && !checks.local_scripts() {
            return Err(c.err(crate::agent::SCRIPTS_DISABLED_LOCAL));
        }
        check_definitions.push(spec);
    }
    Ok((services, check_definitions))
}

/// Server or client, and how many servers to wait for. Without `server` (and not -dev) the
/// agent is a client: no Raft, writes forwarded to the servers, a local replica of the catalog
/// fed by a server (`replica`).
fn cluster(layers: &Layers, dev: bool) -> Result<(bool, u32), ConfigError> {
    let server = dev || layers.last(|f| f.server.get()).is_some_and(|b| b.0);
    let bootstrap_expect = layers
        .last(|f| f.bootstrap_expect.get().or(f.bootstrap.get().filter(|b| b.0).map(|_| &ONE)))
        .map_or(u32::from(dev), |n| n.0 as u32);
    let err = |msg: String| ConfigError::Key { file: "config".into(), key: "bootstrap_expect".into(), msg };
    if !server && bootstrap_expect != 0 {
        return Err(err(format!(
            "{bootstrap_expect}: bootstrap_expect is for servers; a client agent (no -server) joins servers through retry_join"
        )));
    }
    if dev && bootstrap_expect > 1 {
        return Err(err(format!(
            "{bootstrap_expect}: a -dev agent is a single server (bootstrap_expect = 1)"
        )));
    }
    Ok((server, bootstrap_expect))
}

/// `bootstrap = true`: one expected server.
const ONE: Int<0, 1024> = Int(1);
