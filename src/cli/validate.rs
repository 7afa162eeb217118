//! `cairn validate PATH...`: checks config files, service definitions and zone files without
//! starting anything (no socket, no data dir, no Raft).
//!
//! A directory is read as the agent reads a `--config-dir` (its `.toml`/`.json` files in name
//! order, service definitions included) and its `*.zone` files are parsed; a `.toml`/`.json`
//! file is read as a `--config-file`, a `.zone` file is parsed on its own. The config files are
//! then loaded together, exactly as `cairn agent` would load them, and the `zones_dir` they
//! name is loaded too. The first error stops with its file and key or line.

use std::path::{Path, PathBuf};

use crate::config::{Config, Overrides};
use crate::zone::{Zone, ZoneSet};

/// Why validation failed.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// No path given.
    #[error("nothing to validate: name config files, directories or zone files")]
    Empty,
    /// A path that is neither a directory nor a known file type.
    #[error("{0}: not a directory, .toml, .json or .zone file")]
    Unknown(String),
    /// A file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration (or a service definition in it) is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A zone file is invalid.
    #[error(transparent)]
    Zone(#[from] crate::zone::ZoneError),
}

/// What was checked, for the closing message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Validated {
    /// Config files read (service definitions included).
    pub config_files: usize,
    /// Service definitions found in them.
    pub services: usize,
    /// Zone files parsed.
    pub zones: usize,
}

/// Validates `paths` as described in the module documentation.
pub fn validate(paths: &[PathBuf]) -> Result<Validated, ValidateError> {
    if paths.is_empty() {
        return Err(ValidateError::Empty);
    }
    let mut overrides = Overrides::default();
    let mut zone_files = Vec::new();
    let mut zone_dirs = Vec::new();
    for p in paths {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if p.is_dir() {
            overrides.config_dirs.push(p.clone());
            zone_dirs.push(p.clone());
        } else if matches!(ext, "toml" | "json") {
            overrides.config_files.push(p.clone());
        } else if ext == "zone" {
            zone_files.push(p.clone());
        } else {
            return Err(ValidateError::Unknown(p.display().to_string()));
        }
    }
    let mut done = Validated::default();
    let has_config = !overrides.config_files.is_empty() || !overrides.config_dirs.is_empty();
    if has_config {
        // A data dir is required of a real agent config; it is read, never created, here.
        let (config, _ignored) = Config::load(&overrides)?;
        done.config_files = config.sources.len();
        done.services = config.services.len();
        if let Some(dir) = &config.zones_dir
            && dir.is_dir()
            && !zone_dirs.contains(dir)
        {
            zone_dirs.push(dir.clone());
        }
    }
    for dir in &zone_dirs {
        done.zones += ZoneSet::load_dir(dir)?.zones().count();
    }
    for file in &zone_files {
        parse_zone(file)?;
        done.zones += 1;
    }
    Ok(done)
}

fn parse_zone(file: &Path) -> Result<Zone, ValidateError> {
    let text = std::fs::read(file)
        .map_err(|source| ValidateError::Read { file: file.display().to_string(), source })?;
    Ok(Zone::parse(file, &text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const ZONE: &str = "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 86400 60\n@ IN NS ns\nns IN A 10.0.0.1\n";

    #[test]
    fn a_config_dir_with_services_and_zones() {
        let d = tempfile::tempdir().unwrap();
        let zones = d.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        write(&zones, "example.test.zone", ZONE);
        write(
            d.path(),
            "cairn.toml",
            &format!(
                "data_dir = \"/var/lib/cairn\"\nserver = true\nbootstrap_expect = 1\nzones_dir = {:?}\n",
                zones.display().to_string()
            ),
        );
        write(d.path(), "web.toml", "[[services]]\nname = \"web\"\nport = 80\n");
        let got = validate(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(got, Validated { config_files: 2, services: 1, zones: 1 });
    }

    #[test]
    fn errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let bad = write(
            d.path(),
            "bad.toml",
            "data_dir = \"/x\"\nserver = true\nbootstrap_expect = 1\nbogus = 1\n",
        );
        let err = validate(&[bad]).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("bogus"), "{err}");

        let svc = write(d.path(), "svc.json", r#"{"service": {"name": "web", "port": "eighty"}}"#);
        let base = write(d.path(), "base.toml", "data_dir = \"/x\"\nserver = true\nbootstrap_expect = 1\n");
        let err = validate(&[base, svc]).unwrap_err().to_string();
        assert!(err.contains("svc.json"), "{err}");

        let zone = write(d.path(), "broken.zone", "$ORIGIN broken.test.\n@ IN SOA ns\n");
        let err = validate(&[zone]).unwrap_err().to_string();
        assert!(err.contains("broken.zone"), "{err}");

        assert!(matches!(validate(&[]), Err(ValidateError::Empty)));
        let other = write(d.path(), "notes.txt", "");
        assert!(matches!(validate(&[other]), Err(ValidateError::Unknown(_))));
    }

    #[test]
    fn the_packaged_config_is_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let got = validate(&[root.join("config/cairn.toml")]).unwrap();
        assert_eq!(got.config_files, 1);
        for entry in std::fs::read_dir(root.join("config/services")).unwrap() {
            let p = entry.unwrap().path();
            let got = validate(&[root.join("config/cairn.toml"), p.clone()])
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(got.services >= 1, "{}", p.display());
        }
    }
}
