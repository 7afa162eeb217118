//! The rustls pieces every TLS client of cairn shares: the ring provider, the WebPKI server
//! verifier over a root store, the system's CA certificates, and the two verifier variants
//! Consul needs beyond plain WebPKI (another name than the one dialled, or the chain only)
//! plus the accept-any verifier of `TLSSkipVerify` / `CONSUL_HTTP_SSL_VERIFY=false`.
//!
//! Stage: roots + provider -> verifiers. Input: a `RootCertStore` or a provider. Output:
//! `ServerCertVerifier`s and ALPN lists. Invariants: every variant still checks the
//! handshake's signatures with the provider's algorithms, so the peer holds the key of the
//! certificate it sent; only `AcceptAny` skips the certificate itself, and `NameCheck::ChainOnly`
//! skips only the name (webpki checks the name last, so a name mismatch means the chain,
//! validity and usage passed). Used by `tls::build`, `health::tls` and `cli::tls::client`.

use std::sync::Arc;

use rustls::client::VerifierBuilderError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The ring provider with its default suites (the one crypto provider of the binary).
pub(crate) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The WebPKI server verifier trusting `roots`.
pub(crate) fn webpki(
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, VerifierBuilderError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()
}

/// An ALPN list as rustls configs hold it.
pub(crate) fn alpn(protocols: &[&[u8]]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.to_vec()).collect()
}

/// What `add_system_roots` found.
pub(crate) struct SystemRoots {
    /// Certificates added to the store.
    pub(crate) added: usize,
    /// Certificates that could not be parsed.
    pub(crate) ignored: usize,
    /// Locations that could not be read.
    pub(crate) errors: Vec<rustls_native_certs::Error>,
}

/// Adds the system's CA certificates (`rustls-native-certs`: the OpenSSL locations,
/// `SSL_CERT_FILE`/`SSL_CERT_DIR`) to `roots`; unusable ones are skipped and counted.
pub(crate) fn add_system_roots(roots: &mut RootCertStore) -> SystemRoots {
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    SystemRoots { added, ignored, errors: native.errors }
}

/// Which name a `WebPkiWith` checks the server's certificate for.
#[derive(Debug)]
pub(crate) enum NameCheck {
    /// This configured name instead of the address's host.
    Fixed(ServerName<'static>),
    /// None: the chain, validity and usage only.
    ChainOnly,
}

/// WebPKI verification with another name check than the dialled name.
#[derive(Debug)]
pub(crate) struct WebPkiWith {
    inner: Arc<WebPkiServerVerifier>,
    name: NameCheck,
}

impl WebPkiWith {
    pub(crate) fn new(inner: Arc<WebPkiServerVerifier>, name: NameCheck) -> Self {
        Self { inner, name }
    }
}

impl ServerCertVerifier for WebPkiWith {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.name {
            NameCheck::Fixed(name) => {
                self.inner.verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            }
            NameCheck::ChainOnly => {
                match self.inner.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                    )) => Ok(ServerCertVerified::assertion()),
                    other => other,
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Any server certificate is accepted; the handshake's own signatures are still checked.
#[derive(Debug)]
pub(crate) struct AcceptAny(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
