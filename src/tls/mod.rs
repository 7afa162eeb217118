//! TLS for every interface: this agent's certificates and CA loaded from PEM files into the
//! rustls configurations HTTPS and the server RPC use, reloaded on SIGHUP.
//!
//! Stage: `Config` (its `tls` settings) -> rustls configs, held in an `ArcSwap`. Input: the
//! resolved settings (`config::tls` has mapped Consul's flat keys and the `tls {}` block and
//! run Consul's start-up checks) and the files they name. Output: acceptors and connectors
//! built from the current configuration at each call, so every handshake uses the newest
//! certificates while open connections keep the session they have.
//!
//! Invariants: security settings never fail open: a file that cannot be read or parsed at
//! start stops the agent with the file named; at a reload it keeps the previous configuration
//! (`reload` returns the error, the caller logs one line). Client certificates are required
//! exactly when `verify_incoming` holds for the interface; outgoing server RPC checks the
//! server against the CA when `verify_outgoing` holds, and its name `server.<datacenter>.<domain>`
//! with `verify_server_hostname` (`build`). The ring provider is the one crypto provider.
//!
//! The crate-internal API (the HTTPS listener in `http`, the server RPC in `rpc`/`serve_rpc`):
//!
//! - `Tls::load(&Config)` at start, `Tls::reload(&Config)` on SIGHUP (through `app::Reloader`).
//! - `https_acceptor()`: the HTTPS acceptor (ALPN `h2`, `http/1.1`), `None` without HTTPS
//!   certificates; `https_handshake_timeout()`.
//! - `rpc_acceptor()`: the server RPC's acceptor, `Some` whenever this agent has a
//!   certificate for the RPC (incoming TLS is then accepted); `verify_incoming_rpc()`: a
//!   connection that does not start a TLS handshake must be refused (Consul logs
//!   `Non-TLS connection attempted with VerifyIncoming set`); `rpc_handshake_timeout()`.
//! - `rpc_connector()`: `Some((connector, server_name))` when `verify_outgoing` holds: dial
//!   servers with TLS, sending `server_name` as SNI (`server.<dc>.<domain>`, checked only with
//!   `verify_server_hostname`); `verify_outgoing()` says whether outgoing RPC must use TLS.
//! - `rpc_peer_server_name()` and `certificate_is_for()`: with `verify_incoming_rpc` and
//!   `verify_server_hostname`, the name an accepted peer needs to speak Raft (cairn's own
//!   check, beyond Consul's outgoing-only one).
//! - `verify` (rustls verifiers, the ring provider, system roots) and `load::dir_files` (a CA
//!   directory's files): shared with the CLI's and the health checks' TLS clients.
//!
//! Own code over a crate: PEM parsing and certificate checks are rustls' and pki-types';
//! what is here is only Consul's mapping (names of versions and suites, chain-only checking
//! without `verify_server_hostname`, which rustls has no switch for).

mod build;
pub(crate) mod load;
pub(crate) mod verify;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{Config, TlsConfig};

/// Why TLS could not be set up; the message names the file or the setting.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// A certificate or key file could not be read or used.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The CA could not be loaded (Consul's messages).
    #[error("{0}")]
    Ca(String),
    /// A setting cannot be honoured (`unsupported cipher "x"`).
    #[error("{0}")]
    Setting(String),
    /// rustls refused the combination of settings.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    fn file(path: &Path, msg: impl std::fmt::Display) -> Self {
        Self::File { path: path.display().to_string(), msg: msg.to_string() }
    }
}

/// The rustls configurations of one generation of files.
struct Loaded {
    settings: TlsConfig,
    https: Option<Arc<ServerConfig>>,
    rpc_server: Option<Arc<ServerConfig>>,
    /// The outgoing config and the name it sends as SNI (and checks with
    /// `verify_server_hostname`).
    rpc_client: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// The agent's TLS configurations; cheap to read per handshake, swapped whole on reload.
pub(crate) struct Tls {
    current: ArcSwap<Loaded>,
}

impl Tls {
    /// Loads every configured certificate, key and CA; an error stops the start.
    pub(crate) fn load(config: &Config) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self { current: ArcSwap::from_pointee(loaded(config)?) }))
    }

    /// Reads the files again (and the settings of a reloaded `config`); on an error the
    /// running configuration stays and the error is returned for the log.
    pub(crate) fn reload(&self, config: &Config) -> Result<(), TlsError> {
        self.current.store(Arc::new(loaded(config)?));
        Ok(())
    }

    /// The HTTPS acceptor of the current certificates, if HTTPS has any.
    pub(crate) fn https_acceptor(&self) -> Option<TlsAcceptor> {
        self.current.load().https.clone().map(TlsAcceptor::from)
    }

    /// `limits.https_handshake_timeout`.
    pub(crate) fn https_handshake_timeout(&self) -> Duration {
        self.current.load().settings.https_handshake_timeout
    }
}

/// The server RPC's half, for `serve_rpc` and `rpc`'s pool (see the module doc).
impl Tls {
    /// The server RPC's acceptor of the current certificates, if this agent has one.
    pub(crate) fn rpc_acceptor(&self) -> Option<TlsAcceptor> {
        self.current.load().rpc_server.clone().map(TlsAcceptor::from)
    }

    /// The outgoing RPC connector and the server name to send, when `verify_outgoing` holds.
    pub(crate) fn rpc_connector(&self) -> Option<(TlsConnector, ServerName<'static>)> {
        let cur = self.current.load();
        cur.rpc_client.as_ref().map(|(c, name)| (TlsConnector::from(c.clone()), name.clone()))
    }

    /// Whether the server RPC must refuse connections without a verified client certificate.
    pub(crate) fn verify_incoming_rpc(&self) -> bool {
        self.current.load().settings.internal_rpc.verify_incoming
    }

    /// Whether outgoing server RPC must use TLS and check the server.
    pub(crate) fn verify_outgoing(&self) -> bool {
        self.current.load().settings.internal_rpc.verify_outgoing
    }

    /// The name an accepted server-RPC peer's certificate must be valid for to speak Raft or
    /// change the membership (`server.<dc>.<domain>`): `Some` when `verify_incoming_rpc` and
    /// `verify_server_hostname` both hold, so a `-client` certificate never passes for a server
    /// on either end of a connection.
    pub(crate) fn rpc_peer_server_name(&self) -> Option<ServerName<'static>> {
        let cur = self.current.load();
        let rpc = &cur.settings.internal_rpc;
        if !(rpc.verify_incoming && rpc.verify_server_hostname) {
            return None;
        }
        cur.rpc_client.as_ref().map(|(_, name)| name.clone())
    }

    /// `limits.rpc_handshake_timeout`.
    pub(crate) fn rpc_handshake_timeout(&self) -> Duration {
        self.current.load().settings.rpc_handshake_timeout
    }
}

/// Whether `cert` (a peer's end-entity certificate, its chain already verified) is valid for
/// `name`; a certificate that does not parse is valid for nothing.
pub(crate) fn certificate_is_for(cert: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    rustls::server::ParsedCertificate::try_from(cert)
        .is_ok_and(|parsed| rustls::client::verify_server_name(&parsed, name).is_ok())
}

/// Builds every configuration of `config` from its files.
fn loaded(config: &Config) -> Result<Loaded, TlsError> {
    let t = &config.tls;
    Ok(Loaded {
        settings: t.clone(),
        https: build::server(&t.https, build::HTTPS_ALPN)?,
        rpc_server: build::server(&t.internal_rpc, &[])?,
        rpc_client: match build::client(&t.internal_rpc)? {
            Some(c) => Some((c, server_name(config)?)),
            None => None,
        },
    })
}

/// The name outgoing RPC sends: `server.<datacenter>.<domain>`, the name every server's
/// certificate is valid for; without `verify_server_hostname`, `server_name` when set (as
/// in Consul, where it is only the SNI then).
fn server_name(config: &Config) -> Result<ServerName<'static>, TlsError> {
    let domain = config.domain.trim_end_matches('.');
    let name = match &config.tls.server_name {
        Some(name) if !config.tls.internal_rpc.verify_server_hostname => name.clone(),
        _ => format!("server.{}.{domain}", config.datacenter),
    };
    ServerName::try_from(name.clone())
        .map_err(|_| TlsError::Setting(format!("{name:?} is not a valid server name")))
}

#[cfg(test)]
mod tests;
