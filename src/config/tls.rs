//! TLS settings: Consul 1.8's flat keys and the modern `tls {}` block resolved per interface,
//! and Consul's start-up checks on the result.
//!
//! Stage: merged view -> `TlsConfig` (part of `validate`). Input: `Layers`, `ports.https`.
//! Output: the settings of the server RPC (`internal_rpc`) and of HTTPS, or an error naming
//! the file and key. The certificate files themselves are read by `crate::tls` at start.
//!
//! Mapping (spec §2.1, §2.6): a flat key is the matching `tls.defaults` key (`ca_file`,
//! `ca_path`, `cert_file`, `key_file`, `verify_incoming`, `verify_outgoing`,
//! `tls_min_version`, `tls_cipher_suites`) or interface key (`verify_incoming_rpc` is
//! `tls.internal_rpc.verify_incoming`, `verify_incoming_https` is `tls.https.verify_incoming`,
//! `verify_server_hostname` is `tls.internal_rpc.verify_server_hostname`). A per-interface
//! value beats `defaults`. The same setting given both ways with different values is refused.
//!
//! Invariants: security settings never fail open. `verify_incoming` and its per-interface
//! flat key combine as in 1.8 (either one turns checking on); only an explicit per-interface
//! `tls.<interface>.verify_incoming` overrides `defaults`. `verify_server_hostname` implies
//! `verify_outgoing`. HTTPS without a certificate refuses to start (Consul 1.8 would open a
//! listener whose every handshake fails).

use std::time::Duration;

use super::merge::{Layers, Sourced};
use super::schema::{FileConfig, TlsSection};
use super::value::{FilePath, Flag, Text, TlsVersionName};
use super::{ConfigError, TlsConfig, TlsInterface};

/// Default `limits.https_handshake_timeout` and `limits.rpc_handshake_timeout` (Consul's).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables of `tls {}` that configure an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Defaults,
    InternalRpc,
    Https,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Self::Defaults => "defaults",
            Self::InternalRpc => "internal_rpc",
            Self::Https => "https",
        }
    }

    /// This part's table in one layer.
    fn of(self, f: &FileConfig) -> Option<&TlsSection> {
        let t = &f.tls.get()?.0;
        let part = match self {
            Self::Defaults => &t.defaults,
            Self::InternalRpc => &t.internal_rpc,
            Self::Https => &t.https,
        };
        part.get().map(|p| &p.0)
    }
}

/// Reads one setting given as a flat key and as `tls.<part>.<key>`.
struct Setting<'a> {
    layers: &'a Layers,
}

impl Setting<'_> {
    /// The value of `tls.<part>.<key>`, with its source.
    fn modern<T: Clone>(
        &self,
        part: Part,
        key: &str,
        get: impl Fn(&TlsSection) -> Option<&T>,
    ) -> Option<Sourced<T>> {
        let name = format!("tls.{}.{key}", part.name());
        self.layers.last_sourced(&name, |f| get(part.of(f)?))
    }

    /// The flat key `flat` and `tls.<part>.<key>` as one value; different values are refused.
    fn both<T: Clone + PartialEq>(
        &self,
        flat: &str,
        get_flat: impl Fn(&FileConfig) -> Option<&T>,
        part: Part,
        key: &str,
        get: impl Fn(&TlsSection) -> Option<&T>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        let old = self.layers.last_sourced(flat, get_flat);
        let new = self.modern(part, key, get);
        match (old, new) {
            (Some(o), Some(n)) if o.value != n.value => Err(n.err(format!(
                "conflicts with {} in {}: give the setting one way, or the same value both ways",
                o.key, o.file
            ))),
            (o, n) => Ok(n.or(o)),
        }
    }

    /// A setting whose flat key is a `defaults` key: the interface's own value, else the
    /// defaults (flat or `tls.defaults`).
    fn value<T: Clone + PartialEq>(
        &self,
        part: Part,
        key: &str,
        get_flat: impl Fn(&FileConfig) -> Option<&T>,
        get: impl Fn(&TlsSection) -> Option<&T> + Copy,
    ) -> Result<Option<T>, ConfigError> {
        let defaults = self.both(key, get_flat, Part::Defaults, key, get)?;
        let own = if part == Part::Defaults { None } else { self.modern(part, key, get) };
        Ok(own.or(defaults).map(|s| s.value))
    }
}

/// Resolves `TlsConfig` and runs Consul's start-up checks. `ports.https` without a certificate
/// is not an error: as in Consul, HTTPS is then not served (`validate` turns the port off).
pub(super) fn resolve(layers: &Layers) -> Result<TlsConfig, ConfigError> {
    let s = Setting { layers };
    if let Some(v) = s.modern(Part::Https, "verify_server_hostname", |t| t.verify_server_hostname.get()) {
        return Err(v.err("applies to the server RPC only: set it in tls.internal_rpc or tls.defaults"));
    }
    let internal_rpc = interface(&s, Part::InternalRpc)?;
    let https = interface(&s, Part::Https)?;
    check(layers, "internal_rpc", &internal_rpc)?;
    check(layers, "https", &https)?;
    let limits = layers.sections(|f| f.limits.get().map(|l| &l.0));
    let timeout = |get: fn(&super::schema::LimitsFile) -> Option<&super::value::Positive>| {
        limits.iter().rev().find_map(|l| get(l)).map_or(HANDSHAKE_TIMEOUT, |d| d.0)
    };
    Ok(TlsConfig {
        internal_rpc,
        https,
        server_name: layers.last(|f| f.server_name.get()).map(|t: Text| t.0).filter(|n| !n.is_empty()),
        https_handshake_timeout: timeout(|l| l.https_handshake_timeout.get()),
        rpc_handshake_timeout: timeout(|l| l.rpc_handshake_timeout.get()),
    })
}

/// An error about a setting that comes from no file in particular.
fn missing(key: &str, msg: &str) -> ConfigError {
    ConfigError::Key { file: "config".into(), key: key.into(), msg: msg.into() }
}

/// One interface's settings.
fn interface(s: &Setting<'_>, part: Part) -> Result<TlsInterface, ConfigError> {
    let path =
        |key: &str, flat: fn(&FileConfig) -> Option<&FilePath>, get: fn(&TlsSection) -> Option<&FilePath>| {
            s.value(part, key, flat, get).map(|p| p.map(|p| p.0).filter(|p| !p.as_os_str().is_empty()))
        };
    let ca_file = path("ca_file", |f| f.ca_file.get(), |t| t.ca_file.get())?;
    let ca_path = path("ca_path", |f| f.ca_path.get(), |t| t.ca_path.get())?;
    let cert_file = path("cert_file", |f| f.cert_file.get(), |t| t.cert_file.get())?;
    let key_file = path("key_file", |f| f.key_file.get(), |t| t.key_file.get())?;
    let min_version =
        s.value(part, "tls_min_version", |f| f.tls_min_version.get(), |t| t.tls_min_version.get())?;
    let suites =
        s.value(part, "tls_cipher_suites", |f| f.tls_cipher_suites.get(), |t| t.tls_cipher_suites.get())?;
    let verify_outgoing =
        s.value(part, "verify_outgoing", |f| f.verify_outgoing.get(), |t| t.verify_outgoing.get())?;
    let verify_server_hostname = match part {
        Part::InternalRpc => {
            let own = s.both(
                "verify_server_hostname",
                |f| f.verify_server_hostname.get(),
                Part::InternalRpc,
                "verify_server_hostname",
                |t| t.verify_server_hostname.get(),
            )?;
            let defaults =
                s.modern(Part::Defaults, "verify_server_hostname", |t| t.verify_server_hostname.get());
            own.or(defaults).is_some_and(|f: Sourced<Flag>| f.value.0)
        }
        _ => false,
    };
    Ok(TlsInterface {
        ca_file,
        ca_path,
        cert_file,
        key_file,
        verify_incoming: verify_incoming(s, part)?,
        // Consul: verify_server_hostname implies verify_outgoing (CVE-2018-19653).
        verify_outgoing: verify_server_hostname || verify_outgoing.is_some_and(|f| f.0),
        verify_server_hostname,
        min_version: min_version.map(|v: TlsVersionName| v.0).unwrap_or_default(),
        cipher_suites: suites.map_or_else(Vec::new, |t: Text| cipher_names(&t.0)),
    })
}

/// `verify_incoming` of an interface: its own `tls.<part>.verify_incoming` when given, else
/// 1.8's rule: `verify_incoming` (or `tls.defaults.verify_incoming`) or the interface's flat key.
fn verify_incoming(s: &Setting<'_>, part: Part) -> Result<bool, ConfigError> {
    let defaults = s.both(
        "verify_incoming",
        |f| f.verify_incoming.get(),
        Part::Defaults,
        "verify_incoming",
        verify_incoming_of,
    )?;
    let on = |v: Option<Sourced<Flag>>| v.is_some_and(|f| f.value.0);
    let own = match part {
        Part::Defaults => return Ok(on(defaults)),
        Part::InternalRpc => s.both(
            "verify_incoming_rpc",
            |f| f.verify_incoming_rpc.get(),
            part,
            "verify_incoming",
            verify_incoming_of,
        )?,
        Part::Https => s.both(
            "verify_incoming_https",
            |f| f.verify_incoming_https.get(),
            part,
            "verify_incoming",
            verify_incoming_of,
        )?,
    };
    let explicit = s.modern(part, "verify_incoming", verify_incoming_of);
    Ok(match explicit {
        Some(v) => v.value.0,
        None => on(own) || on(defaults),
    })
}

fn verify_incoming_of(t: &TlsSection) -> Option<&Flag> {
    t.verify_incoming.get()
}

/// `tls_cipher_suites`: a comma-separated list of names.
fn cipher_names(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// Consul's start-up checks (tlsutil `check`), with its messages, for one interface.
fn check(layers: &Layers, part: &str, t: &TlsInterface) -> Result<(), ConfigError> {
    let err = |key: &str, msg: &str| {
        let flat = layers.last_sourced(key, |f| match key {
            "verify_outgoing" => f.verify_outgoing.get().or(f.verify_server_hostname.get()),
            "cert_file" => f.cert_file.get().map(|_| &TRUE).or(f.key_file.get().map(|_| &TRUE)),
            _ => f.verify_incoming.get(),
        });
        flat.map_or_else(|| missing(&format!("tls.{part}.{key}"), msg), |s| s.err(msg))
    };
    if t.cert_file.is_some() != t.key_file.is_some() {
        return Err(err("cert_file", "cert_file and key_file must be given together"));
    }
    if part == "internal_rpc" && t.verify_outgoing && !t.has_ca() {
        return Err(err("verify_outgoing", "VerifyOutgoing set, and no CA certificate provided!"));
    }
    if t.verify_incoming && !t.has_ca() {
        return Err(err("verify_incoming", "VerifyIncoming set but no CA certificates were provided"));
    }
    if t.verify_incoming && !t.has_cert() {
        return Err(err(
            "verify_incoming",
            "VerifyIncoming requires either a Cert and Key pair in the configuration file, or auto_encrypt/auto_config be enabled",
        ));
    }
    Ok(())
}

/// A placeholder value for `check`'s source lookup of the certificate keys.
const TRUE: Flag = Flag(true);
