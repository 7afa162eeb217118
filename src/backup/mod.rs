//! Backup files: the whole catalog at one Raft index, checksummed (`GET`/`PUT /v1/snapshot`,
//! `cairn snapshot save|restore`).
//!
//! Format (cairn's own, not Consul's tar archive):
//!
//! ```text
//! cairn-snapshot 1\n
//! sha256 <64 hex digits of the payload>\n
//! length <payload bytes>\n
//! \n
//! <payload: JSON {"index": N, "datacenter": "...", "catalog": CatalogDump}>
//! ```
//!
//! Save is consistent because it encodes one published (immutable) snapshot. Restore checks
//! the header, length and checksum before anything else, then replaces the catalog through
//! Raft (`Command::Restore`), so it is atomic and replicated like any write.
//!
//! Why not Consul's archive (gzip'd tar of `meta.json`, `state.bin`, `SHA256SUMS`, through the
//! `tar` and `flate2` crates): its `state.bin` is Consul's msgpack stream of its own state
//! store, which cairn neither writes nor reads, so borrowing the container alone would make
//! files that look like Consul's yet restore only into cairn. The text header above needs no
//! crate beyond sha2 (already used), is readable with `head -3`, and says which check failed.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::catalog::CatalogDump;
use crate::codec;

const MAGIC: &str = "cairn-snapshot 1";

/// What a backup file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Backup {
    /// Raft index of the catalog saved.
    pub index: u64,
    /// Datacenter of the agent that saved it.
    pub datacenter: String,
    /// The catalog.
    pub catalog: CatalogDump,
}

/// Why a backup file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackupError {
    /// Not a cairn snapshot, or another version of the format.
    #[error("not a cairn snapshot file (expected a first line {MAGIC:?})")]
    Magic,
    /// A header line is missing or malformed.
    #[error("malformed snapshot header: {0}")]
    Header(String),
    /// The payload is shorter or longer than the header says.
    #[error("snapshot is truncated or padded: header says {expected} bytes, found {found}")]
    Length {
        /// From the header.
        expected: usize,
        /// In the file.
        found: usize,
    },
    /// The checksum does not match.
    #[error("snapshot checksum mismatch: the file is corrupt")]
    Checksum,
    /// The payload is not a catalog.
    #[error("snapshot payload is invalid: {0}")]
    Payload(String),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes `backup` as a file.
pub(crate) fn encode(backup: &Backup) -> Result<Vec<u8>, BackupError> {
    let payload =
        codec::Format::BackupBody.encode(backup).map_err(|e| BackupError::Payload(e.to_string()))?;
    let mut out = format!("{MAGIC}\nsha256 {}\nlength {}\n\n", hex(&Sha256::digest(&payload)), payload.len())
        .into_bytes();
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Checks and decodes a file made by [`encode`].
pub(crate) fn decode(file: &[u8]) -> Result<Backup, BackupError> {
    let mut rest = file;
    let mut line = || -> Result<&str, BackupError> {
        let end = rest.iter().position(|&b| b == b'\n').ok_or(BackupError::Magic)?;
        let (l, r) = rest.split_at(end);
        rest = r.get(1..).unwrap_or_default();
        std::str::from_utf8(l).map_err(|_| BackupError::Magic)
    };
    if line()? != MAGIC {
        return Err(BackupError::Magic);
    }
    let sum = line()?
        .strip_prefix("sha256 ")
        .filter(|s| s.len() == 64)
        .ok_or_else(|| BackupError::Header("sha256 line".into()))?
        .to_owned();
    let expected: usize = line()?
        .strip_prefix("length ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| BackupError::Header("length line".into()))?;
    if !line()?.is_empty() {
        return Err(BackupError::Header("blank line after the header".into()));
    }
    if rest.len() != expected {
        return Err(BackupError::Length { expected, found: rest.len() });
    }
    if hex(&Sha256::digest(rest)) != sum {
        return Err(BackupError::Checksum);
    }
    codec::Format::BackupBody.decode(rest).map_err(|e| BackupError::Payload(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Node;

    fn backup() -> Backup {
        let mut catalog = CatalogDump::default();
        catalog.nodes.push(Node::new("n1", "10.0.0.1", "dc1"));
        Backup { index: 42, datacenter: "dc1".into(), catalog }
    }

    #[test]
    fn round_trip() {
        let file = encode(&backup()).unwrap();
        assert!(file.starts_with(b"cairn-snapshot 1\nsha256 "));
        assert_eq!(decode(&file).unwrap(), backup());
    }

    #[test]
    fn damage_is_detected() {
        let file = encode(&backup()).unwrap();
        let check = |bytes: &[u8], want: &dyn Fn(&BackupError) -> bool| {
            let err = decode(bytes).unwrap_err();
            assert!(want(&err), "{err}");
        };
        check(&file[..file.len() - 1], &|e| matches!(e, BackupError::Length { .. }));
        let mut flipped = file.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x01;
        check(&flipped, &|e| *e == BackupError::Checksum);
        check(b"PK\x03\x04 a zip", &|e| *e == BackupError::Magic);
        check(b"cairn-snapshot 1\nsha256 x\n", &|e| matches!(e, BackupError::Header(_)));
        check(b"", &|e| *e == BackupError::Magic);
    }
}
