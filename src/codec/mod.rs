//! CODEC: the one place that turns persisted and wire values into bytes and back.
//!
//! Input: a value of one of cairn's own formats. Output: its bytes (and back). The callers
//! keep their own framing (a frame's length prefix, a backup file's header and checksum, an
//! LMDB key); only the payload encoding lives here. The encoding is JSON (serde_json) today.
//!
//! | Format | `Format::encode` / `decode` | Where the bytes live |
//! |---|---|---|
//! | Raft log entry (`raft::Entry`) | `Format::Entry` | LMDB `raft-log` table (index -> entry) |
//! | Raft and KV metadata (vote, committed, purged, last applied, membership, snapshot meta, lock delays) | `Format::Meta` | LMDB `meta` table |
//! | Catalog row (node, service, check, prepared query, KV entry, session) | [`Row`] (heed codec), `Format::Row` | LMDB catalog tables |
//! | Raft snapshot (`raft::state_machine::SnapshotPayload`) | `Format::Snapshot` | LMDB `meta` (`snapshot.data`), InstallSnapshot chunks on the RPC port |
//! | Server-RPC frame payload (`rpc::Request`, `rpc::Response`, `rpc::Frame`) | `Format::FramePayload` | the server RPC port (8300), after a 4-byte length |
//! | Backup file body (`backup::Backup`) | `Format::BackupBody` | backup files and `/v1/snapshot`, after the text header |
//! | Gossip node meta (`gossip::NodeMeta`) | [`encode_node_meta`] / [`decode_node_meta`] | memberlist's node meta (LAN gossip) |
//! | Agent's local service/check file | `Format::LocalFile` | `<data_dir>/services/*.json`, `<data_dir>/checks/*.json` |
//! | Gossip keyring file (a JSON array of base64 keys, primary first: Consul's file) | `Format::KeyringFile` | `<data_dir>/serf/local.keyring` |
//! | Agent ACL tokens (`acl_state::TokensFile`: `default`, `agent`, `agent_master`, `replication`: Consul's file) | `Format::AclTokensFile` | `<data_dir>/acl-tokens.json` |
//! | Keyring query and reply (`gossip::keyquery::KeyringMessage`) | `Format::KeyringMessage` | memberlist user messages (LAN gossip, encrypted with the keyring) |
//! | Consul snapshot archive's `meta.json` (`backup::consul::Meta`: raft's `SnapshotMeta`) | `Format::ConsulMeta` | Consul snapshot archives (`cairn snapshot save -format consul`, `/v1/snapshot`) |
//! | Consul's FSM records (`state.bin`: go-msgpack values) | [`msgpack`] | Consul snapshot archives |
//! | Vivaldi coordinate in probe acks, user event (`catalog::operator::Coordinate`, `gossip::user_event::UserEvent`) | `Format::GossipPayload` | memberlist ack payloads and user messages (LAN gossip) |
//!
//! Invariants:
//! - A change here changes a persisted or wire format: add fields with serde defaults, never
//!   rename or remove one. The golden-bytes tests (`tests.rs`) pin one value of each format.
//! - `encode`/`decode` are generic because most of the types live in higher layers (raft, rpc,
//!   backup, gossip, local); each caller passes only its own format's type.
//! - [`CodecError`] names the format that failed; its text is serde_json's message alone, so
//!   the error texts callers wrap (and clients see) are those of before this module.
//! - Nothing outside this module calls serde_json on these formats
//!   (`tests/it/architecture.rs` checks it).

pub(crate) mod msgpack;

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One of cairn's persisted or wire formats (what [`CodecError`] names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Format {
    /// A Raft log entry.
    Entry,
    /// A value of the LMDB `meta` table.
    Meta,
    /// A catalog row.
    Row,
    /// A Raft snapshot payload.
    Snapshot,
    /// A server-RPC frame payload.
    FramePayload,
    /// A backup file body.
    BackupBody,
    /// A gossip node meta.
    NodeMeta,
    /// An agent's local service or check file.
    LocalFile,
    /// The gossip keyring file.
    KeyringFile,
    /// A keyring query or reply between agents.
    KeyringMessage,
    /// The agent's ACL tokens file (`<data_dir>/acl-tokens.json`).
    AclTokensFile,
    /// A coordinate in a probe ack, or a user event, between agents.
    GossipPayload,
    /// A Consul snapshot archive's `meta.json` (`backup::consul`).
    ConsulMeta,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Entry => "raft log entry",
            Self::Meta => "raft meta value",
            Self::Row => "catalog row",
            Self::Snapshot => "raft snapshot",
            Self::FramePayload => "rpc frame payload",
            Self::BackupBody => "backup body",
            Self::NodeMeta => "gossip node meta",
            Self::LocalFile => "local state file",
            Self::KeyringFile => "keyring file",
            Self::KeyringMessage => "keyring message",
            Self::AclTokensFile => "ACL tokens file",
            Self::GossipPayload => "gossip payload",
            Self::ConsulMeta => "snapshot metadata",
        })
    }
}

/// A value of `format` did not encode or decode. Displays as serde_json's message alone (the
/// callers' error texts wrap it as before); [`CodecError::format`] says which format failed.
#[derive(Debug, thiserror::Error)]
// Not `#[source]`: the text already is serde_json's, so an error chain does not repeat it.
#[error("{json}")]
pub(crate) struct CodecError {
    format: Format,
    json: serde_json::Error,
}

impl CodecError {
    /// The format that failed.
    #[cfg(test)]
    pub(crate) fn format(&self) -> Format {
        self.format
    }
}

impl Format {
    /// Encodes a value of this format (a local file or the keyring file pretty-printed, for
    /// people reading it, as Consul writes its keyring).
    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let bytes = match self {
            Self::LocalFile | Self::KeyringFile | Self::AclTokensFile => serde_json::to_vec_pretty(value),
            _ => serde_json::to_vec(value),
        };
        bytes.map_err(|json| CodecError { format: self, json })
    }

    /// Decodes a value of this format.
    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|json| CodecError { format: self, json })
    }
}

/// Encodes a gossip node meta (a string: memberlist's meta is text).
pub(crate) fn encode_node_meta<T: Serialize>(meta: &T) -> Result<String, CodecError> {
    serde_json::to_string(meta).map_err(|json| CodecError { format: Format::NodeMeta, json })
}

/// Decodes a gossip node meta.
pub(crate) fn decode_node_meta<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Format::NodeMeta.decode(bytes)
}

/// The heed codec of the catalog tables: `Format::Row` as an LMDB value type.
pub(crate) struct Row<T>(PhantomData<T>);

impl<'a, T: Serialize + 'a> heed::BytesEncode<'a> for Row<T> {
    type EItem = T;

    fn bytes_encode(item: &'a T) -> Result<Cow<'a, [u8]>, heed::BoxedError> {
        Ok(Cow::Owned(Format::Row.encode(item)?))
    }
}

impl<'a, T: DeserializeOwned + 'a> heed::BytesDecode<'a> for Row<T> {
    type DItem = T;

    fn bytes_decode(bytes: &'a [u8]) -> Result<T, heed::BoxedError> {
        Ok(Format::Row.decode(bytes)?)
    }
}

#[cfg(test)]
mod tests;
