//! The CLI as a TLS client of the agent's HTTPS API: Consul's `CONSUL_CACERT`, `CONSUL_CAPATH`,
//! `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`, `CONSUL_TLS_SERVER_NAME` and
//! `CONSUL_HTTP_SSL_VERIFY` (or the flags `cli::api::HttpArgs` resolves them from) turned into a
//! rustls `ClientConfig` on the ring provider, which `cli::api` hands to reqwest.
//!
//! Input: `TlsSettings` (paths and switches, already resolved). Output: a `ClientConfig`, or a
//! one-line error naming the file that could not be used.
//!
//! Invariants: the server certificate is verified (WebPKI: chain to the given CAs, or the
//! system's roots when none is given, validity, serverAuth, and the name) unless
//! `CONSUL_HTTP_SSL_VERIFY=false` says otherwise; the name checked is `tls_server_name` when
//! set, else the host of the address. With `tls_server_name` set, SNI still carries the address's
//! host (reqwest sets it from the URL); only the check changes, which is what matters for an
//! agent that serves one certificate. A client certificate is sent only when both the
//! certificate and the key are given; one without the other is an error, not a silent
//! plain connection the agent would refuse with a less helpful message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::tls::load;
use crate::tls::verify::{self, AcceptAny, NameCheck, WebPkiWith};

/// What the CLI's TLS connection to the agent uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// A PEM file of CA certificates (`-ca-file`, `CONSUL_CACERT`).
    pub ca_file: Option<PathBuf>,
    /// A directory of PEM CA certificates (`-ca-path`, `CONSUL_CAPATH`).
    pub ca_path: Option<PathBuf>,
    /// This client's certificate (`-client-cert`, `CONSUL_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// Its key (`-client-key`, `CONSUL_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// The name to check the agent's certificate for (`-tls-server-name`, `CONSUL_TLS_SERVER_NAME`).
    pub server_name: Option<String>,
    /// `false` only with `CONSUL_HTTP_SSL_VERIFY=false`: accept any server certificate.
    pub verify: bool,
}

/// The configuration for plain `http://` addresses: TLS is never used there, but a redirect to
/// `https://` must not find a verifier that accepts anything, so this one trusts no CA at all.
pub fn plain_http_config() -> Result<ClientConfig, ClientTlsError> {
    Ok(ClientConfig::builder_with_provider(verify::ring_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

/// Why the TLS settings cannot be used; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file (or CA directory).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Only one of the client certificate and key was given.
    #[error(
        "a client certificate needs both -client-cert (CONSUL_CLIENT_CERT) and -client-key (CONSUL_CLIENT_KEY)"
    )]
    HalfIdentity,
    /// The server name is not a DNS name or IP address.
    #[error("-tls-server-name (CONSUL_TLS_SERVER_NAME) {0:?} is not a valid DNS name or IP address")]
    ServerName(String),
    /// rustls refused the certificates or key (a key that does not match the certificate …).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls client configuration for `settings` (HTTP/1.1 over ring).
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, ClientTlsError> {
    let provider = verify::ring_provider();
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.verify {
        let webpki = verify::webpki(roots(settings)?, provider.clone())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        match &settings.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone())
                    .map_err(|_| ClientTlsError::ServerName(name.clone()))?;
                Arc::new(WebPkiWith::new(webpki, NameCheck::Fixed(name)))
            }
            None => webpki,
        }
    } else {
        Arc::new(AcceptAny(provider))
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let mut config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(ClientTlsError::HalfIdentity),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The trust anchors: the CA file and every PEM file of the CA directory, or the system's.
fn roots(settings: &TlsSettings) -> Result<RootCertStore, ClientTlsError> {
    let mut roots = RootCertStore::empty();
    let mut add = |path: &Path, certs: Vec<CertificateDer<'static>>| -> Result<(), ClientTlsError> {
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ClientTlsError::File { path: path.to_path_buf(), reason: e.to_string() })?;
        }
        Ok(())
    };
    if let Some(file) = &settings.ca_file {
        add(file, read_certs(file)?)?;
    }
    if let Some(dir) = &settings.ca_path {
        let file_error =
            |e: std::io::Error| ClientTlsError::File { path: dir.clone(), reason: e.to_string() };
        let mut found = 0;
        for path in load::dir_files(dir).map_err(file_error)? {
            // As Consul's go-rootcerts: every file is tried; one without certificates is skipped.
            if let Ok(certs) = read_certs(&path) {
                found += certs.len();
                add(&path, certs)?;
            }
        }
        if found == 0 {
            return Err(ClientTlsError::File {
                path: dir.clone(),
                reason: "no CA certificates found".to_string(),
            });
        }
    }
    if settings.ca_file.is_none() && settings.ca_path.is_none() {
        // Unreadable locations and unusable certificates are skipped, as Go's system pool does.
        verify::add_system_roots(&mut roots);
    }
    Ok(roots)
}

/// Every certificate in a PEM file; none is an error.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let file_error = |reason: String| ClientTlsError::File { path: path.to_path_buf(), reason };
    let text = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(file_error("no PEM certificate found".to_string()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, SEC1 or PKCS#1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientTlsError> {
    let file_error = |reason: String| ClientTlsError::File { path: path.to_path_buf(), reason };
    let text = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| file_error(format!("no PEM private key found ({e})")))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{ClientTlsError, TlsSettings, client_config};

    fn settings() -> TlsSettings {
        TlsSettings { verify: true, ..TlsSettings::default() }
    }

    #[test]
    fn missing_and_bad_files_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").expect("write");
        let missing = dir.path().join("missing.pem");
        for ca in [&garbage, &missing] {
            let err =
                client_config(&TlsSettings { ca_file: Some(ca.clone()), ..settings() }).expect_err("bad CA");
            assert!(err.to_string().starts_with(&ca.display().to_string()), "{err}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        let err = client_config(&TlsSettings { ca_path: Some(dir.path().to_path_buf()), ..settings() })
            .expect_err("no CA in dir");
        assert!(err.to_string().contains("no CA certificates found"), "{err}");
    }

    #[test]
    fn half_an_identity_is_refused() {
        let s = TlsSettings { client_cert: Some(PathBuf::from("c.pem")), ..settings() };
        assert!(matches!(client_config(&s), Err(ClientTlsError::HalfIdentity)));
    }

    #[test]
    fn bad_server_name_is_refused() {
        let s = TlsSettings { server_name: Some("not a name!".into()), ..settings() };
        assert!(matches!(client_config(&s), Err(ClientTlsError::ServerName(_))));
    }

    #[test]
    fn system_roots_or_no_verification_build() {
        assert!(client_config(&settings()).is_ok());
        assert!(client_config(&TlsSettings::default()).is_ok());
    }
}
