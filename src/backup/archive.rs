//! Consul's snapshot archive: a gzip'd tar of `meta.json` (raft's `SnapshotMeta`), `state.bin`
//! (the FSM's records, `backup::consul`) and `SHA256SUMS` (`<hex>  <name>` per file).
//!
//! Input: the archive's bytes (untrusted). Output: the verified [`Archive`] or an
//! [`ArchiveError`] whose text is Consul 1.8.7's (`snapshot/archive.go`, `snapshot.go`), so
//! scripts that match on Consul's messages keep working. And back: [`write`] makes an archive
//! `consul snapshot restore` accepts.
//!
//! Why our own tar code rather than the `tar` crate: the crate is not in the dependency tree
//! and is built around streams and a filesystem; here three small members are read from and
//! written to memory, never extracted, so a bounded reader of ustar headers (checksum
//! verified, PAX and GNU metadata members skipped, any other member refused as Consul does)
//! is about a hundred lines and cannot write outside memory. gzip goes through `flate2`.
//!
//! Invariants: nothing is returned unless both `meta.json` and `state.bin` are present and
//! match `SHA256SUMS`, which lists exactly those two; decompressed input is bounded by
//! [`MAX_STATE_BYTES`]; no input panics the reader (fuzzed).

use std::io::Read as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::codec;

/// Largest decompressed archive accepted.
pub(crate) const MAX_STATE_BYTES: u64 = 1024 * 1024 * 1024;

const BLOCK: usize = 512;

/// raft's `SnapshotMeta` as Consul writes it to `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Meta {
    /// Snapshot format version (1).
    pub version: u64,
    /// `<term>-<index>-<unix ms>`.
    #[serde(rename = "ID")]
    pub id: String,
    /// Raft index the snapshot was taken at.
    pub index: u64,
    /// Raft term of that index.
    pub term: u64,
    /// Length of `state.bin`.
    pub size: u64,
}

/// A verified archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Archive {
    /// `meta.json`.
    pub meta: Meta,
    /// `state.bin`.
    pub state: Vec<u8>,
}

/// Why an archive was refused; the texts are Consul's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// Not gzip, or the gzip header is damaged.
    #[error("failed to decompress snapshot: {0}")]
    Decompress(String),
    /// The tar stream or a member is damaged or truncated.
    #[error("failed to read snapshot file: failed reading snapshot: {0}")]
    Tar(String),
    /// A member other than Consul's three.
    #[error("failed to read snapshot file: unexpected file {0:?} in snapshot")]
    UnexpectedFile(String),
    /// `meta.json` is not raft's metadata.
    #[error("failed to read snapshot file: failed to decode snapshot metadata: {0}")]
    Meta(String),
    /// `SHA256SUMS` does not match the members.
    #[error("failed to read snapshot file: failed checking integrity of snapshot: {0}")]
    Integrity(String),
}

/// Whether `bytes` start like a gzip stream (what a Consul archive is).
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

fn inflate(file: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    if file.len() < 10 {
        return Err(ArchiveError::Decompress("unexpected EOF".into()));
    }
    if !is_gzip(file) || file[2] != 8 {
        return Err(ArchiveError::Decompress("gzip: invalid header".into()));
    }
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(file).take(MAX_STATE_BYTES + 1);
    reader.read_to_end(&mut out).map_err(|e| {
        ArchiveError::Tar(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "unexpected EOF".into(),
            _ => format!("gzip: {e}"),
        })
    })?;
    if out.len() as u64 > MAX_STATE_BYTES {
        return Err(ArchiveError::Tar(format!("archive larger than {MAX_STATE_BYTES} bytes uncompressed")));
    }
    Ok(out)
}

/// An octal numeric field (NUL or space terminated, leading spaces allowed).
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn name(header: &[u8]) -> String {
    let field = |r: std::ops::Range<usize>| {
        let f = &header[r];
        String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())]).into_owned()
    };
    let (base, prefix) = (field(0..100), field(345..500));
    if &header[257..263] == b"ustar\0" && !prefix.is_empty() { format!("{prefix}/{base}") } else { base }
}

/// The members of a tar stream: (name, data) of each regular file, metadata members skipped.
fn members(tar: &[u8]) -> Result<Vec<(String, &[u8])>, ArchiveError> {
    let invalid = || ArchiveError::Tar("archive/tar: invalid tar header".into());
    let eof = || ArchiveError::Tar("unexpected EOF".into());
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(header) = tar.get(pos..pos + BLOCK) else {
            // Go's reader accepts an archive that ends without its two zero blocks.
            return if pos == tar.len() { Ok(out) } else { Err(eof()) };
        };
        if header.iter().all(|&b| b == 0) {
            return Ok(out);
        }
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(b) })
            .sum();
        if octal(&header[148..156]) != Some(sum) {
            return Err(invalid());
        }
        let size = octal(&header[124..136]).and_then(|s| usize::try_from(s).ok()).ok_or_else(invalid)?;
        let start = pos + BLOCK;
        let data = start.checked_add(size).and_then(|end| tar.get(start..end)).ok_or_else(eof)?;
        match header[156] {
            b'0' | 0 | b'7' => out.push((name(header), data)),
            // PAX extended and global headers, GNU long names: metadata about the next member.
            b'x' | b'g' | b'L' | b'K' => {}
            _ => return Err(ArchiveError::UnexpectedFile(name(header))),
        }
        pos = start + size.div_ceil(BLOCK) * BLOCK;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `SHA256SUMS` against the two members, as Consul's `DecodeAndVerify`.
fn verify(sums: &[u8], meta: &[u8], state: &[u8]) -> Result<(), ArchiveError> {
    let files = [("meta.json", hex(&Sha256::digest(meta))), ("state.bin", hex(&Sha256::digest(state)))];
    let mut seen = [false; 2];
    for line in String::from_utf8_lossy(sums).lines() {
        let (sum, file) =
            line.split_once("  ").ok_or_else(|| ArchiveError::Integrity("unexpected EOF".into()))?;
        let i = files
            .iter()
            .position(|(f, _)| *f == file)
            .ok_or_else(|| ArchiveError::Integrity(format!("list missing hash for {file:?}")))?;
        if !sum.eq_ignore_ascii_case(&files[i].1) {
            return Err(ArchiveError::Integrity(format!("hash check failed for {file:?}")));
        }
        seen[i] = true;
    }
    match seen.iter().position(|s| !s) {
        Some(i) => Err(ArchiveError::Integrity(format!("file missing for {:?}", files[i].0))),
        None => Ok(()),
    }
}

/// Decompresses, unpacks and verifies a Consul snapshot archive.
pub(crate) fn read(file: &[u8]) -> Result<Archive, ArchiveError> {
    let tar = inflate(file)?;
    let (mut meta, mut state, mut sums) = (None, None, None);
    for (name, data) in members(&tar)? {
        match name.as_str() {
            "meta.json" => meta = Some(data),
            "state.bin" => state = Some(data),
            "SHA256SUMS" => sums = Some(data),
            _ => return Err(ArchiveError::UnexpectedFile(name)),
        }
    }
    let (meta, state) = (meta.unwrap_or_default(), state.unwrap_or_default());
    verify(sums.unwrap_or_default(), meta, state)?;
    let meta: Meta = codec::Format::ConsulMeta.decode(meta).map_err(|e| ArchiveError::Meta(e.to_string()))?;
    Ok(Archive { meta, state: state.to_vec() })
}

fn tar_header(out: &mut Vec<u8>, name: &str, size: usize, mtime: u64) {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mut put = |at: usize, text: String| h[at..at + text.len()].copy_from_slice(text.as_bytes());
    put(100, "0000600\0".into());
    put(108, "0000000\0".into());
    put(116, "0000000\0".into());
    put(124, format!("{size:011o}\0"));
    put(136, format!("{mtime:011o}\0"));
    put(156, "0".into());
    put(257, "ustar\0".into());
    put(263, "00".into());
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
}

fn tar_member(out: &mut Vec<u8>, name: &str, data: &[u8], mtime: u64) {
    tar_header(out, name, data.len(), mtime);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
}

/// A Consul snapshot archive of `state` (its `Size` is set here) taken at `mtime` (Unix s).
pub(crate) fn write(meta: &Meta, state: &[u8], mtime: u64) -> Result<Vec<u8>, ArchiveError> {
    let meta = Meta { size: state.len() as u64, ..meta.clone() };
    let mut meta_json =
        codec::Format::ConsulMeta.encode(&meta).map_err(|e| ArchiveError::Meta(e.to_string()))?;
    meta_json.push(b'\n');
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        hex(&Sha256::digest(&meta_json)),
        hex(&Sha256::digest(state))
    );
    let mut tar = Vec::with_capacity(state.len() + 4 * BLOCK);
    tar_member(&mut tar, "meta.json", &meta_json, mtime);
    tar_member(&mut tar, "state.bin", state, mtime);
    tar_member(&mut tar, "SHA256SUMS", sums.as_bytes(), mtime);
    tar.extend_from_slice(&[0u8; 2 * BLOCK]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).map_err(|e| ArchiveError::Tar(e.to_string()))?;
    gz.finish().map_err(|e| ArchiveError::Tar(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let meta = Meta { version: 1, id: "2-27-1".into(), index: 27, term: 2, size: 0 };
        write(&meta, b"\x81\xa9LastIndex\x1b", 1_700_000_000).unwrap()
    }

    #[test]
    fn write_then_read() {
        let a = read(&sample()).unwrap();
        assert_eq!(a.meta.index, 27);
        assert_eq!(a.meta.size, 12);
        assert_eq!(a.state, b"\x81\xa9LastIndex\x1b");
    }

    #[test]
    fn damage_gives_consuls_messages() {
        let file = sample();
        let err = |b: &[u8]| read(b).unwrap_err().to_string();
        assert_eq!(err(b"garbage\n"), "failed to decompress snapshot: unexpected EOF");
        assert_eq!(err(b"cairn-snapshot 1\nsha"), "failed to decompress snapshot: gzip: invalid header");
        assert!(err(&file[..file.len() / 2]).contains("unexpected EOF"), "{}", err(&file[..file.len() / 2]));
        // A changed byte inside state.bin: rebuild the tar with a flipped byte, keep the sums.
        let mut tar = inflate(&file).unwrap();
        let at = tar.windows(9).position(|w| w == b"LastIndex").unwrap();
        tar[at] ^= 0x20;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        assert_eq!(
            err(&gz.finish().unwrap()),
            "failed to read snapshot file: failed checking integrity of snapshot: hash check failed for \"state.bin\""
        );
    }

    #[test]
    fn any_bytes_after_a_gzip_header_never_panic() {
        let file = sample();
        for cut in 0..file.len() {
            let _ = read(&file[..cut]);
        }
        let tar = inflate(&file).unwrap();
        for i in (0..tar.len()).step_by(37) {
            let mut t = tar.clone();
            t[i] = t[i].wrapping_add(1);
            let _ = members(&t);
        }
    }
}
