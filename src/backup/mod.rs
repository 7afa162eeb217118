//! Backup files: the whole catalog at one Raft index, checksummed (`GET`/`PUT /v1/snapshot`,
//! `cairn snapshot save|restore|inspect`), in cairn's own format or Consul 1.8.7's archive.
//!
//! [`load`] tells the two apart by content: a file that starts with cairn's magic line is
//! cairn's; anything else is read as Consul's archive (`archive`: gzip'd tar of `meta.json`,
//! `state.bin`, `SHA256SUMS`), so a file that is neither gets Consul's own error text.
//! A Consul archive's `state.bin` becomes a catalog in `consul_read` (the migration path) and
//! `consul_write` makes one from a catalog (`-format consul`); both go through our msgpack
//! reader and writer (`codec::msgpack`).
//!
//! cairn's own format:
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
//! Why cairn keeps a format of its own beside Consul's: it holds every field cairn models
//! (Consul's records have no room for some, such as multi-port services), round-trips exactly,
//! is readable with `head -3`, and says which check failed. Consul's archive is what moves a
//! datacenter between Consul and cairn.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::catalog::CatalogDump;
use crate::codec;

pub(crate) mod archive;
mod consul_read;
#[cfg(test)]
mod consul_tests;
mod consul_time;
mod consul_write;
pub mod fuzz_logic;

pub(crate) use archive::ArchiveError;
pub(crate) use consul_read::Import;
pub(crate) use consul_read::StateError;

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
    /// A Consul archive is damaged, truncated or not an archive (Consul's message).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A Consul archive's `state.bin` is not Consul's FSM records.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A checked snapshot file of either format.
#[derive(Debug, Clone)]
pub(crate) enum Loaded {
    /// cairn's own.
    Cairn(Backup),
    /// Consul's archive, read into a catalog.
    Consul {
        /// Its `meta.json`.
        meta: archive::Meta,
        /// The catalog and what was left out.
        import: Import,
    },
}

impl Loaded {
    /// The catalog the file holds.
    pub(crate) fn catalog(&self) -> &CatalogDump {
        match self {
            Self::Cairn(b) => &b.catalog,
            Self::Consul { import, .. } => &import.dump,
        }
    }
}

/// Checks and decodes a snapshot file of either format; a Consul catalog's rows get index
/// `at` and its nodes without a datacenter `dc` (`consul_read`).
pub(crate) fn load(file: &[u8], at: u64, dc: &str) -> Result<Loaded, BackupError> {
    if file.starts_with(MAGIC.as_bytes()) {
        return decode(file).map(Loaded::Cairn);
    }
    let a = archive::read(file)?;
    let import = consul_read::import(&a.state, at, dc)?;
    Ok(Loaded::Consul { meta: a.meta, import })
}

/// What `cairn snapshot inspect` shows (Consul's fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inspect {
    /// Consul's `<term>-<index>-<ms>`; cairn files: `cairn-<index>`.
    pub id: String,
    /// Bytes of the state (`state.bin`, or cairn's payload).
    pub size: u64,
    /// Raft index.
    pub index: u64,
    /// Raft term (cairn files do not record it: 0).
    pub term: u64,
    /// Format version.
    pub version: u64,
}

/// Checks a file of either format and describes it (`cairn snapshot inspect`).
pub(crate) fn inspect(file: &[u8]) -> Result<Inspect, BackupError> {
    if file.starts_with(MAGIC.as_bytes()) {
        let b = decode(file)?;
        let size = file.len() - file.windows(2).position(|w| w == b"\n\n").map_or(0, |p| p + 2);
        return Ok(Inspect {
            id: format!("cairn-{}", b.index),
            size: size as u64,
            index: b.index,
            term: 0,
            version: 1,
        });
    }
    let a = archive::read(file)?;
    consul_read::import(&a.state, 1, "")?;
    Ok(Inspect {
        id: a.meta.id,
        size: a.meta.size,
        index: a.meta.index,
        term: a.meta.term,
        version: a.meta.version,
    })
}

/// A Consul 1.8.7 archive of `catalog` at `index` in Raft term `term`, taken at `now_ms`.
pub(crate) fn encode_consul(
    catalog: &CatalogDump,
    index: u64,
    term: u64,
    now_ms: u64,
) -> Result<Vec<u8>, BackupError> {
    let state = consul_write::export(catalog, index);
    let meta = archive::Meta { version: 1, id: format!("{term}-{index}-{now_ms}"), index, term, size: 0 };
    Ok(archive::write(&meta, &state, now_ms / 1000)?)
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
