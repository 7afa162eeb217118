//! The one merge of files and flags: each source is a layer of the same schema, later layers
//! win, lists append.
//!
//! Stage: schema -> merged view. Input: one `FileConfig` per file in reading order, then the
//! command line as the last layer (`flag_layer`). Output: `Layers`, which `validate` asks for
//! each key's winning value (`last`, `last_sourced`) or all its values (`all`). Invariants: a
//! single value comes from the last layer that gives it; a list is every layer's items in
//! order; a value remembers its file and key (a flag's name on the command line) for errors.

use std::net::IpAddr;

use super::schema::{FileConfig, PortsFile};
use super::value::{self, EncryptKey, FilePath, Flag, Given, Int, Ip, JoinAddr, List, Recursor, Table, Text};
use super::{ConfigError, Overrides};

/// The file name errors use for values given as flags.
pub(super) const COMMAND_LINE: &str = "command line";

/// The flag that sets a key, for errors about a value given on the command line.
const FLAG_NAMES: &[(&str, &str)] = &[
    ("datacenter", "-datacenter"),
    ("node_name", "-node"),
    ("domain", "-domain"),
    ("alt_domain", "-alt-domain"),
    ("log_level", "-log-level"),
];

/// A value and where it came from.
#[derive(Debug, Clone)]
pub(super) struct Sourced<T> {
    pub(super) value: T,
    /// The file, `command line` or `defaults`.
    pub(super) file: String,
    /// The key as written there (`services[2]`, `-datacenter`).
    pub(super) key: String,
}

impl<T> Sourced<T> {
    /// An error about this value, naming its file and key.
    pub(super) fn err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::Key { file: self.file.clone(), key: self.key.clone(), msg: msg.into() }
    }
}

/// Every source in order: the files, then the command line.
#[derive(Debug, Default)]
pub(super) struct Layers(Vec<(String, FileConfig)>);

impl Layers {
    /// Adds a file's keys on top of the layers so far.
    pub(super) fn push(&mut self, file: String, keys: FileConfig) {
        self.0.push((file, keys));
    }

    /// The last layer's value of a key.
    pub(super) fn last<T: Clone>(&self, get: impl Fn(&FileConfig) -> Option<&T>) -> Option<T> {
        self.0.iter().rev().find_map(|(_, f)| get(f)).cloned()
    }

    /// The last layer's value of `key`, with its file and key (a flag's name on the command line).
    pub(super) fn last_sourced<T: Clone>(
        &self,
        key: &str,
        get: impl Fn(&FileConfig) -> Option<&T>,
    ) -> Option<Sourced<T>> {
        self.0.iter().rev().find_map(|(file, f)| {
            let key = match FLAG_NAMES.iter().find(|(k, _)| *k == key) {
                Some((_, flag)) if file == COMMAND_LINE => (*flag).to_owned(),
                _ => key.to_owned(),
            };
            get(f).map(|v| Sourced { value: v.clone(), file: file.clone(), key })
        })
    }

    /// Every layer's table of a section (`ports`, `dns_config`), in order.
    pub(super) fn sections<S>(&self, get: impl Fn(&FileConfig) -> Option<&S>) -> Vec<&S> {
        self.0.iter().filter_map(|(_, f)| get(f)).collect()
    }

    /// Every layer's items of a list key, in order; `get` names each item's key.
    pub(super) fn all<T>(&self, get: impl Fn(&FileConfig) -> Vec<(String, T)>) -> Vec<Sourced<T>> {
        let mut out = Vec::new();
        for (file, f) in &self.0 {
            out.extend(get(f).into_iter().map(|(key, value)| Sourced { value, file: file.clone(), key }));
        }
        out
    }
}

/// The items of a list key, named `key[i]`.
pub(super) fn indexed<T: Clone>(key: &str, list: &[T]) -> Vec<(String, T)> {
    list.iter().enumerate().map(|(i, x)| (format!("{key}[{i}]"), x.clone())).collect()
}

/// The command line as a layer; values are checked here, errors name the flag.
pub(super) fn flag_layer(o: &Overrides) -> Result<FileConfig, ConfigError> {
    let err = |flag: &str, msg: String| ConfigError::Key { file: COMMAND_LINE.into(), key: flag.into(), msg };
    let ip = |flag: &str, v: &Option<String>| -> Result<Given<Ip>, ConfigError> {
        let ip: Option<IpAddr> = v.as_deref().map(value::parse_ip).transpose().map_err(|m| err(flag, m))?;
        Ok(Given(ip.map(Ip)))
    };
    let text = |v: &Option<String>| Given(v.clone().map(Text));
    let mut f = FileConfig {
        bind_addr: ip("-bind", &o.bind_addr)?,
        client_addr: ip("-client", &o.client_addr)?,
        ..FileConfig::default()
    };
    let recursors = o.recursors.iter().map(|r| value::parse_recursor(r).map(Recursor));
    f.recursors = List(recursors.collect::<Result<_, _>>().map_err(|m| err("-recursor", m))?);
    let port = |p: Option<i32>| Given(p.map(|p| Int(i64::from(p))));
    let fixed = |p: Option<u16>| Given(p.map(|p| Int(i64::from(p))));
    f.ports = Given(Some(Table(PortsFile {
        dns: port(o.dns_port),
        http: port(o.http_port),
        https: Given(None),
        server: fixed(o.server_port),
        serf_lan: fixed(o.serf_lan_port),
        serf_wan: port(o.serf_wan_port),
    })));
    f.advertise_addr_wan = ip("-advertise-wan", &o.advertise_wan)?;
    for (flag, given, list) in [
        ("-retry-join-wan", &o.retry_join_wan, &mut f.retry_join_wan.0),
        ("-join-wan", &o.join_wan, &mut f.start_join_wan.0),
    ] {
        for a in given {
            value::join_addr(a).map_err(|m| err(flag, m))?;
            list.push(JoinAddr(a.clone()));
        }
    }
    if let Some(key) = &o.encrypt {
        f.encrypt = Given(Some(EncryptKey(value::parse_key(key).map_err(|m| err("-encrypt", m))?)));
    }
    for a in &o.retry_join {
        value::join_addr(a).map_err(|m| err("-retry-join", m))?;
        f.retry_join.0.push(JoinAddr(a.clone()));
    }
    if o.raft_snapshot_threshold == Some(0) {
        return Err(err("-raft-snapshot-threshold", "must be at least 1".into()));
    }
    f.raft_snapshot_threshold = count(o.raft_snapshot_threshold);
    f.raft_trailing_logs = count(o.raft_trailing_logs);
    f.server = Given(o.server.then_some(Flag(true)));
    f.insecure_rpc = Given(o.insecure_rpc.then_some(Flag(true)));
    f.bootstrap_expect = Given(o.bootstrap_expect.map(|n| Int(i64::from(n))));
    f.datacenter = text(&o.datacenter);
    f.node_name = text(&o.node_name);
    f.domain = text(&o.domain);
    f.alt_domain = text(&o.alt_domain);
    f.log_level = text(&o.log_level);
    f.data_dir = Given(o.data_dir.clone().map(FilePath));
    f.zones_dir = Given(o.zones_dir.clone().map(FilePath));
    Ok(f)
}

/// A count flag; counts past `i64::MAX` mean "never" as much as `i64::MAX` does.
fn count<const MIN: i64, const MAX: i64>(n: Option<u64>) -> Given<Int<MIN, MAX>> {
    Given(n.map(|n| Int(i64::try_from(n).unwrap_or(i64::MAX))))
}
