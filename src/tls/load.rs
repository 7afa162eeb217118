//! Reading PEM files: this agent's certificate chain and key, and the CA roots.
//!
//! Stage: files -> DER. Input: the paths of one interface's settings. Output: certificates,
//! a private key, a `RootCertStore`, or an error naming the file. Invariants: a file is read
//! whole at every call (a reload sees the new contents); a CA directory (`ca_path`) with no
//! certificate in it is an error (Consul's `Error loading from CAPath: no CAs found`), never
//! an empty trust store; files in `ca_path` that hold no PEM certificate are skipped.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;
use crate::config::TlsInterface;

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::file(path, e))
}

/// The certificates of a PEM file, in order (a leaf first, then its intermediates).
pub(super) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::file(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, SEC1 or PKCS#1).
pub(super) fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::file(path, e))
}

/// The CA roots of `ca_file` and `ca_path`, or `None` when neither is set.
pub(super) fn roots(t: &TlsInterface) -> Result<Option<RootCertStore>, TlsError> {
    if !t.has_ca() {
        return Ok(None);
    }
    let mut store = RootCertStore::empty();
    if let Some(file) = &t.ca_file {
        for cert in certs(file).map_err(|e| TlsError::Ca(format!("Error loading CA File: {e}")))? {
            store.add(cert).map_err(|e| TlsError::file(file, e))?;
        }
    }
    if let Some(dir) = &t.ca_path {
        let found = add_dir(&mut store, dir)?;
        if found == 0 {
            return Err(TlsError::Ca("Error loading from CAPath: no CAs found".into()));
        }
    }
    Ok(Some(store))
}

/// Adds every certificate of the files in `dir`; returns how many.
fn add_dir(store: &mut RootCertStore, dir: &Path) -> Result<usize, TlsError> {
    let paths = dir_files(dir)
        .map_err(|e| TlsError::Ca(format!("Error loading from CAPath: {}: {e}", dir.display())))?;
    let mut found = 0;
    for path in paths {
        let pem = read(&path)?;
        for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
            store.add(cert).map_err(|e| TlsError::file(&path, e))?;
            found += 1;
        }
    }
    Ok(found)
}

/// The files of a CA directory in name order (subdirectories and unreadable entries skipped).
pub(crate) fn dir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<_> =
        std::fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
    paths.sort();
    Ok(paths)
}
