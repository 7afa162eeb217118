//! TLS client settings of the HTTP, gRPC, TCP-TLS and H2PING checkers: rustls with ring (the one
//! crypto provider of the binary), the system's CA certificates (`rustls-native-certs`: the
//! OpenSSL locations, `SSL_CERT_FILE`/`SSL_CERT_DIR`), or no verification for `TLSSkipVerify`.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ALPN protocols a client config offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// `http/1.1` (HTTP checks).
    Http1,
    /// `h2` (gRPC and H2PING checks).
    H2,
}

/// The shared client config for these settings: built once per process (loading the system
/// roots is not free), then cloned as an `Arc` by every check that uses it.
pub(crate) fn client_config(skip_verify: bool, alpn: Alpn) -> Result<Arc<ClientConfig>, String> {
    static CONFIGS: [OnceLock<Result<Arc<ClientConfig>, String>>; 4] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let (i, protos): (usize, &[&[u8]]) = match alpn {
        Alpn::Http1 => (0, &[b"http/1.1"]),
        Alpn::H2 => (2, &[b"h2"]),
    };
    CONFIGS[i + usize::from(skip_verify)].get_or_init(|| build(skip_verify, protos).map(Arc::new)).clone()
}

fn build(skip_verify: bool, alpn: &[&[u8]]) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous();
    let mut config = if skip_verify {
        builder.with_custom_certificate_verifier(Arc::new(NoVerify(provider))).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "loading the system's CA certificates");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(ignored, "no usable system CA certificates: TLS checks that verify will fail");
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        builder.with_custom_certificate_verifier(verifier).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// `TLSSkipVerify`: any certificate is accepted, signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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
