//! What `cairn acl` works out before it writes: a unique ID prefix to the full ID (Consul's
//! "ID arguments accept a unique prefix"), a policy name to its ID, `-service-identity` and
//! `-node-identity` arguments, and `-rules` values (`@file`, `-` for stdin, or the text).
//!
//! Input: the flag values and, for prefixes, the agent's lists (`GET /v1/acl/{policies,
//! tokens,roles}`). Output: IDs and identities, or Consul 1.8.7's messages (`No such policy ID
//! with prefix: x`, `Partial token ID is not unique`, `Malformed -node-identity argument:
//! "n1"`). A full 36-character ID, `global-management` and `anonymous` are taken without a
//! list, as Consul does.

use std::io::Read as _;

use super::wire::{NodeIdentity, PolicyStub, Role, ServiceIdentity, TokenStub};
use crate::cli::api::{Api, ApiError};

/// The built-in management policy's ID.
pub const GLOBAL_MANAGEMENT_ID: &str = "00000000-0000-0000-0000-000000000001";
/// The anonymous token's AccessorID.
pub const ANONYMOUS_ID: &str = "00000000-0000-0000-0000-000000000002";
/// The length of a UUID, which is taken as a full ID.
const UUID_LEN: usize = 36;

/// Why a lookup failed (its text follows Consul's).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The agent call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A wrong argument or nothing (or several things) matched.
    #[error("{0}")]
    Miss(String),
}

/// The one ID among `ids` that starts with `prefix`, as Consul words a miss.
fn unique<'a>(what: &str, prefix: &str, ids: impl Iterator<Item = &'a str>) -> Result<String, LookupError> {
    let found: Vec<&str> = ids.filter(|id| id.starts_with(prefix)).collect();
    match found.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(LookupError::Miss(format!("No such {what} ID with prefix: {prefix}"))),
        _ => Err(LookupError::Miss(format!("Partial {what} ID is not unique"))),
    }
}

/// A policy ID from a unique prefix (or `global-management`).
pub async fn policy_id(api: &Api, partial: &str) -> Result<String, LookupError> {
    if partial == "global-management" {
        return Ok(GLOBAL_MANAGEMENT_ID.to_owned());
    }
    if partial.len() == UUID_LEN {
        return Ok(partial.to_owned());
    }
    let list: Vec<PolicyStub> = api.get("/v1/acl/policies").await?.json()?;
    unique("policy", partial, list.iter().map(|p| p.id.as_str()))
}

/// A policy's ID from its name.
pub async fn policy_id_by_name(api: &Api, name: &str) -> Result<String, LookupError> {
    let list: Vec<PolicyStub> = api.get("/v1/acl/policies").await?.json()?;
    list.into_iter()
        .find(|p| p.name == name)
        .map(|p| p.id)
        .ok_or_else(|| LookupError::Miss(format!("No such policy with name {name}")))
}

/// A token AccessorID from a unique prefix (or `anonymous`).
pub async fn token_id(api: &Api, partial: &str) -> Result<String, LookupError> {
    if partial == "anonymous" {
        return Ok(ANONYMOUS_ID.to_owned());
    }
    if partial.len() == UUID_LEN {
        return Ok(partial.to_owned());
    }
    let list: Vec<TokenStub> = api.get("/v1/acl/tokens").await?.json()?;
    unique("token", partial, list.iter().map(|t| t.accessor_id.as_str()))
}

/// A role ID from a unique prefix.
pub async fn role_id(api: &Api, partial: &str) -> Result<String, LookupError> {
    if partial.len() == UUID_LEN {
        return Ok(partial.to_owned());
    }
    let list: Vec<Role> = api.get("/v1/acl/roles").await?.json()?;
    unique("role", partial, list.iter().map(|r| r.id.as_str()))
}

/// `-service-identity SERVICE[:dc1,dc2]`.
pub fn service_identity(arg: &str) -> Result<ServiceIdentity, LookupError> {
    let parts: Vec<&str> = arg.split(':').collect();
    match parts.as_slice() {
        [name] => Ok(ServiceIdentity { service_name: (*name).to_owned(), datacenters: Vec::new() }),
        [name, dcs] => Ok(ServiceIdentity {
            service_name: (*name).to_owned(),
            datacenters: dcs.split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect(),
        }),
        _ => Err(LookupError::Miss(format!("Malformed -service-identity argument: {arg:?}"))),
    }
}

/// `-node-identity NODE:dc`.
pub fn node_identity(arg: &str) -> Result<NodeIdentity, LookupError> {
    match arg.split(':').collect::<Vec<_>>().as_slice() {
        [name, dc] => Ok(NodeIdentity { node_name: (*name).to_owned(), datacenter: (*dc).to_owned() }),
        _ => Err(LookupError::Miss(format!("Malformed -node-identity argument: {arg:?}"))),
    }
}

/// An IO error as Go words it (`open f: no such file or directory`).
pub fn go_io_error(path: &str, e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    let lower: String = chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default();
    format!("open {path}: {lower}")
}

/// A `-rules` value: `@FILE` is the file, `-` is stdin, anything else is the rules.
pub fn rules(value: &str) -> Result<String, String> {
    if value == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("Failed to read stdin: {e}"))?;
        return Ok(text);
    }
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("Failed to read file: {}", go_io_error(path, &e))),
        None => Ok(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_resolve_to_one_id() {
        let ids = ["051e3732-5d94", "229122ce-b6ab", "5a885c5e-4833", "5c6867e5-685c"];
        assert_eq!(unique("policy", "22", ids.into_iter()).expect("one"), "229122ce-b6ab");
        let miss = unique("policy", "zz", ids.into_iter()).expect_err("none");
        assert_eq!(miss.to_string(), "No such policy ID with prefix: zz");
        let many = unique("token", "5", ids.into_iter()).expect_err("two");
        assert_eq!(many.to_string(), "Partial token ID is not unique");
    }

    #[test]
    fn identities_parse_as_consuls() {
        assert_eq!(
            service_identity("db:dc1,dc2").expect("ok"),
            ServiceIdentity { service_name: "db".into(), datacenters: vec!["dc1".into(), "dc2".into()] }
        );
        assert_eq!(service_identity("web").expect("ok").datacenters, Vec::<String>::new());
        assert_eq!(
            service_identity("a:b:c").expect_err("bad").to_string(),
            "Malformed -service-identity argument: \"a:b:c\""
        );
        assert_eq!(
            node_identity("n1:dc1").expect("ok"),
            NodeIdentity { node_name: "n1".into(), datacenter: "dc1".into() }
        );
        assert_eq!(
            node_identity("n1").expect_err("bad").to_string(),
            "Malformed -node-identity argument: \"n1\""
        );
    }

    #[test]
    fn rules_come_from_a_file_or_inline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("rules.hcl");
        std::fs::write(&file, "key_prefix \"\" { policy = \"read\" }\n").expect("write");
        let at = format!("@{}", file.display());
        assert_eq!(rules(&at).expect("file"), "key_prefix \"\" { policy = \"read\" }\n");
        assert_eq!(rules("operator = \"read\"").expect("inline"), "operator = \"read\"");
        assert_eq!(
            rules("@/nonexistent/r.hcl").expect_err("missing"),
            "Failed to read file: open /nonexistent/r.hcl: no such file or directory"
        );
    }
}
