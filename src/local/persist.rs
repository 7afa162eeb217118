//! The agent's own services and checks on disk: `data_dir/services/` and `data_dir/checks/`, one
//! JSON file per record, named by the SHA-256 of its lower-cased ID (as Consul names them by a
//! hash), so any ID makes a safe file name.
//!
//! Input: services and checks registered through the agent API → output: files that `load`
//! reads back at the next start.
//! Invariants: a file is written to `<name>.tmp`, synced and renamed over the old one (and the
//! directory synced), so a crash leaves the old or the new record, never a torn one; a file
//! that does not decode is an error naming it, never skipped silently.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::catalog::{Check, Service, key};
use crate::codec;

/// Why the local state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PersistError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file did not decode.
    #[error("{path}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The error.
        source: codec::CodecError,
    },
}

/// One persisted service.
#[derive(Debug, Serialize, Deserialize)]
struct ServiceFile {
    service: Service,
}

/// One persisted check (its definition and last known status).
#[derive(Debug, Serialize, Deserialize)]
struct CheckFile {
    check: Check,
}

/// The `services/` and `checks/` directories of a data dir.
#[derive(Debug, Clone)]
pub(crate) struct Disk {
    services: PathBuf,
    checks: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io { path: path.to_path_buf(), source }
}

fn file_name(id: &str) -> String {
    let digest = Sha256::digest(key(id).as_bytes());
    let mut name = String::with_capacity(digest.len() * 2 + 5);
    for b in digest {
        name.push_str(&format!("{b:02x}"));
    }
    name.push_str(".json");
    name
}

impl Disk {
    /// The directories under `data_dir` (not created yet).
    pub(crate) fn new(data_dir: &Path) -> Self {
        Self { services: data_dir.join("services"), checks: data_dir.join("checks") }
    }

    /// Whether neither directory exists: a data dir from before the local state existed.
    pub(crate) fn is_new(&self) -> bool {
        !self.services.exists() && !self.checks.exists()
    }

    /// Creates both directories.
    pub(crate) fn create(&self) -> Result<(), PersistError> {
        for d in [&self.services, &self.checks] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        Ok(())
    }

    /// Reads every persisted service and check.
    pub(crate) fn load(&self) -> Result<(Vec<Service>, Vec<Check>), PersistError> {
        let services = read_dir::<ServiceFile>(&self.services)?.into_iter().map(|f| f.service).collect();
        let checks = read_dir::<CheckFile>(&self.checks)?.into_iter().map(|f| f.check).collect();
        Ok((services, checks))
    }

    /// Writes (or replaces) a service's file.
    pub(crate) fn write_service(&self, service: &Service) -> Result<(), PersistError> {
        write_atomic(&self.services, &file_name(&service.id), &ServiceFile { service: service.clone() })
    }

    /// Writes (or replaces) a check's file.
    pub(crate) fn write_check(&self, check: &Check) -> Result<(), PersistError> {
        write_atomic(&self.checks, &file_name(&check.check_id), &CheckFile { check: check.clone() })
    }

    /// Removes a service's file (absent is fine).
    pub(crate) fn remove_service(&self, id: &str) -> Result<(), PersistError> {
        remove(&self.services.join(file_name(id)))
    }

    /// Removes a check's file (absent is fine).
    pub(crate) fn remove_check(&self, id: &str) -> Result<(), PersistError> {
        remove(&self.checks.join(file_name(id)))
    }
}

fn read_dir<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Vec<T>, PersistError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let value = codec::Format::LocalFile
            .decode(&bytes)
            .map_err(|source| PersistError::Decode { path, source })?;
        out.push(value);
    }
    Ok(out)
}

fn write_atomic<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), PersistError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let bytes = codec::Format::LocalFile
        .encode(value)
        .map_err(|source| PersistError::Decode { path: path.clone(), source })?;
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir)
}

fn remove(path: &Path) -> Result<(), PersistError> {
    match std::fs::remove_file(path) {
        Ok(()) => path.parent().map_or(Ok(()), sync_dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
