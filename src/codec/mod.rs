//! CODEC: the one place that turns persisted and wire values into bytes and back.
//!
//! Input: a value of one of cairn's own formats. Output: its bytes (and back). The callers
//! keep their own framing (a frame's length prefix, a backup file's header and checksum, an
//! LMDB key); only the payload encoding lives here. The encoding is JSON (serde_json) today.
//!
//! | Format | Function | Where the bytes live |
//! |---|---|---|
//! | Raft log entry (`raft::Entry`) | [`encode_entry`] / [`decode_entry`] | LMDB `raft-log` table (index -> entry) |
//! | Raft and KV metadata (vote, committed, purged, last applied, membership, snapshot meta, lock delays) | [`encode_meta`] / [`decode_meta`] | LMDB `meta` table |
//! | Catalog row (node, service, check, prepared query, KV entry, session) | [`Row`] (heed codec), [`encode_row`] / [`decode_row`] | LMDB catalog tables |
//! | Raft snapshot (`raft::state_machine::SnapshotPayload`) | [`encode_snapshot`] / [`decode_snapshot`] | LMDB `meta` (`snapshot.data`), InstallSnapshot chunks on the RPC port |
//! | Server-RPC frame payload (`rpc::Request`, `rpc::Response`, `rpc::Frame`) | [`encode_frame_payload`] / [`decode_frame_payload`] | the server RPC port (8300), after a 4-byte length |
//! | Backup file body (`backup::Backup`) | [`encode_backup_body`] / [`decode_backup_body`] | backup files and `/v1/snapshot`, after the text header |
//! | Gossip node meta (`gossip::NodeMeta`) | [`encode_node_meta`] / [`decode_node_meta`] | memberlist's node meta (LAN gossip) |
//! | Agent's local service/check file | [`encode_local_file`] / [`decode_local_file`] | `<data_dir>/services/*.json`, `<data_dir>/checks/*.json` |
//!
//! Invariants:
//! - A change here changes a persisted or wire format: add fields with serde defaults, never
//!   rename or remove one. The golden-bytes tests (`tests.rs`) pin one value of each format.
//! - The functions are generic because most of the types live in higher layers (raft, rpc,
//!   backup, gossip, local); each caller passes only its own format's type.
//! - [`CodecError`] names the format that failed; its text is serde_json's message alone, so
//!   the error texts callers wrap (and clients see) are those of before this module.
//! - Nothing outside this module calls serde_json on these formats
//!   (`tests/it/architecture.rs` checks it).

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

fn encode<T: Serialize + ?Sized>(format: Format, value: &T) -> Result<Vec<u8>, CodecError> {
    serde_json::to_vec(value).map_err(|json| CodecError { format, json })
}

fn decode<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, CodecError> {
    serde_json::from_slice(bytes).map_err(|json| CodecError { format, json })
}

/// Encodes a Raft log entry (a row of the `raft-log` table).
pub(crate) fn encode_entry<T: Serialize>(entry: &T) -> Result<Vec<u8>, CodecError> {
    encode(Format::Entry, entry)
}

/// Decodes a Raft log entry.
pub(crate) fn decode_entry<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(Format::Entry, bytes)
}

/// Encodes a value of the `meta` table.
pub(crate) fn encode_meta<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode(Format::Meta, value)
}

/// Decodes a value of the `meta` table.
pub(crate) fn decode_meta<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(Format::Meta, bytes)
}

/// Encodes a catalog row.
pub(crate) fn encode_row<T: Serialize>(row: &T) -> Result<Vec<u8>, CodecError> {
    encode(Format::Row, row)
}

/// Decodes a catalog row.
pub(crate) fn decode_row<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(Format::Row, bytes)
}

/// Encodes a Raft snapshot payload.
pub(crate) fn encode_snapshot<T: Serialize>(payload: &T) -> Result<Vec<u8>, CodecError> {
    encode(Format::Snapshot, payload)
}

/// Decodes a Raft snapshot payload.
pub(crate) fn decode_snapshot<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(Format::Snapshot, bytes)
}

/// Encodes a server-RPC frame payload (the bytes after the length prefix).
pub(crate) fn encode_frame_payload<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    encode(Format::FramePayload, msg)
}

/// Decodes a server-RPC frame payload.
pub(crate) fn decode_frame_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(Format::FramePayload, bytes)
}

/// Encodes a backup file's body (the bytes after its header).
pub(crate) fn encode_backup_body<T: Serialize>(backup: &T) -> Result<Vec<u8>, CodecError> {
    encode(Format::BackupBody, backup)
}

/// Decodes a backup file's body.
pub(crate) fn decode_backup_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(Format::BackupBody, bytes)
}

/// Encodes a gossip node meta (a string: memberlist's meta is text).
pub(crate) fn encode_node_meta<T: Serialize>(meta: &T) -> Result<String, CodecError> {
    serde_json::to_string(meta).map_err(|json| CodecError { format: Format::NodeMeta, json })
}

/// Decodes a gossip node meta.
pub(crate) fn decode_node_meta<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(Format::NodeMeta, bytes)
}

/// Encodes an agent's local service or check file (pretty-printed, for people reading it).
pub(crate) fn encode_local_file<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    serde_json::to_vec_pretty(value).map_err(|json| CodecError { format: Format::LocalFile, json })
}

/// Decodes an agent's local service or check file.
pub(crate) fn decode_local_file<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode(Format::LocalFile, bytes)
}

/// The heed codec of the catalog tables: [`encode_row`] / [`decode_row`] as an LMDB value type.
pub(crate) struct Row<T>(PhantomData<T>);

impl<'a, T: Serialize + 'a> heed::BytesEncode<'a> for Row<T> {
    type EItem = T;

    fn bytes_encode(item: &'a T) -> Result<Cow<'a, [u8]>, heed::BoxedError> {
        Ok(Cow::Owned(encode_row(item)?))
    }
}

impl<'a, T: DeserializeOwned + 'a> heed::BytesDecode<'a> for Row<T> {
    type DItem = T;

    fn bytes_decode(bytes: &'a [u8]) -> Result<T, heed::BoxedError> {
        Ok(decode_row(bytes)?)
    }
}

#[cfg(test)]
mod tests;
