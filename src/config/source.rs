//! Reading config files: discovery (`--config-file`, `--config-dir`), syntax (JSON or TOML by
//! extension), and the schema, with errors naming the file and the key.
//!
//! Stage: files -> schema. Input: the paths the flags name. Output: one `FileConfig` per file,
//! in reading order, and the accepted-but-unused keys. Invariants: a directory contributes its
//! `*.toml` and `*.json` files in name order; `.hcl` and other extensions are refused; the
//! first error stops loading and is one line.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::schema::FileConfig;
use super::{ConfigError, Overrides, keys};

/// One file read and checked: its keys, and the ones accepted but unused (`file: key`).
pub(super) fn load_file(path: &Path) -> Result<(FileConfig, Vec<String>), ConfigError> {
    let mut top = read_file(path)?;
    let file = path.display().to_string();
    keys::refuse_unsupported(&file, &top)?;
    let mut unused = keys::take_unused(&mut top);
    unused.sort();
    let unused = unused.into_iter().map(|k| format!("{file}: {k}")).collect();
    let parsed = serde_path_to_error::deserialize(Value::Object(top)).map_err(|e| {
        let key = e.path().to_string();
        let msg = e.into_inner().to_string();
        // serde's own text lists every field; the key is already in the message's prefix.
        let msg = if msg.starts_with("unknown field") { "unknown configuration key".to_owned() } else { msg };
        ConfigError::Key { file, key, msg }
    })?;
    Ok((parsed, unused))
}

/// Reads one config file into a JSON tree (TOML is converted), by extension.
fn read_file(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let value: Value = match ext {
        // An empty (or blank) JSON file sets nothing, as Consul accepts it.
        "json" if text.trim().is_empty() => Value::Object(Map::new()),
        "json" => serde_json::from_str(&text)
            .map_err(|e| ConfigError::Syntax { file: file.clone(), msg: e.to_string() })?,
        "toml" => {
            let t: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
                file: file.clone(),
                msg: one_line_toml_error(&text, &e),
            })?;
            serde_json::to_value(t)
                .map_err(|e| ConfigError::Syntax { file: file.clone(), msg: e.to_string() })?
        }
        "hcl" => {
            return Err(ConfigError::Syntax {
                file,
                msg: "HCL is not supported: write the same keys as JSON (.json) or TOML (.toml)".into(),
            });
        }
        _ => {
            return Err(ConfigError::Syntax {
                file,
                msg: "unknown file type: use a .toml or .json extension".into(),
            });
        }
    };
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(ConfigError::Syntax { file, msg: "the top level must be a table/object".into() }),
    }
}

/// A TOML error as `line L, column C: message` on one line (toml's own text spans several).
fn one_line_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {msg}")
        }
        None => msg,
    }
}

/// The config files named by `--config-file` and found in `--config-dir`, in reading order.
pub(super) fn config_paths(o: &Overrides) -> Result<Vec<PathBuf>, ConfigError> {
    let mut paths = o.config_files.clone();
    for dir in &o.config_dirs {
        let file = dir.display().to_string();
        let entries =
            std::fs::read_dir(dir).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        let mut found = Vec::new();
        for e in entries {
            let e = e.map_err(|source| ConfigError::Read { file: file.clone(), source })?;
            let p = e.path();
            // `.hcl` too, so a Consul config dir fails loudly rather than losing e.g. its `acl`.
            if p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("toml" | "json" | "hcl"))
            {
                found.push(p);
            }
        }
        found.sort();
        paths.extend(found);
    }
    Ok(paths)
}
