//! `cairn tls`, the key-file stage: ECDSA P-256 private keys between rcgen's PKCS#8 and the SEC1
//! `EC PRIVATE KEY` PEM Consul writes (and its `tls cert create` reads back for `-key`).
//!
//! Input: a `KeyPair` to write, or the text of a key file to read. Output: SEC1 PEM text, or a
//! `KeyPair` able to sign. Invariant: a SEC1 key read is P-256 (its curve parameter, when given,
//! is prime256v1); a PKCS#8 key is handed to rcgen as is.
//!
//! Why our own few lines of DER and not a crate: rcgen on ring reads and writes only PKCS#8,
//! and the conversion is one re-wrapping of the same `ECPrivateKey` structure (RFC 5915 inside
//! RFC 5958); a DER crate (`der`, `yasna` through rcgen's internals) would add an API for three
//! tags. The reader only follows lengths it checked against the input, so a garbage file is an
//! error, never a panic.

use base64::Engine as _;
use rcgen::KeyPair;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OBJECT_ID: u8 = 0x06;
/// `[0] parameters` of `ECPrivateKey`.
const PARAMETERS: u8 = 0xa0;
/// DER of OID 1.2.840.10045.2.1 (id-ecPublicKey).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of OID 1.2.840.10045.3.1.7 (prime256v1, P-256).
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The key as SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`), with its curve named as Go does.
pub fn to_sec1_pem(key: &KeyPair) -> Result<String, String> {
    let pkcs8 = key.serialize_der();
    let bad = || "unexpected PKCS#8 layout from the key generator".to_string();
    let (_, info, _) = read_tlv(&pkcs8).filter(|(t, _, _)| *t == SEQUENCE).ok_or_else(bad)?;
    let (_, _version, rest) = read_tlv(info).ok_or_else(bad)?;
    let (_, _algorithm, rest) = read_tlv(rest).ok_or_else(bad)?;
    let (_, ec_key, _) = read_tlv(rest).filter(|(t, _, _)| *t == OCTET_STRING).ok_or_else(bad)?;
    let (_, ec_key, _) = read_tlv(ec_key).filter(|(t, _, _)| *t == SEQUENCE).ok_or_else(bad)?;
    let fields = sec1_fields(ec_key).ok_or_else(bad)?;
    let mut body = Vec::new();
    body.extend(write_tlv(INTEGER, &[1]));
    body.extend(write_tlv(OCTET_STRING, fields.private_key));
    body.extend(write_tlv(PARAMETERS, &write_tlv(OBJECT_ID, PRIME256V1)));
    body.extend_from_slice(fields.rest);
    Ok(pem("EC PRIVATE KEY", &write_tlv(SEQUENCE, &body)))
}

/// A key pair from PEM text: SEC1 `EC PRIVATE KEY` (P-256) or PKCS#8 `PRIVATE KEY`.
pub fn from_pem(text: &str) -> Result<KeyPair, String> {
    let der =
        PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| format!("no private key found ({e})"))?;
    match der {
        PrivateKeyDer::Pkcs8(p) => KeyPair::try_from(p.secret_pkcs8_der()).map_err(|e| e.to_string()),
        PrivateKeyDer::Sec1(s) => {
            let pkcs8 = sec1_to_pkcs8(s.secret_sec1_der())?;
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(pkcs8),
                &rcgen::PKCS_ECDSA_P256_SHA256,
            )
            .map_err(|e| e.to_string())
        }
        _ => Err("only ECDSA keys are supported (found an RSA key)".to_string()),
    }
}

/// Wraps a SEC1 P-256 key in PKCS#8 (RFC 5958), without the `[0]` parameters the algorithm
/// identifier now carries.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "malformed EC private key".to_string();
    let (_, ec_key, _) = read_tlv(sec1).filter(|(t, _, _)| *t == SEQUENCE).ok_or_else(bad)?;
    let fields = sec1_fields(ec_key).ok_or_else(bad)?;
    if fields.curve.is_some_and(|c| c != PRIME256V1) {
        return Err("only ECDSA P-256 keys are supported".to_string());
    }
    let mut inner = Vec::new();
    inner.extend(write_tlv(INTEGER, &[1]));
    inner.extend(write_tlv(OCTET_STRING, fields.private_key));
    inner.extend_from_slice(fields.rest);
    let mut algorithm = write_tlv(OBJECT_ID, EC_PUBLIC_KEY);
    algorithm.extend(write_tlv(OBJECT_ID, PRIME256V1));
    let mut info = write_tlv(INTEGER, &[0]);
    info.extend(write_tlv(SEQUENCE, &algorithm));
    info.extend(write_tlv(OCTET_STRING, &write_tlv(SEQUENCE, &inner)));
    Ok(write_tlv(SEQUENCE, &info))
}

/// The parts of an `ECPrivateKey` body: the private scalar, the named curve (if `[0]` is
/// present) and everything after (`[1] publicKey`), kept as raw DER.
struct Sec1Fields<'a> {
    private_key: &'a [u8],
    curve: Option<&'a [u8]>,
    rest: &'a [u8],
}

fn sec1_fields(body: &[u8]) -> Option<Sec1Fields<'_>> {
    let (tag, version, rest) = read_tlv(body)?;
    if tag != INTEGER || version != [1] {
        return None;
    }
    let (tag, private_key, mut rest) = read_tlv(rest)?;
    if tag != OCTET_STRING {
        return None;
    }
    let mut curve = None;
    if let Some((PARAMETERS, params, after)) = read_tlv(rest) {
        let (tag, oid, _) = read_tlv(params)?;
        curve = (tag == OBJECT_ID).then_some(oid);
        rest = after;
    }
    Some(Sec1Fields { private_key, curve, rest })
}

/// One DER tag-length-value: (tag, value, what follows). Definite lengths up to 4 bytes.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

fn write_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// PEM armour: base64 in 64-column lines.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::{from_pem, read_tlv, to_sec1_pem, write_tlv};

    #[test]
    fn sec1_round_trip_keeps_the_key() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generate");
        let text = to_sec1_pem(&key).expect("to sec1");
        assert!(text.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{text}");
        let back = from_pem(&text).expect("read back");
        assert_eq!(back.public_key_raw(), key.public_key_raw());
        let pkcs8 = from_pem(&key.serialize_pem()).expect("pkcs8");
        assert_eq!(pkcs8.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn consul_written_key_is_read() {
        let key = from_pem(crate::cli::tls::fixtures::CONSUL_CA_KEY).expect("consul key");
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(from_pem("not a key").is_err());
        let truncated = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEII2w\n-----END EC PRIVATE KEY-----\n";
        assert!(from_pem(truncated).is_err());
    }

    #[test]
    fn tlv_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let value = vec![7u8; len];
            let der = write_tlv(0x04, &value);
            let (tag, got, rest) = read_tlv(&der).expect("read");
            assert_eq!((tag, got.len(), rest.len()), (0x04, len, 0));
        }
        assert!(read_tlv(&[0x04, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read_tlv(&[0x04, 0x02, 1]).is_none());
    }
}
