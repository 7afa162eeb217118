//! `ContentHash` of `/v1/agent/service/:id`: the number Consul 1.8.7 computes over its
//! `api.AgentService` response, so a client's `?hash=` works across cairn and Consul.
//!
//! Stage: agent read view. Input: one local service → output: 16 lowercase hex digits.
//! Invariants: pure; equal to Consul's hash for the same typical service (pinned by values read
//! from a live Consul 1.8.7 agent in the tests below; a Connect proxy's or native instance's
//! blocks hash differently, see `content_hash`); any change to a field the response shows
//! changes the hash.
//!
//! Why our own code: Consul hashes the response struct with `mitchellh/hashstructure` (the
//! 2017 revision Consul 1.8.7 vendors) over 64-bit FNV-1 (not FNV-1a), walking Go's reflection
//! of the struct: a struct hashes its type name, then XORs, per exported field, the ordered
//! hash of the field's name and value; a map XORs its key/value pairs; a slice chains its
//! elements in order; ints are little-endian `int64`, bools one byte, a nil pointer the int 0.
//! No crate reproduces that walk, and the rules above are all a `Service` needs, so a
//! few functions here replace a reflection-driven dependency.

use std::collections::BTreeMap;

use crate::catalog::{Service, ServiceAddress};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1: multiply, then XOR each byte.
fn fnv1(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| h.wrapping_mul(FNV_PRIME) ^ u64::from(*b))
}

fn text(s: &str) -> u64 {
    fnv1(s.as_bytes())
}

/// Go's `int` (and `uint16` ports widened to it) as `int64`.
fn int(n: i64) -> u64 {
    fnv1(&n.to_le_bytes())
}

fn uint(n: u64) -> u64 {
    fnv1(&n.to_le_bytes())
}

fn flag(b: bool) -> u64 {
    fnv1(&[u8::from(b)])
}

/// hashstructure's `hashUpdateOrdered`: FNV-1 over both hashes, little-endian.
fn ordered(a: u64, b: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    fnv1(&bytes)
}

/// A struct: its type name, then each field's (name, value) pair XORed in.
fn structure(name: &str, fields: &[(&str, u64)]) -> u64 {
    fields.iter().fold(text(name), |h, (field, value)| h ^ ordered(text(field), *value))
}

fn list(items: &[String]) -> u64 {
    items.iter().fold(0, |h, s| ordered(h, text(s)))
}

fn string_map(m: &BTreeMap<String, String>) -> u64 {
    m.iter().fold(0, |h, (k, v)| h ^ ordered(text(k), text(v)))
}

fn address_map(m: &BTreeMap<String, ServiceAddress>) -> u64 {
    m.iter().fold(0, |h, (k, a)| {
        let value =
            structure("ServiceAddress", &[("Address", text(&a.address)), ("Port", int(a.port.into()))]);
        h ^ ordered(text(k), value)
    })
}

/// Consul's `ContentHash` of a local service (as `/v1/agent/service/:id` shows it: no Raft
/// indexes, `Weights.Passing` 0 read as 1, no Proxy or Connect block on a typical service).
pub(crate) fn content_hash(s: &Service) -> String {
    let passing = if s.weights.passing > 0 { s.weights.passing } else { 1 };
    let weights = structure(
        "AgentWeights",
        &[("Passing", int(passing.into())), ("Warning", int(s.weights.warning.into()))],
    );
    let nil = int(0);
    let h = structure(
        "AgentService",
        &[
            ("Kind", text(&s.mesh.kind)),
            ("ID", text(&s.id)),
            ("Service", text(&s.name)),
            ("Tags", list(&s.tags)),
            ("Meta", string_map(&s.meta)),
            ("Port", int(s.port.into())),
            ("Address", text(&s.address)),
            ("TaggedAddresses", address_map(&s.tagged_addresses)),
            ("Weights", weights),
            ("EnableTagOverride", flag(s.enable_tag_override)),
            ("CreateIndex", uint(0)),
            ("ModifyIndex", uint(0)),
            ("ContentHash", text("")),
            ("Proxy", nil),
            ("Connect", nil),
        ],
    );
    // A Connect instance's `Proxy`/`Connect` blocks: Consul walks Go structs (and the
    // `map[string]interface{}` of `Proxy.Config`) cairn does not mirror, so their hash here is
    // FNV-1 over the stored block's canonical encoding. It changes whenever the block changes,
    // which is all `?hash=` needs, but is not Consul's number for such an instance.
    let h = if s.mesh == crate::catalog::Mesh::default() {
        h
    } else {
        let mesh = serde_json::to_vec(&(&s.mesh.proxy, s.mesh.native)).unwrap_or_default();
        h ^ ordered(text("Mesh"), fnv1(&mesh))
    };
    format!("{h:x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Weights;

    fn service(id: &str, name: &str, tags: &[&str], port: u16) -> Service {
        Service {
            node: "c1".into(),
            id: id.into(),
            name: name.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            address: String::new(),
            port,
            ports: Vec::new(),
            meta: BTreeMap::new(),
            tagged_addresses: BTreeMap::new(),
            weights: Weights { passing: 1, warning: 1 },
            enable_tag_override: false,
            mesh: crate::catalog::Mesh::default(),
            create_index: 7,
            modify_index: 9,
        }
    }

    /// Consul 1.8.7's api test `TestAPI_AgentService` expects this value for this service.
    #[test]
    fn matches_consul_for_the_api_test_service() {
        assert_eq!(content_hash(&service("foo", "foo", &["bar", "baz"], 8000)), "6b13684bfe179e67");
    }

    /// Read from a live Consul 1.8.7 agent after registering the same service (its agent
    /// derived `lan_ipv4`/`wan_ipv4` from the address).
    #[test]
    fn matches_consul_with_meta_weights_and_tagged_addresses() {
        let mut s = service("w1", "web", &["a"], 81);
        s.address = "10.0.0.1".into();
        s.meta = [("k", "v"), ("x", "y")].iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        s.weights = Weights { passing: 3, warning: 2 };
        s.enable_tag_override = true;
        let addr = |a: &str, port| ServiceAddress { address: a.into(), port };
        s.tagged_addresses = [
            ("lan".to_owned(), addr("10.0.0.2", 82)),
            ("lan_ipv4".to_owned(), addr("10.0.0.1", 81)),
            ("wan_ipv4".to_owned(), addr("10.0.0.1", 81)),
        ]
        .into_iter()
        .collect();
        assert_eq!(content_hash(&s), "eed3e88aa6ebe6e4");
    }

    #[test]
    fn changes_with_content_not_indexes() {
        let a = service("foo", "foo", &["bar", "baz"], 8000);
        let mut b = a.clone();
        b.modify_index = 100;
        assert_eq!(content_hash(&a), content_hash(&b));
        b.tags.reverse();
        assert_ne!(content_hash(&a), content_hash(&b), "tag order is part of the hash");
        let mut c = a.clone();
        c.port = 8001;
        assert_ne!(content_hash(&a), content_hash(&c));
    }
}
