//! The file schema: one config file (Consul JSON or TOML) as serde reads it.
//!
//! Stage: file -> schema. Input: one file's JSON tree, with the keys `keys` sets aside (accepted
//! but unused) already taken out. Output: `FileConfig`, every value checked on its own
//! by its value type (`value`); checks that need other keys or other files wait for `validate`.
//! Invariants: an unknown key is an error (`deny_unknown_fields`); a key is spelled as Consul
//! spells it. Consul's alternative spellings (`advertise_addr`, `start_join`, `bootstrap`) are
//! fields of their own, not `#[serde(alias)]`: a file may hold both spellings today, and an
//! alias would turn that into a duplicate-key error.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::value::{
    CheckDef, Count, EncryptKey, FileMode, FilePath, FixedPort, Flag, Given, GoDuration, Int, Ip, JoinAddr,
    List, ListenAddrs, OneOrList, Port, Positive, Recursor, ServiceDef, Strategy, Table, Text,
    TlsVersionName,
};

/// One config file's keys; absent keys are `Given(None)` / empty lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) datacenter: Given<Text>,
    pub(super) node_name: Given<Text>,
    pub(super) node_id: Given<Text>,
    /// Consul's `node_meta`: the agent's node metadata (merged across files, key by key).
    pub(super) node_meta: Given<Table<BTreeMap<String, Text>>>,
    pub(super) domain: Given<Text>,
    pub(super) alt_domain: Given<Text>,
    pub(super) data_dir: Given<FilePath>,
    pub(super) zones_dir: Given<FilePath>,
    pub(super) log_level: Given<Text>,
    /// `/debug/pprof/*` without a token (`http::debug`).
    pub(super) enable_debug: Given<Flag>,
    pub(super) server: Given<Flag>,
    /// Consul's `bootstrap = true`: the same as `bootstrap_expect = 1`.
    pub(super) bootstrap: Given<Flag>,
    pub(super) bootstrap_expect: Given<Int<0, 1024>>,
    pub(super) bind_addr: Given<Ip>,
    /// Consul's advertised address; cairn advertises `bind_addr`, so it sets that.
    pub(super) advertise_addr: Given<Ip>,
    pub(super) client_addr: Given<Ip>,
    pub(super) retry_join: List<JoinAddr>,
    /// Consul's older spelling of `retry_join`; appended after it.
    pub(super) start_join: List<JoinAddr>,
    /// A server's WAN pool joins (`-retry-join-wan`); a bare host is tried on port 8302.
    pub(super) retry_join_wan: List<JoinAddr>,
    /// Consul's older spelling of `retry_join_wan` (`-join-wan`); appended after it.
    pub(super) start_join_wan: List<JoinAddr>,
    /// What other datacenters' servers dial for WAN gossip.
    pub(super) advertise_addr_wan: Given<Ip>,
    /// Consul's `-serf-wan-bind`: the address the WAN pool binds.
    pub(super) serf_wan: Given<Ip>,
    pub(super) retry_interval_wan: Given<GoDuration>,
    pub(super) retry_max_wan: Given<Int<0, { i64::MAX }>>,
    pub(super) raft_snapshot_threshold: Given<Int<1, { i64::MAX }>>,
    pub(super) raft_trailing_logs: Given<Int<0, { i64::MAX }>>,
    pub(super) anti_entropy_interval: Given<Positive>,
    pub(super) encrypt: Given<EncryptKey>,
    /// Serve the server RPC beyond loopback with neither `encrypt` nor TLS (`rpc::auth`).
    pub(super) insecure_rpc: Given<Flag>,
    /// Consul's `disable_keyring_file`: keep the gossip keyring in memory only.
    pub(super) disable_keyring_file: Given<Flag>,
    /// Consul's rolling enable of gossip encryption: accept unencrypted gossip and RPC.
    pub(super) encrypt_verify_incoming: Given<Flag>,
    /// Consul's rolling enable of gossip encryption: send encrypted gossip, prove the key on RPC.
    pub(super) encrypt_verify_outgoing: Given<Flag>,
    pub(super) recursors: List<Recursor>,
    pub(super) enable_script_checks: Given<Flag>,
    pub(super) enable_local_script_checks: Given<Flag>,
    pub(super) check_update_interval: Given<GoDuration>,
    pub(super) check_output_max_size: Given<Int<1, { u32::MAX as i64 }>>,
    pub(super) check_deregister_interval_min: Given<GoDuration>,
    pub(super) check_reap_interval: Given<Positive>,
    pub(super) ports: Given<Table<PortsFile>>,
    pub(super) addresses: Given<Table<AddressesFile>>,
    pub(super) unix_sockets: Given<Table<UnixSocketsFile>>,
    pub(super) dns_config: Given<Table<DnsFile>>,
    pub(super) autopilot: Given<Table<AutopilotFile>>,
    /// One service definition, or a list (`service[1]`).
    pub(super) service: Given<OneOrList>,
    pub(super) services: List<ServiceDef>,
    /// One node or service check definition, or a list (`check[1]`).
    pub(super) check: Given<OneOrList>,
    pub(super) checks: List<CheckDef>,
    // TLS, Consul 1.8's flat keys (`config::tls` maps them onto the `tls {}` block).
    pub(super) ca_file: Given<FilePath>,
    pub(super) ca_path: Given<FilePath>,
    pub(super) cert_file: Given<FilePath>,
    pub(super) key_file: Given<FilePath>,
    pub(super) verify_incoming: Given<Flag>,
    pub(super) verify_incoming_rpc: Given<Flag>,
    pub(super) verify_incoming_https: Given<Flag>,
    pub(super) verify_outgoing: Given<Flag>,
    pub(super) verify_server_hostname: Given<Flag>,
    pub(super) tls_min_version: Given<TlsVersionName>,
    pub(super) tls_cipher_suites: Given<Text>,
    pub(super) server_name: Given<Text>,
    /// The modern `tls { defaults, internal_rpc, https, grpc }` block.
    pub(super) tls: Given<Table<TlsFile>>,
    /// `limits {}`, or Consul's `[[limits]]` (a list of tables, read as one).
    pub(super) limits: Given<Limits>,
    // ACLs (`config::acl` merges the spellings).
    pub(super) acl: Given<Table<AclFile>>,
    pub(super) primary_datacenter: Given<Text>,
    // Consul's pre-1.4 top-level ACL keys, still read by 1.8.
    pub(super) acl_datacenter: Given<Text>,
    pub(super) acl_default_policy: Given<Text>,
    pub(super) acl_down_policy: Given<Text>,
    pub(super) acl_master_token: Given<Text>,
    pub(super) acl_token: Given<Text>,
    pub(super) acl_agent_token: Given<Text>,
    pub(super) acl_agent_master_token: Given<Text>,
    pub(super) acl_replication_token: Given<Text>,
    pub(super) acl_ttl: Given<GoDuration>,
    pub(super) enable_acl_replication: Given<Flag>,
}

/// `acl {}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct AclFile {
    pub(super) enabled: Given<Flag>,
    pub(super) default_policy: Given<Text>,
    pub(super) down_policy: Given<Text>,
    pub(super) enable_key_list_policy: Given<Flag>,
    pub(super) enable_token_persistence: Given<Flag>,
    pub(super) enable_token_replication: Given<Flag>,
    pub(super) token_ttl: Given<GoDuration>,
    pub(super) policy_ttl: Given<GoDuration>,
    pub(super) role_ttl: Given<GoDuration>,
    pub(super) tokens: Given<Table<AclTokensFile>>,
}

/// `acl.tokens {}`: 1.8's names and the 1.11+ ones (`initial_management`, `agent_recovery`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct AclTokensFile {
    pub(super) master: Given<Text>,
    pub(super) initial_management: Given<Text>,
    pub(super) agent: Given<Text>,
    pub(super) agent_master: Given<Text>,
    pub(super) agent_recovery: Given<Text>,
    pub(super) default: Given<Text>,
    pub(super) replication: Given<Text>,
}

/// `tls {}`. `tls.grpc` is set aside before the schema (cairn serves no gRPC; `keys`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct TlsFile {
    pub(super) defaults: Given<Table<TlsSection>>,
    pub(super) internal_rpc: Given<Table<TlsSection>>,
    pub(super) https: Given<Table<TlsSection>>,
}

/// One interface's table of `tls {}` (`defaults`, `internal_rpc`, `https`);
/// `verify_server_hostname` belongs to `defaults` and `internal_rpc` only (checked in `tls`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct TlsSection {
    pub(super) ca_file: Given<FilePath>,
    pub(super) ca_path: Given<FilePath>,
    pub(super) cert_file: Given<FilePath>,
    pub(super) key_file: Given<FilePath>,
    pub(super) verify_incoming: Given<Flag>,
    pub(super) verify_outgoing: Given<Flag>,
    pub(super) verify_server_hostname: Given<Flag>,
    pub(super) tls_min_version: Given<TlsVersionName>,
    pub(super) tls_cipher_suites: Given<Text>,
}

/// `limits {}`: the keys cairn acts on (the others are set aside as unused by `keys`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LimitsFile {
    pub(super) https_handshake_timeout: Given<Positive>,
    pub(super) rpc_handshake_timeout: Given<Positive>,
}

/// `limits` as a table or a list of tables; a later table's key wins.
#[derive(Debug, Clone, Default)]
pub(super) struct Limits(pub(super) LimitsFile);

impl<'de> Deserialize<'de> for Limits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LimitsVisitor)
    }
}

/// Reads `limits` through the tracked accessors, so an error inside names its key.
struct LimitsVisitor;

impl<'de> Visitor<'de> for LimitsVisitor {
    type Value = Limits;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table/object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Limits, A::Error> {
        LimitsFile::deserialize(de::value::MapAccessDeserializer::new(map)).map(Limits)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Limits, A::Error> {
        let mut out = LimitsFile::default();
        while let Some(t) = seq.next_element::<Table<LimitsFile>>()? {
            let t = t.0;
            if t.https_handshake_timeout.0.is_some() {
                out.https_handshake_timeout = t.https_handshake_timeout;
            }
            if t.rpc_handshake_timeout.0.is_some() {
                out.rpc_handshake_timeout = t.rpc_handshake_timeout;
            }
        }
        Ok(Limits(out))
    }
}

/// `ports {}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct PortsFile {
    pub(super) dns: Given<Port>,
    pub(super) http: Given<Port>,
    /// -1 (Consul's default) disables HTTPS; 0 asks the OS for a free port, as for the others.
    pub(super) https: Given<Port>,
    pub(super) server: Given<FixedPort>,
    pub(super) serf_lan: Given<FixedPort>,
    /// -1 disables the WAN pool.
    pub(super) serf_wan: Given<Port>,
}

/// `addresses {}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct AddressesFile {
    pub(super) dns: Given<Ip>,
    pub(super) http: Given<ListenAddrs>,
    pub(super) https: Given<Ip>,
}

/// `unix_sockets {}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct UnixSocketsFile {
    pub(super) user: Given<Text>,
    pub(super) group: Given<Text>,
    pub(super) mode: Given<FileMode>,
}

/// `autopilot {}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct AutopilotFile {
    pub(super) cleanup_dead_servers: Given<Flag>,
}

/// `dns_config {}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct DnsFile {
    pub(super) allow_stale: Given<Flag>,
    pub(super) max_stale: Given<GoDuration>,
    pub(super) node_ttl: Given<GoDuration>,
    /// TTL per service name (`"db*"` prefixes allowed); merged per name across files.
    pub(super) service_ttl: Given<Table<BTreeMap<String, GoDuration>>>,
    pub(super) enable_truncate: Given<Flag>,
    pub(super) only_passing: Given<Flag>,
    pub(super) strict_rfc: Given<Flag>,
    pub(super) weighted_shuffle: Given<Flag>,
    pub(super) recursor_strategy: Given<Strategy>,
    pub(super) recursor_timeout: Given<GoDuration>,
    pub(super) disable_compression: Given<Flag>,
    pub(super) udp_answer_limit: Given<Count>,
    pub(super) a_record_limit: Given<Count>,
    pub(super) enable_additional_node_meta_txt: Given<Flag>,
    pub(super) soa: Given<Table<SoaFile>>,
}

/// `dns_config.soa {}`. Every value is a count, and it is checked before its key: an unknown
/// key with a bad value reports the value (`dns_config.soa.minimum: -1 is out of range`).
#[derive(Debug, Clone, Default)]
pub(super) struct SoaFile {
    pub(super) refresh: Given<Count>,
    pub(super) retry: Given<Count>,
    pub(super) expire: Given<Count>,
    pub(super) min_ttl: Given<Count>,
}

impl SoaFile {
    /// The field a key names, if any.
    fn field(&mut self, key: &str) -> Option<&mut Given<Count>> {
        match key {
            "refresh" => Some(&mut self.refresh),
            "retry" => Some(&mut self.retry),
            "expire" => Some(&mut self.expire),
            "min_ttl" => Some(&mut self.min_ttl),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for SoaFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SoaVisitor)
    }
}

/// Reads `dns_config.soa` key by key (see `SoaFile`).
struct SoaVisitor;

impl<'de> Visitor<'de> for SoaVisitor {
    type Value = SoaFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SoaFile, A::Error> {
        let mut soa = SoaFile::default();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(SoaValue(soa.field(&key)))?;
        }
        Ok(soa)
    }
}

/// One `dns_config.soa` value, stored in its field; no field means an unknown key.
struct SoaValue<'a>(Option<&'a mut Given<Count>>);

impl<'de> DeserializeSeed<'de> for SoaValue<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let n = Count::deserialize(d)?;
        let slot = self.0.ok_or_else(|| de::Error::custom("unknown configuration key"))?;
        *slot = Given(Some(n));
        Ok(())
    }
}
