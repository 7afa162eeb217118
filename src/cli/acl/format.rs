//! What `cairn acl …` prints: Consul 1.8.7's pretty text for tokens, policies and roles (one
//! object, or a list), and its `-format=json` (the Go client's structs, four-space indent).
//!
//! Input: the decoded objects (`wire`) and whether `-meta` asked for hashes and indexes.
//! Output: the text exactly as Consul's CLI prints it, captured from its binary against a
//! Consul 1.8.7 dev agent: labels padded to one column, times in Go's `time.Time` form
//! (`2026-12-07 16:23:12.298870514 +0000 UTC`), hashes in hex, `<id> - <name>` link lines, and
//! the blank line Consul's UI adds after a block. Pure functions: no IO.
//!
//! One quirk kept on purpose: in a *token list*, Consul 1.8.7 prints a token's node identities
//! as a second "Service Identities:" block repeating the service identities (its list formatter
//! reads the wrong field); scripts written against it see that, so `cairn` prints the same.

use serde::Serialize;

use super::wire::{Link, NodeIdentity, Policy, PolicyStub, Role, ServiceIdentity, Token, TokenStub};

/// `-format`: Consul's pretty text or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Labelled lines.
    Pretty,
    /// The objects as JSON.
    Json,
}

impl Format {
    /// `pretty` or `json`; anything else is Consul's `Unknown format: X`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("Unknown format: {other}")),
        }
    }
}

/// `value` as Go's `json.MarshalIndent(v, "", "    ")`, with the newline the CLI adds.
pub fn json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// An RFC 3339 time as Go's `time.Time.String()`: `YYYY-MM-DD HH:MM:SS[.frac] +0000 UTC`, the
/// fraction without trailing zeros; an offset other than `Z` prints as Go prints an unnamed
/// zone (`+0200 +0200`). Text that is not RFC 3339 is printed as it came.
pub fn go_time(rfc3339: &str) -> String {
    let (Some(date), Some(rest)) = (rfc3339.get(..10), rfc3339.get(11..)) else {
        return rfc3339.to_owned();
    };
    let split = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(split);
    let clock = match clock.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() { whole.to_owned() } else { format!("{whole}.{frac}") }
        }
        None => clock.to_owned(),
    };
    let zone = match zone {
        "" | "Z" | "z" => "+0000 UTC".to_owned(),
        offset => {
            let compact = offset.replace(':', "");
            format!("{compact} {compact}")
        }
    };
    format!("{date} {clock} {zone}")
}

/// A base64 hash as Go's `%x` of its bytes; empty when absent.
fn hex_hash(hash: Option<&str>) -> String {
    use base64::Engine as _;
    let Some(h) = hash else { return String::new() };
    match base64::engine::general_purpose::STANDARD.decode(h) {
        Ok(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => h.to_owned(),
    }
}

fn links(out: &mut String, title: &str, indent: &str, list: &[Link]) {
    if !list.is_empty() {
        out.push_str(&format!("{indent}{title}:\n"));
        for l in list {
            out.push_str(&format!("{indent}   {} - {}\n", l.id, l.name));
        }
    }
}

fn service_lines(out: &mut String, indent: &str, list: &[ServiceIdentity]) {
    out.push_str(&format!("{indent}Service Identities:\n"));
    for s in list {
        let dcs = if s.datacenters.is_empty() { "all".to_owned() } else { s.datacenters.join(", ") };
        out.push_str(&format!("{indent}   {} (Datacenters: {dcs})\n", s.service_name));
    }
}

fn identities(out: &mut String, indent: &str, services: &[ServiceIdentity], nodes: &[NodeIdentity]) {
    if !services.is_empty() {
        service_lines(out, indent, services);
    }
    if !nodes.is_empty() {
        out.push_str(&format!("{indent}Node Identities:\n"));
        for n in nodes {
            out.push_str(&format!("{indent}   {} (Datacenter: {})\n", n.node_name, n.datacenter));
        }
    }
}

fn expiry(out: &mut String, at: Option<&str>) {
    if let Some(t) = at.filter(|t| !t.is_empty() && !t.starts_with("0001-01-01")) {
        out.push_str(&format!("Expiration Time:  {}\n", go_time(t)));
    }
}

fn token_meta(out: &mut String, hash: Option<&str>, create: u64, modify: u64) {
    out.push_str(&format!("Hash:             {}\n", hex_hash(hash)));
    out.push_str(&format!("Create Index:     {create}\n"));
    out.push_str(&format!("Modify Index:     {modify}\n"));
}

/// One token, as `consul acl token read` (and create, update, clone, bootstrap) prints it.
pub fn token(t: &Token, meta: bool) -> String {
    let mut out = format!("AccessorID:       {}\nSecretID:         {}\n", t.accessor_id, t.secret_id);
    out.push_str(&format!("Description:      {}\nLocal:            {}\n", t.description, t.local));
    out.push_str(&format!("Create Time:      {}\n", go_time(&t.create_time)));
    expiry(&mut out, t.expiration_time.as_deref());
    if meta {
        token_meta(&mut out, t.hash.as_deref(), t.create_index, t.modify_index);
    }
    links(&mut out, "Policies", "", &t.policies);
    links(&mut out, "Roles", "", &t.roles);
    identities(&mut out, "", &t.service_identities, &t.node_identities);
    out.push('\n');
    out
}

/// `consul acl token list`: one block per token, a blank line after each.
pub fn token_list(list: &[TokenStub], meta: bool) -> String {
    let blocks: Vec<String> = list.iter().map(|t| token_stub(t, meta)).collect();
    blocks.join("\n") + "\n"
}

fn token_stub(t: &TokenStub, meta: bool) -> String {
    let mut out = format!("AccessorID:       {}\nDescription:      {}\n", t.accessor_id, t.description);
    out.push_str(&format!("Local:            {}\n", t.local));
    out.push_str(&format!("Create Time:      {}\n", go_time(&t.create_time)));
    expiry(&mut out, t.expiration_time.as_deref());
    out.push_str(&format!("Legacy:           {}\n", t.legacy));
    if meta {
        token_meta(&mut out, t.hash.as_deref(), t.create_index, t.modify_index);
    }
    links(&mut out, "Policies", "", &t.policies);
    links(&mut out, "Roles", "", &t.roles);
    if !t.service_identities.is_empty() {
        service_lines(&mut out, "", &t.service_identities);
    }
    // Consul 1.8.7's quirk (module doc): node identities show as the service identities again.
    if !t.node_identities.is_empty() {
        service_lines(&mut out, "", &t.service_identities);
    }
    out
}

fn datacenters(dcs: Option<&Vec<String>>) -> String {
    dcs.map(|d| d.join(", ")).unwrap_or_default()
}

/// One policy, as `consul acl policy read` (and create, update) prints it.
pub fn policy(p: &Policy, meta: bool) -> String {
    let mut out = format!("ID:           {}\nName:         {}\n", p.id, p.name);
    out.push_str(&format!("Description:  {}\n", p.description));
    out.push_str(&format!("Datacenters:  {}\n", datacenters(p.datacenters.as_ref())));
    if meta {
        out.push_str(&format!("Hash:         {}\n", hex_hash(p.hash.as_deref())));
        out.push_str(&format!("Create Index: {}\nModify Index: {}\n", p.create_index, p.modify_index));
    }
    out.push_str("Rules:\n");
    out.push_str(&p.rules);
    out.push('\n');
    out
}

/// `consul acl policy list`: a `name:` block per policy, then a blank line.
pub fn policy_list(list: &[PolicyStub], meta: bool) -> String {
    let mut out = String::new();
    for p in list {
        out.push_str(&format!("{}:\n   ID:           {}\n", p.name, p.id));
        out.push_str(&format!("   Description:  {}\n", p.description));
        out.push_str(&format!("   Datacenters:  {}\n", datacenters(p.datacenters.as_ref())));
        if meta {
            out.push_str(&format!("   Hash:         {}\n", hex_hash(p.hash.as_deref())));
            out.push_str(&format!("   Create Index: {}\n", p.create_index));
            out.push_str(&format!("   Modify Index: {}\n", p.modify_index));
        }
    }
    out.push('\n');
    out
}

fn role_body(out: &mut String, r: &Role, meta: bool, indent: &str) {
    out.push_str(&format!("{indent}Description:  {}\n", r.description));
    if meta {
        out.push_str(&format!("{indent}Hash:         {}\n", hex_hash(r.hash.as_deref())));
        out.push_str(&format!("{indent}Create Index: {}\n", r.create_index));
        out.push_str(&format!("{indent}Modify Index: {}\n", r.modify_index));
    }
    links(out, "Policies", indent, &r.policies);
    identities(out, indent, &r.service_identities, &r.node_identities);
}

/// One role, as `consul acl role read` (and create, update) prints it.
pub fn role(r: &Role, meta: bool) -> String {
    let mut out = format!("ID:           {}\nName:         {}\n", r.id, r.name);
    role_body(&mut out, r, meta, "");
    out.push('\n');
    out
}

/// `consul acl role list`: a `name:` block per role, then a blank line.
pub fn role_list(list: &[Role], meta: bool) -> String {
    let mut out = String::new();
    for r in list {
        out.push_str(&format!("{}:\n   ID:           {}\n", r.name, r.id));
        role_body(&mut out, r, meta, "   ");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, name: &str) -> Link {
        Link { id: id.into(), name: name.into() }
    }

    #[test]
    fn times_print_as_go_prints_them() {
        assert_eq!(go_time("2026-12-07T16:23:12.298870514Z"), "2026-12-07 16:23:12.298870514 +0000 UTC");
        assert_eq!(go_time("2026-12-07T16:23:12.350Z"), "2026-12-07 16:23:12.35 +0000 UTC");
        assert_eq!(go_time("2026-12-07T16:23:12.000Z"), "2026-12-07 16:23:12 +0000 UTC");
        assert_eq!(go_time("2026-12-07T16:23:12+02:00"), "2026-12-07 16:23:12 +0200 +0200");
        assert_eq!(go_time("junk"), "junk");
    }

    /// Consul 1.8.7's `consul acl token create -policy-name app-write -service-identity web
    /// -service-identity db:dc1,dc2 -node-identity n1:dc1 -expires-ttl 15m -meta`, byte for byte.
    #[test]
    fn a_token_prints_as_consul_prints_it() {
        let t = Token {
            create_index: 22,
            modify_index: 22,
            accessor_id: "d8e9361e-02d5-1503-7146-238fd1ae069e".into(),
            secret_id: "4e453af7-c61b-2409-542d-7a35c470b0a6".into(),
            policies: vec![link("7750dbd6-d9d3-9ba4-6aa2-99c0401e6013", "app-write")],
            service_identities: vec![
                ServiceIdentity { service_name: "db".into(), datacenters: vec!["dc1".into(), "dc2".into()] },
                ServiceIdentity { service_name: "web".into(), datacenters: vec![] },
            ],
            node_identities: vec![NodeIdentity { node_name: "n1".into(), datacenter: "dc1".into() }],
            expiration_time: Some("2026-12-07T16:39:25.449608637Z".into()),
            create_time: "2026-12-07T16:24:25.449608637Z".into(),
            hash: Some("PziOXoFmvfvWFtT/+aAy0eoOTZ657a1rFPgRHJnUExs=".into()),
            ..Token::default()
        };
        let want = "AccessorID:       d8e9361e-02d5-1503-7146-238fd1ae069e
SecretID:         4e453af7-c61b-2409-542d-7a35c470b0a6
Description:      
Local:            false
Create Time:      2026-12-07 16:24:25.449608637 +0000 UTC
Expiration Time:  2026-12-07 16:39:25.449608637 +0000 UTC
Hash:             3f388e5e8166bdfbd616d4fff9a032d1ea0e4d9eb9edad6b14f8111c99d4131b
Create Index:     22
Modify Index:     22
Policies:
   7750dbd6-d9d3-9ba4-6aa2-99c0401e6013 - app-write
Service Identities:
   db (Datacenters: dc1, dc2)
   web (Datacenters: all)
Node Identities:
   n1 (Datacenter: dc1)

";
        assert_eq!(token(&t, true), want);
        let stub = TokenStub {
            accessor_id: t.accessor_id.clone(),
            service_identities: t.service_identities.clone(),
            node_identities: t.node_identities.clone(),
            create_time: t.create_time.clone(),
            ..TokenStub::default()
        };
        let anon = TokenStub {
            accessor_id: "00000000-0000-0000-0000-000000000002".into(),
            description: "Anonymous Token".into(),
            create_time: "2026-12-07T16:23:04.336945866Z".into(),
            ..TokenStub::default()
        };
        let want = "AccessorID:       d8e9361e-02d5-1503-7146-238fd1ae069e
Description:      
Local:            false
Create Time:      2026-12-07 16:24:25.449608637 +0000 UTC
Legacy:           false
Service Identities:
   db (Datacenters: dc1, dc2)
   web (Datacenters: all)
Service Identities:
   db (Datacenters: dc1, dc2)
   web (Datacenters: all)

AccessorID:       00000000-0000-0000-0000-000000000002
Description:      Anonymous Token
Local:            false
Create Time:      2026-12-07 16:23:04.336945866 +0000 UTC
Legacy:           false

";
        assert_eq!(token_list(&[stub, anon], false), want);
    }

    #[test]
    fn policies_print_as_consul_prints_them() {
        let p = Policy {
            id: "c9ecc2f2-bf64-271b-7489-66e0e32dde73".into(),
            name: "app-read".into(),
            rules: "key_prefix \"app/\" { policy = \"read\" }".into(),
            datacenters: Some(vec!["dc1".into(), "dc2".into()]),
            ..Policy::default()
        };
        let want = "ID:           c9ecc2f2-bf64-271b-7489-66e0e32dde73
Name:         app-read
Description:  
Datacenters:  dc1, dc2
Rules:
key_prefix \"app/\" { policy = \"read\" }
";
        assert_eq!(policy(&p, false), want);
        let stub = PolicyStub {
            id: "00000000-0000-0000-0000-000000000001".into(),
            name: "global-management".into(),
            description: "Builtin Policy that grants unlimited access".into(),
            hash: Some("swIQt6up+s0cV4kePfJ2aRdKCLaQyykF4Hl1Nfdeumk=".into()),
            create_index: 4,
            modify_index: 4,
            ..PolicyStub::default()
        };
        let want = "global-management:
   ID:           00000000-0000-0000-0000-000000000001
   Description:  Builtin Policy that grants unlimited access
   Datacenters:  
   Hash:         b30210b7aba9facd1c57891e3df27669174a08b690cb2905e0797535f75eba69
   Create Index: 4
   Modify Index: 4

";
        assert_eq!(policy_list(&[stub], true), want);
        let json_out = json(&[PolicyStub { id: "x".into(), ..PolicyStub::default() }]).expect("json");
        assert_eq!(
            json_out,
            "[\n    {\n        \"ID\": \"x\",\n        \"Name\": \"\",\n        \"Description\": \"\",\n        \"Datacenters\": null,\n        \"Hash\": null,\n        \"CreateIndex\": 0,\n        \"ModifyIndex\": 0\n    }\n]\n"
        );
    }

    #[test]
    fn roles_print_as_consul_prints_them() {
        let r = Role {
            id: "d7941f4a-44b7-8ec5-1868-e1608872bbd1".into(),
            name: "web-role".into(),
            description: "Web role".into(),
            policies: vec![link("7750dbd6-d9d3-9ba4-6aa2-99c0401e6013", "app-write")],
            service_identities: vec![ServiceIdentity { service_name: "web".into(), datacenters: vec![] }],
            node_identities: vec![NodeIdentity { node_name: "n1".into(), datacenter: "dc1".into() }],
            ..Role::default()
        };
        let want = "ID:           d7941f4a-44b7-8ec5-1868-e1608872bbd1
Name:         web-role
Description:  Web role
Policies:
   7750dbd6-d9d3-9ba4-6aa2-99c0401e6013 - app-write
Service Identities:
   web (Datacenters: all)
Node Identities:
   n1 (Datacenter: dc1)

";
        assert_eq!(role(&r, false), want);
        let want = "web-role:
   ID:           d7941f4a-44b7-8ec5-1868-e1608872bbd1
   Description:  Web role
   Policies:
      7750dbd6-d9d3-9ba4-6aa2-99c0401e6013 - app-write
   Service Identities:
      web (Datacenters: all)
   Node Identities:
      n1 (Datacenter: dc1)

";
        assert_eq!(role_list(&[r], false), want);
    }

    #[test]
    fn unknown_formats_are_refused() {
        assert_eq!(Format::parse("json"), Ok(Format::Json));
        assert_eq!(Format::parse("yaml"), Err("Unknown format: yaml".into()));
    }
}
