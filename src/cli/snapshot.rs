//! `cairn snapshot save [-format consul] FILE`, `cairn snapshot restore FILE` and
//! `cairn snapshot inspect FILE`: backups of the local agent's catalog (`GET`/`PUT
//! /v1/snapshot`), in cairn's format or Consul 1.8.7's archive (both in `backup`).
//!
//! Save checks the file's checksum before keeping it and writes it atomically (a temporary
//! file in the same directory, fsync, rename, fsync of the directory), so FILE is either the
//! old file or a complete new one. Restore checks the file locally before sending it; the
//! agent checks it again and replaces the catalog through Raft.

use std::io::Write as _;
use std::path::Path;

use super::api::{Api, ApiError};
use crate::backup::{BackupError, Loaded, inspect as inspect_file, load};
use crate::catalog::CatalogDump;

/// Why a snapshot command failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The agent refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The file is not a valid backup.
    #[error("{file}: {source}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong with it.
        source: BackupError,
    },
    /// Reading or writing the file failed.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
}

fn summary(loaded: &Loaded) -> String {
    let head = match loaded {
        Loaded::Cairn(b) => format!("index {}, datacenter {}", b.index, b.datacenter),
        Loaded::Consul { meta, .. } => format!("Consul snapshot, index {}", meta.index),
    };
    let c: &CatalogDump = loaded.catalog();
    format!(
        "{head}, {} nodes, {} service instances, {} checks, {} keys",
        c.nodes.len(),
        c.services.len(),
        c.checks.len(),
        c.kv.entries.len()
    )
}

/// Writes `bytes` to `path` atomically.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()
}

/// `cairn snapshot save [-format consul] FILE`.
pub async fn save(api: &Api, file: &Path, format: &str) -> Result<String, SnapshotError> {
    let name = file.display().to_string();
    let path = if format == "consul" { "/v1/snapshot?format=consul" } else { "/v1/snapshot" };
    let body = api.get(path).await?.body;
    let loaded =
        load(&body, 1, "").map_err(|source| SnapshotError::Invalid { file: name.clone(), source })?;
    write_atomic(file, &body).map_err(|source| SnapshotError::Io { file: name.clone(), source })?;
    Ok(match &loaded {
        // Consul's line, for scripts written against `consul snapshot save`.
        Loaded::Consul { meta, .. } => format!("Saved and verified snapshot to index {}\n", meta.index),
        Loaded::Cairn(_) => format!("Saved snapshot to {name}: {}\n", summary(&loaded)),
    })
}

/// `cairn snapshot restore FILE`.
pub async fn restore(api: &Api, file: &Path) -> Result<String, SnapshotError> {
    let name = file.display().to_string();
    let body = std::fs::read(file).map_err(|source| SnapshotError::Io { file: name.clone(), source })?;
    let loaded =
        load(&body, 1, "").map_err(|source| SnapshotError::Invalid { file: name.clone(), source })?;
    api.put("/v1/snapshot", body).await?;
    Ok(format!("Restored snapshot from {name}: {}\n", summary(&loaded)))
}

/// `cairn snapshot inspect FILE`: Consul's table (`ID`, `Size`, `Index`, `Term`, `Version`).
pub fn inspect(file: &Path) -> Result<String, SnapshotError> {
    let name = file.display().to_string();
    let body = std::fs::read(file).map_err(|source| SnapshotError::Io { file: name.clone(), source })?;
    let i = inspect_file(&body).map_err(|source| SnapshotError::Invalid { file: name, source })?;
    let rows = [
        ("ID", i.id),
        ("Size", i.size.to_string()),
        ("Index", i.index.to_string()),
        ("Term", i.term.to_string()),
        ("Version", i.version.to_string()),
    ];
    // Consul's table ends with a blank line.
    Ok(rows.iter().map(|(k, v)| format!("{k:<13}{v}\n")).chain(["\n".to_owned()]).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn atomic_write_replaces_whole_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("backup.snap");
        super::write_atomic(&p, b"one").unwrap();
        super::write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
