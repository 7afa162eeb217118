//! ACL BOOTSTRAP RESET: the file that re-opens `/v1/acl/bootstrap` once (spec §1.3).
//!
//! Input: a server's data dir. Output: the reset index an operator wrote to
//! `<data_dir>/acl-bootstrap-reset` (Consul's file and its texts), or none.
//!
//! Invariant: the index a bootstrap is proposed with always comes from the data dir of the
//! agent that proposes it on a server: the HTTP handler of a server agent, or the server that
//! receives a client agent's forwarded bootstrap (`serve_rpc`), which replaces whatever index
//! the frame carried. The index is printed in the 403 of a closed bootstrap (as Consul does),
//! so trusting an index from the wire would let anyone who can forward a write re-open it.

use std::path::{Path, PathBuf};

/// The file whose index re-opens bootstrap once.
pub(crate) const RESET_FILE: &str = "acl-bootstrap-reset";

/// The reset file under `data_dir`.
pub(crate) fn reset_path(data_dir: &Path) -> PathBuf {
    data_dir.join(RESET_FILE)
}

/// The index in `data_dir`'s reset file (`None`: no file); a file that is not a number is
/// Consul's 500 text.
pub(crate) fn read_reset_index(data_dir: &Path) -> Result<Option<u64>, String> {
    let path = reset_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("Invalid bootstrap reset index in {}", path.display())),
        Err(_) => Ok(None),
    }
}

/// Removes the reset file after the bootstrap it re-opened (a failure is logged: the index is
/// spent either way, since the bootstrap moved the ACL state past it).
pub(crate) fn spend_reset_file(data_dir: &Path) {
    let path = reset_path(data_dir);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "could not remove {}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_file_is_read_once_spent_and_a_bad_one_is_consuls_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_reset_index(dir.path()), Ok(None));
        std::fs::write(reset_path(dir.path()), "17\n").unwrap();
        assert_eq!(read_reset_index(dir.path()), Ok(Some(17)));
        spend_reset_file(dir.path());
        assert_eq!(read_reset_index(dir.path()), Ok(None));
        std::fs::write(reset_path(dir.path()), "x").unwrap();
        let e = read_reset_index(dir.path()).unwrap_err();
        assert!(e.starts_with("Invalid bootstrap reset index in "), "{e}");
    }
}
