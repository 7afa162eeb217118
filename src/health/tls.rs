//! TLS client settings of the HTTP, gRPC, TCP-TLS and H2PING checkers: rustls with ring (the one
//! crypto provider of the binary), the system's CA certificates (`rustls-native-certs`: the
//! OpenSSL locations, `SSL_CERT_FILE`/`SSL_CERT_DIR`), or no verification for `TLSSkipVerify`.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;

use crate::tls::verify::{self, AcceptAny};

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
    let provider = verify::ring_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous();
    let mut config = if skip_verify {
        builder.with_custom_certificate_verifier(Arc::new(AcceptAny(provider))).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let system = verify::add_system_roots(&mut roots);
        for e in &system.errors {
            tracing::warn!(error = %e, "loading the system's CA certificates");
        }
        if system.added == 0 {
            tracing::warn!(
                ignored = system.ignored,
                "no usable system CA certificates: TLS checks that verify will fail"
            );
        }
        let verifier = verify::webpki(roots, provider).map_err(|e| e.to_string())?;
        builder.with_custom_certificate_verifier(verifier).with_no_client_auth()
    };
    config.alpn_protocols = verify::alpn(alpn);
    Ok(config)
}
