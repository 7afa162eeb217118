//! Unit tests of `issue`: what goes into a CA and each kind of agent certificate, and what the
//! verification before saving refuses.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::prelude::*;

use super::{CaRequest, CertRequest, IssueError, Issued, Kind, create_ca, create_cert};
use crate::cli::tls::fixtures::{CONSUL_CA, CONSUL_CA_KEY};

/// 2026-12-08T00:00:00Z: inside the Consul CA's validity.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_688_000)
}

fn ca_request() -> CaRequest {
    CaRequest {
        days: 1825,
        domain: "consul".into(),
        name_constraint: false,
        additional_constraints: Vec::new(),
    }
}

fn cert_request(kind: Kind) -> CertRequest {
    CertRequest {
        kind,
        dc: "dc1".into(),
        domain: "consul".into(),
        node: None,
        days: 365,
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
    }
}

fn parse(pem_text: &str) -> Vec<u8> {
    let (_, pem) = parse_x509_pem(pem_text.as_bytes()).expect("pem");
    pem.contents
}

fn with_cert<T>(issued: &Issued, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
    let der = parse(&issued.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).expect("der");
    f(&cert)
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Some(ext) = cert.subject_alternative_name().expect("san") else { return Vec::new() };
    ext.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                format!("IP:{}", IpAddr::from(<[u8; 4]>::try_from(*b).expect("v4")))
            }
            GeneralName::IPAddress(b) => {
                format!("IP:{}", IpAddr::from(<[u8; 16]>::try_from(*b).expect("v6")))
            }
            other => format!("{other:?}"),
        })
        .collect()
}

fn lifetime_days(cert: &X509Certificate<'_>) -> i64 {
    (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400
}

#[test]
fn ca_is_consuls() {
    let ca = create_ca(&ca_request(), now()).expect("ca");
    assert!(ca.key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    with_cert(&ca, |cert| {
        assert_eq!(cert.subject(), cert.issuer());
        let subject = cert.subject().to_string();
        assert!(
            subject.starts_with("C=US, ST=CA, L=San Francisco, streetAddress=101 Second Street, postalCode=94105, O=HashiCorp Inc., CN=Consul Agent CA "),
            "{subject}"
        );
        let serial = cert.raw_serial_as_string().replace(':', "");
        let cn_serial: u128 = subject.rsplit(' ').next().expect("cn").parse().expect("decimal serial");
        assert_eq!(u128::from_str_radix(&serial, 16).expect("hex"), cn_serial);
        let bc = cert.basic_constraints().expect("bc").expect("present");
        assert!(bc.critical && bc.value.ca);
        let ku = cert.key_usage().expect("ku").expect("present").value;
        assert!(ku.digital_signature() && ku.key_cert_sign() && ku.crl_sign() && !ku.key_encipherment());
        assert_eq!(lifetime_days(cert), 1825);
        assert_eq!(cert.validity().not_before.timestamp(), 1_796_688_000);
        assert!(cert.name_constraints().expect("nc").is_none());
        let ski = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
        let aki = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(k) => k.key_identifier.as_ref().map(|k| k.0.to_vec()),
            _ => None,
        });
        assert!(ski.is_some());
        assert_eq!(ski, aki);
    });
}

#[test]
fn server_client_and_cli_certificates() {
    let ca = create_ca(&ca_request(), now()).expect("ca");
    let mut server = cert_request(Kind::Server);
    server.node = Some("s1".into());
    server.dns_names = vec!["a.example".into()];
    server.ip_addresses = vec!["10.1.1.1".parse().expect("ip")];
    let cases = [
        (
            server,
            "server.dc1.consul",
            vec![
                "DNS:a.example",
                "DNS:s1.server.dc1.consul",
                "DNS:server.dc1.consul",
                "DNS:localhost",
                "IP:10.1.1.1",
                "IP:127.0.0.1",
            ],
            true,
        ),
        (
            cert_request(Kind::Client),
            "client.dc1.consul",
            vec!["DNS:client.dc1.consul", "DNS:localhost", "IP:127.0.0.1"],
            true,
        ),
        (cert_request(Kind::Cli), "cli.dc1.consul", vec!["DNS:cli.dc1.consul", "DNS:localhost"], false),
    ];
    for (req, cn, want_sans, want_eku) in cases {
        let issued = create_cert(&req, &ca.cert_pem, &ca.key_pem, now()).expect("cert");
        with_cert(&issued, |cert| {
            assert_eq!(cert.subject().to_string(), format!("CN={cn}"));
            assert_eq!(sans(cert), want_sans);
            let eku = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
                ParsedExtension::ExtendedKeyUsage(k) => Some(k.other.clone()),
                _ => None,
            });
            let eku_flags =
                cert.extended_key_usage().expect("eku").map(|e| (e.value.server_auth, e.value.client_auth));
            assert_eq!(eku_flags.is_some(), want_eku, "{cn}");
            if want_eku {
                assert_eq!(eku_flags, Some((true, true)), "{cn}");
                assert_eq!(eku.map(|o| o.len()), Some(0), "{cn}: only serverAuth and clientAuth");
            }
            let bc = cert.basic_constraints().expect("bc").expect("present");
            assert!(bc.critical && !bc.value.ca);
            let ku = cert.key_usage().expect("ku").expect("present").value;
            assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
            assert_eq!(lifetime_days(cert), 365);
        });
    }
}

#[test]
fn name_constraints_are_permitted_dns_and_enforced() {
    let mut req = ca_request();
    req.name_constraint = true;
    req.additional_constraints = vec!["ui.example".into()];
    let ca = create_ca(&req, now()).expect("ca");
    with_cert(&ca, |cert| {
        let nc = cert.name_constraints().expect("nc").expect("present");
        assert!(nc.critical);
        let permitted: Vec<String> = nc
            .value
            .permitted_subtrees
            .as_ref()
            .expect("permitted")
            .iter()
            .map(|s| format!("{:?}", s.base))
            .collect();
        assert_eq!(permitted, ["DNSName(\"ui.example\")", "DNSName(\"consul\")", "DNSName(\"localhost\")"]);
    });
    // The server's SANs (with 127.0.0.1) are inside the constraints; another name is refused.
    create_cert(&cert_request(Kind::Server), &ca.cert_pem, &ca.key_pem, now()).expect("inside");
    let mut outside = cert_request(Kind::Client);
    outside.dns_names = vec!["evil.example".into()];
    let err = create_cert(&outside, &ca.cert_pem, &ca.key_pem, now()).expect_err("outside the constraints");
    assert!(matches!(err, IssueError::Verify(_)), "{err}");
}

#[test]
fn wrong_key_or_garbage_ca_is_refused() {
    let ca = create_ca(&ca_request(), now()).expect("ca");
    let other = create_ca(&ca_request(), now()).expect("other");
    let err =
        create_cert(&cert_request(Kind::Cli), &ca.cert_pem, &other.key_pem, now()).expect_err("wrong key");
    assert!(matches!(err, IssueError::Verify(_)), "{err}");
    let err = create_cert(&cert_request(Kind::Cli), "garbage", &ca.key_pem, now()).expect_err("garbage");
    assert!(matches!(err, IssueError::ReadCa(_)), "{err}");
    let err = create_cert(&cert_request(Kind::Cli), &ca.cert_pem, "garbage", now()).expect_err("garbage key");
    assert!(matches!(err, IssueError::ReadKey(_)), "{err}");
}

#[test]
fn consul_made_ca_signs_verifiable_certificates() {
    let issued = create_cert(&cert_request(Kind::Server), CONSUL_CA, CONSUL_CA_KEY, now())
        .expect("signed by Consul's CA");
    let ca_der = parse(CONSUL_CA);
    let (_, ca) = X509Certificate::from_der(&ca_der).expect("ca");
    with_cert(&issued, |cert| {
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
        assert!(cert.verify_signature(Some(ca.public_key())).is_ok());
    });
}

#[test]
fn lifetimes_past_9999_and_bad_names_are_errors_not_panics() {
    let mut req = ca_request();
    req.days = u32::MAX;
    assert!(matches!(create_ca(&req, now()), Err(IssueError::Days(_))));
    req.days = 2_900_000;
    let ca = create_ca(&req, now()).expect("ends before 9999");
    let mut cert = cert_request(Kind::Client);
    cert.days = u32::MAX;
    assert!(matches!(create_cert(&cert, &ca.cert_pem, &ca.key_pem, now()), Err(IssueError::Days(_))));
    for bad in ["", "a b", "é.example", "x..y"] {
        let mut cert = cert_request(Kind::Client);
        cert.dns_names = vec![bad.to_string()];
        assert!(create_cert(&cert, &ca.cert_pem, &ca.key_pem, now()).is_err(), "{bad:?}");
    }
    let mut wildcard = cert_request(Kind::Client);
    wildcard.dns_names = vec!["*.ui.example".to_string()];
    create_cert(&wildcard, &ca.cert_pem, &ca.key_pem, now()).expect("a wildcard name");
    let mut cert = cert_request(Kind::Cli);
    cert.dc = String::new();
    assert!(create_cert(&cert, &ca.cert_pem, &ca.key_pem, now()).is_err());
}
