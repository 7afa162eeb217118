//! Building rustls configurations from one interface's settings: the crypto provider (ring,
//! with `tls_min_version` and `tls_cipher_suites` applied), the HTTPS and server-RPC acceptor
//! configs, and the outgoing server-RPC client config.
//!
//! Stage: settings + PEM files -> rustls configs. Input: a `TlsInterface` (and, outgoing, the
//! name servers must present). Output: `ServerConfig` / `ClientConfig`, or an error naming
//! the setting or the file. Invariants: client certificates are required and checked against
//! the CA (`WebPkiClientVerifier`) exactly when `verify_incoming` is on, and not requested
//! otherwise (Go's default `NoClientCert`, which Consul keeps); an outgoing config checks the
//! server's chain against the CA always, and its name only with `verify_server_hostname`
//! (`ChainOnly`, Consul's chain-only check for the other case); rustls offers TLS 1.2 and 1.3
//! only, so `tls10`/`tls11` mean TLS 1.2 (stricter, never weaker than asked).

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::{CryptoProvider, ring};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use super::verify::{self, NameCheck, WebPkiWith};
use super::{TlsError, load};
use crate::config::{TlsInterface, TlsVersion};

/// ALPN for HTTPS: HTTP/2 first, then HTTP/1.1 (Consul's `TestHTTPServer_H2`).
pub(super) const HTTPS_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Consul's Go cipher suite names (tlsutil `ParseCiphers`) and the ring suite of each, if
/// rustls has it (rustls offers no CBC, RC4, 3DES or static-RSA suites).
const GO_SUITES: &[(&str, Option<SupportedCipherSuite>)] = {
    use ring::cipher_suite as s;
    &[
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", Some(s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", Some(s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)),
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Some(s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)),
        ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", Some(s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)),
        ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", Some(s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            Some(s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", Some(s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Some(s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", None),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", None),
        ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", None),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", None),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", None),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", None),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", None),
        ("TLS_RSA_WITH_AES_256_GCM_SHA384", None),
        ("TLS_RSA_WITH_AES_128_CBC_SHA256", None),
        ("TLS_RSA_WITH_AES_128_CBC_SHA", None),
        ("TLS_RSA_WITH_AES_256_CBC_SHA", None),
        ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", None),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", None),
        ("TLS_RSA_WITH_RC4_128_SHA", None),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", None),
        ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", None),
    ]
};

/// The ring provider with `tls_cipher_suites` applied: the TLS 1.3 suites (not configurable,
/// as in Go) and the named TLS 1.2 ones. A name Go does not know is refused; one rustls
/// lacks is skipped with a warning, unless that leaves none.
pub(super) fn provider(t: &TlsInterface) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut p = ring::default_provider();
    if t.cipher_suites.is_empty() {
        return Ok(Arc::new(p));
    }
    let mut tls12 = Vec::new();
    for name in &t.cipher_suites {
        match GO_SUITES.iter().find(|(n, _)| n == name) {
            None => return Err(TlsError::Setting(format!("unsupported cipher {name:?}"))),
            Some((_, Some(suite))) => tls12.push(*suite),
            Some((_, None)) => {
                tracing::warn!(cipher = %name, "tls_cipher_suites: not offered by cairn's TLS stack (rustls); skipped")
            }
        }
    }
    if tls12.is_empty() && t.min_version < TlsVersion::Tls13 {
        return Err(TlsError::Setting(
            "tls_cipher_suites: none of the suites is offered by cairn's TLS stack (rustls has the ECDHE GCM and ChaCha20 suites)".into(),
        ));
    }
    p.cipher_suites.retain(|s| s.version() == &rustls::version::TLS13);
    p.cipher_suites.extend(tls12);
    Ok(Arc::new(p))
}

/// TLS 1.3 only (`tls_min_version = "tls13"`).
static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The protocol versions from `tls_min_version`.
fn versions(t: &TlsInterface) -> &'static [&'static SupportedProtocolVersion] {
    match t.min_version {
        TlsVersion::Tls13 => TLS13_ONLY,
        _ => rustls::ALL_VERSIONS,
    }
}

/// An acceptor config (HTTPS or server RPC) with this agent's certificate; `None` without
/// one. Client certificates are required and verified when `verify_incoming` is on.
pub(super) fn server(t: &TlsInterface, alpn: &[&[u8]]) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&t.cert_file, &t.key_file) else {
        return Ok(None);
    };
    let provider = provider(t)?;
    // Loaded even without verify_incoming, so a broken CA file fails now, not at first use.
    let roots = load::roots(t)?;
    let chain = load::certs(cert_file)?;
    let key = load::key(key_file)?;
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions(t))?;
    let builder = match (t.verify_incoming, roots) {
        (true, Some(roots)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Setting(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        (true, None) => {
            return Err(TlsError::Setting("VerifyIncoming set but no CA certificates were provided".into()));
        }
        (false, _) => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::file(cert_file, e))?;
    config.alpn_protocols = verify::alpn(alpn);
    Ok(Some(Arc::new(config)))
}

/// The outgoing server-RPC config when `verify_outgoing` is on: the server's chain checked
/// against the CA (and its name with `verify_server_hostname`); this agent's certificate is
/// presented as the client certificate when it has one.
pub(super) fn client(t: &TlsInterface) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    if !t.verify_outgoing {
        return Ok(None);
    }
    let provider = provider(t)?;
    let Some(roots) = load::roots(t)? else {
        return Err(TlsError::Setting("VerifyOutgoing set, and no CA certificate provided!".into()));
    };
    let webpki = verify::webpki(roots, provider.clone())
        .map_err(|e| TlsError::Setting(format!("server certificate verifier: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if t.verify_server_hostname {
        webpki
    } else {
        Arc::new(WebPkiWith::new(webpki, NameCheck::ChainOnly))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(t))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&t.cert_file, &t.key_file) {
        (Some(cert_file), Some(key_file)) => builder
            .with_client_auth_cert(load::certs(cert_file)?, load::key(key_file)?)
            .map_err(|e| TlsError::file(cert_file, e))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}
