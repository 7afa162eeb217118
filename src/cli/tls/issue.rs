//! `cairn tls`, the certificate stage: what Consul's `tlsutil/generate.go` puts in a CA and in
//! an agent certificate, built and signed with rcgen, then checked with rustls' WebPKI verifier.
//!
//! Input: the request (`CaRequest`, `CertRequest`), the clock and the CA's PEM files as text.
//! Output: PEM text (certificate, and the new key in SEC1 `EC PRIVATE KEY` form, as Consul writes
//! it). No file IO here (`super` reads and writes the files).
//!
//! Invariants: every key is ECDSA P-256 signed with SHA-256; a CA is `CA:TRUE` with CertSign,
//! CRLSign and DigitalSignature and the subject Consul gives it (`Consul Agent CA <serial>`);
//! an agent certificate is `CA:FALSE` with DigitalSignature and KeyEncipherment, its CN is
//! `<kind>.<dc>.<domain>` and it is returned only after it verified against the CA for that name
//! (so a CA whose name constraints exclude the requested names, a key that is not the CA's, or
//! `-days 0` fail before anything is written).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::key;

/// Why a CA or a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// rcgen refused the parameters or the key (an invalid DNS name, a bad key file).
    #[error("{0}")]
    Build(#[from] rcgen::Error),
    /// The CA certificate file is not a PEM certificate.
    #[error("Error reading CA: {0}")]
    ReadCa(String),
    /// The CA key file is not a PEM ECDSA P-256 key.
    #[error("Error reading CA key: {0}")]
    ReadKey(String),
    /// The new certificate does not verify against the CA (Consul refuses it too).
    #[error("the new certificate does not verify against the CA: {0}")]
    Verify(String),
    /// A lifetime that ends after the last date a certificate can carry.
    #[error("-days {0} ends after 9999-12-31, the last date a certificate can carry")]
    Days(u32),
    /// A name that cannot be in a certificate.
    #[error("invalid name {name:?}: {reason}")]
    Name {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
}

/// Which agent certificate (`-server`, `-client` or `-cli`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A server: CN `server.<dc>.<domain>`, serverAuth and clientAuth.
    Server,
    /// A client agent: CN `client.<dc>.<domain>`, clientAuth and serverAuth.
    Client,
    /// The CLI: CN `cli.<dc>.<domain>`, no EKU, no 127.0.0.1.
    Cli,
}

impl Kind {
    /// The word in the CN and the file name.
    pub fn word(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::Cli => "cli",
        }
    }
}

/// `tls ca create`.
#[derive(Debug, Clone)]
pub struct CaRequest {
    /// Lifetime in days from now.
    pub days: u32,
    /// The cluster's domain (`consul`): a permitted name with `name_constraint`.
    pub domain: String,
    /// Add critical permitted-DNS name constraints: `additional`, then the domain, then localhost.
    pub name_constraint: bool,
    /// Extra permitted DNS names (only with `name_constraint`).
    pub additional_constraints: Vec<String>,
}

/// `tls cert create`.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// Which certificate.
    pub kind: Kind,
    /// Datacenter (`dc1`).
    pub dc: String,
    /// Domain (`consul`).
    pub domain: String,
    /// With `Server`: adds `<node>.server.<dc>.<domain>`.
    pub node: Option<String>,
    /// Lifetime in days from now.
    pub days: u32,
    /// Extra DNS SANs, first in the list as in Consul.
    pub dns_names: Vec<String>,
    /// Extra IP SANs.
    pub ip_addresses: Vec<IpAddr>,
}

impl CertRequest {
    /// The certificate's CN, also the name it is verified for: `server.dc1.consul`.
    pub fn common_name(&self) -> String {
        format!("{}.{}.{}", self.kind.word(), self.dc, self.domain)
    }

    /// The SANs in Consul's order: extra names, `<node>.server…`, the CN, `localhost`, extra IPs,
    /// then 127.0.0.1 (not for `-cli`, which Consul gives no loopback address).
    fn subject_alt_names(&self) -> Vec<String> {
        let mut names = self.dns_names.clone();
        if let (Kind::Server, Some(node)) = (self.kind, &self.node) {
            names.push(format!("{node}.server.{}.{}", self.dc, self.domain));
        }
        names.push(self.common_name());
        names.push("localhost".to_string());
        names.extend(self.ip_addresses.iter().map(IpAddr::to_string));
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        if self.kind != Kind::Cli && !self.ip_addresses.contains(&loopback) {
            names.push(loopback.to_string());
        }
        names
    }
}

/// A certificate and its new key, both PEM.
#[derive(Debug)]
pub struct Issued {
    /// `-----BEGIN CERTIFICATE-----…`
    pub cert_pem: String,
    /// `-----BEGIN EC PRIVATE KEY-----…` (SEC1, as Consul writes it).
    pub key_pem: String,
}

/// A new self-signed CA valid from `now` for `days` days.
pub fn create_ca(req: &CaRequest, now: SystemTime) -> Result<Issued, IssueError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let serial = random_serial();
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
    params.distinguished_name = ca_subject(serial)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, req.days)?;
    if req.name_constraint {
        let mut permitted: Vec<String> = req.additional_constraints.clone();
        permitted.push(req.domain.clone());
        permitted.push("localhost".to_string());
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted.into_iter().map(GeneralSubtree::DnsName).collect(),
            excluded_subtrees: Vec::new(),
        });
    }
    let cert = params.self_signed(&key)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key::to_sec1_pem(&key).map_err(IssueError::ReadKey)? })
}

/// A new agent certificate signed by the CA (`ca_pem`, `ca_key_pem`), verified against it.
pub fn create_cert(
    req: &CertRequest,
    ca_pem: &str,
    ca_key_pem: &str,
    now: SystemTime,
) -> Result<Issued, IssueError> {
    let ca_key = key::from_pem(ca_key_pem).map_err(IssueError::ReadKey)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).map_err(|e| IssueError::ReadCa(e.to_string()))?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&random_serial().to_be_bytes()));
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, printable(&req.common_name())?);
    params.distinguished_name = subject;
    params.subject_alt_names = req.subject_alt_names().into_iter().map(san).collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = match req.kind {
        Kind::Server => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        Kind::Client => vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth],
        Kind::Cli => Vec::new(),
    };
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, req.days)?;
    let cert = params.signed_by(&key, &issuer)?;
    verify(cert.der(), ca_pem, &req.common_name(), now)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key::to_sec1_pem(&key).map_err(IssueError::ReadKey)? })
}

/// Checks `cert` against the CA in `ca_pem` as a TLS peer would, for `name`, at `now`: the
/// signature, the validity period, the CA's name constraints, and (where the certificate has
/// an EKU) serverAuth, as Consul's `tlsutil.Verify` does with Go's x509.
pub fn verify(
    cert: &CertificateDer<'_>,
    ca_pem: &str,
    name: &str,
    now: SystemTime,
) -> Result<(), IssueError> {
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| IssueError::ReadCa(e.to_string()))?;
        roots.add(ca).map_err(|e| IssueError::ReadCa(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| IssueError::ReadCa(e.to_string()))?;
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| IssueError::Name { name: name.to_string(), reason: e.to_string() })?;
    let at = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    verifier
        .verify_server_cert(cert, &[], &server_name, &[], at)
        .map_err(|e| IssueError::Verify(e.to_string()))?;
    Ok(())
}

/// Consul's CA subject, in Go's attribute order, every value a PrintableString as Go writes it.
fn ca_subject(serial: u128) -> Result<DistinguishedName, IssueError> {
    const STREET: &[u64] = &[2, 5, 4, 9];
    const POSTAL_CODE: &[u64] = &[2, 5, 4, 17];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, printable("US")?);
    dn.push(DnType::StateOrProvinceName, printable("CA")?);
    dn.push(DnType::LocalityName, printable("San Francisco")?);
    dn.push(DnType::CustomDnType(STREET.to_vec()), printable("101 Second Street")?);
    dn.push(DnType::CustomDnType(POSTAL_CODE.to_vec()), printable("94105")?);
    dn.push(DnType::OrganizationName, printable("HashiCorp Inc.")?);
    dn.push(DnType::CommonName, printable(&format!("Consul Agent CA {serial}"))?);
    Ok(dn)
}

fn printable(value: &str) -> Result<DnValue, IssueError> {
    match rcgen::string::PrintableString::try_from(value) {
        Ok(p) => Ok(DnValue::PrintableString(p)),
        Err(_) => Ok(DnValue::Utf8String(value.to_string())),
    }
}

/// One SAN: an IP address, or a DNS name (a leading `*.` wildcard allowed), checked as a TLS
/// peer will read it.
fn san(name: String) -> Result<SanType, IssueError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let refuse = |reason: String| IssueError::Name { name: name.clone(), reason };
    let host = name.strip_prefix("*.").unwrap_or(&name);
    rustls::pki_types::DnsName::try_from(host)
        .map_err(|_| refuse("not a DNS name or IP address".to_string()))?;
    let dns = name.clone().try_into().map_err(|e: rcgen::Error| refuse(e.to_string()))?;
    Ok(SanType::DnsName(dns))
}

/// A positive 127-bit random serial (Consul's are 128-bit random, shown in the CA's CN).
fn random_serial() -> u128 {
    rand::random::<u128>() >> 1
}

/// NotBefore `now`, NotAfter `now + days` (Go's `AddDate(0, 0, days)` in UTC), at most
/// 9999-12-31T23:59:59Z (the last GeneralizedTime; later would overflow the date type).
fn set_validity(params: &mut CertificateParams, now: SystemTime, days: u32) -> Result<(), IssueError> {
    const LAST: u64 = 253_402_300_799;
    let start = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let end = start + u64::from(days) * 86_400;
    if end > LAST {
        return Err(IssueError::Days(days));
    }
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(start);
    params.not_after = epoch + Duration::from_secs(end);
    Ok(())
}

#[cfg(test)]
mod tests;
