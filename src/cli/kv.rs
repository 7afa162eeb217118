//! `cairn kv get|put|delete|export|import`: Consul's `consul kv` against a running agent.
//!
//! Input: arguments → `/v1/kv` calls through `cli::api::Api`. Output: Consul's messages on
//! stdout (`Success! Data written to: k`), values as raw bytes, and `export`/`import` in
//! Consul's JSON format (`[{"key","flags","value"(base64)}]`), so files move between the two.
//! Errors are Consul's lines (`Error! Failed writing data: Unexpected response code: 403
//! (Permission denied)`), printed as they are by `main`, exit 1.
//! Invariants: a missing key is an error (`Error! No key exists at: k`, exit 1); keys are
//! percent-encoded in the URL path (`/` kept), so any key reaches the agent unchanged.

use std::io::{Read as _, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::api::{Api, ApiError};

/// `cairn kv` subcommands.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print a key's value (or list a prefix).
    Get(GetArgs),
    /// Write a key.
    Put(PutArgs),
    /// Delete a key (or a prefix).
    Delete(DeleteArgs),
    /// Print every key under a prefix as Consul's export JSON.
    Export(ExportArgs),
    /// Write keys from Consul's export JSON.
    Import(ImportArgs),
}

/// `cairn kv get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key (or prefix with --recurse/--keys).
    pub key: String,
    /// Print every key under the prefix as `key:value`.
    #[arg(long)]
    pub recurse: bool,
    /// List key names under the prefix.
    #[arg(long)]
    pub keys: bool,
    /// With --keys: cut names after this separator.
    #[arg(long, default_value = "/")]
    pub separator: String,
    /// Print the entry's metadata too.
    #[arg(long)]
    pub detailed: bool,
}

/// `cairn kv put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key.
    pub key: String,
    /// The value; `-` reads stdin, `@FILE` reads a file; empty when absent.
    pub value: Option<String>,
    /// Opaque flags stored with the key.
    #[arg(long, default_value_t = 0)]
    pub flags: u64,
    /// Write only if the key's ModifyIndex is --modify-index (0: only if absent).
    #[arg(long)]
    pub cas: bool,
    /// The index for --cas.
    #[arg(long, default_value_t = 0)]
    pub modify_index: u64,
    /// Acquire the key's lock with --session.
    #[arg(long)]
    pub acquire: bool,
    /// Release the key's lock held by --session.
    #[arg(long)]
    pub release: bool,
    /// The session for --acquire/--release.
    #[arg(long, default_value = "")]
    pub session: String,
}

/// `cairn kv delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The key (or prefix with --recurse).
    pub key: String,
    /// Delete every key under the prefix.
    #[arg(long)]
    pub recurse: bool,
    /// Delete only if the key's ModifyIndex is --modify-index.
    #[arg(long)]
    pub cas: bool,
    /// The index for --cas.
    #[arg(long, default_value_t = 0)]
    pub modify_index: u64,
}

/// `cairn kv export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only keys under this prefix (all keys when absent).
    #[arg(default_value = "")]
    pub prefix: String,
}

/// `cairn kv import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSON; `-` (or absent) reads stdin, `@FILE` reads a file.
    pub data: Option<String>,
    /// Prepend this prefix to every imported key.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

/// Why a `cairn kv` command failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The agent call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A read failed (Consul's Go client drops the body of a KV read's error).
    #[error("Error querying Consul agent: {}", code_only(.0))]
    Query(ApiError),
    /// A write failed.
    #[error("Error! Failed writing data: {0}")]
    Write(ApiError),
    /// Deleting a key failed.
    #[error("Error deleting key {0}: {1}")]
    Delete(String, ApiError),
    /// Deleting a prefix failed.
    #[error("Error! Did not delete prefix {0}: {1}")]
    DeletePrefix(String, ApiError),
    /// The key does not exist.
    #[error("Error! No key exists at: {0}")]
    Missing(String),
    /// A condition (cas, acquire, release) did not hold.
    #[error("Error! Did not write to {0}: {1}")]
    NotWritten(String, &'static str),
    /// Reading the value or the import data failed.
    #[error("Error! Failed to read {0}: {1}")]
    Read(String, std::io::Error),
    /// Import data or an agent reply was not the JSON expected.
    #[error("Error! Invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A base64 value did not decode.
    #[error("Error! Invalid base64 value for {0}")]
    Base64(String),
    /// Conflicting or incomplete flags.
    #[error("Error! {0}")]
    Usage(&'static str),
}

/// `Unexpected response code: 403` for an agent's refusal, else the error's text.
fn code_only(e: &ApiError) -> String {
    match e {
        ApiError::Status { status, .. } => format!("Unexpected response code: {status}"),
        other => other.to_string(),
    }
}

/// One entry of Consul's `kv export` format.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportEntry {
    /// Key.
    pub key: String,
    /// Flags.
    pub flags: u64,
    /// Base64 value.
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    key: String,
    flags: u64,
    value: Option<String>,
    #[serde(default)]
    session: Option<String>,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
}

/// The URL path of `key` under `/v1/kv/`, percent-encoding everything but unreserved bytes
/// and `/`.
pub fn kv_path(key: &str) -> String {
    let mut out = String::from("/v1/kv/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(key: &str, v: Option<&str>) -> Result<Vec<u8>, KvError> {
    match v {
        None => Ok(Vec::new()),
        Some(v) => STANDARD.decode(v).map_err(|_| KvError::Base64(key.to_owned())),
    }
}

fn read_input(spec: Option<&str>, stdin_default: bool) -> Result<Vec<u8>, KvError> {
    match spec {
        Some("-") => read_stdin(),
        None if stdin_default => read_stdin(),
        None => Ok(Vec::new()),
        Some(s) => match s.strip_prefix('@') {
            Some(path) => std::fs::read(path).map_err(|e| KvError::Read(path.to_owned(), e)),
            None => Ok(s.as_bytes().to_vec()),
        },
    }
}

fn read_stdin() -> Result<Vec<u8>, KvError> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).map_err(|e| KvError::Read("stdin".into(), e))?;
    Ok(buf)
}

fn out(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

/// Runs one `cairn kv` subcommand against `api`.
pub async fn run(api: &Api, cmd: KvCommand) -> Result<(), KvError> {
    match cmd {
        KvCommand::Get(a) => get(api, a).await,
        KvCommand::Put(a) => {
            let value = read_input(a.value.as_deref(), false)?;
            let mut path = format!("{}?flags={}", kv_path(&a.key), a.flags);
            match (a.cas, a.acquire, a.release) {
                (true, false, false) => path.push_str(&format!("&cas={}", a.modify_index)),
                (false, true, false) => path.push_str(&format!("&acquire={}", a.session)),
                (false, false, true) => path.push_str(&format!("&release={}", a.session)),
                (false, false, false) => {}
                _ => return Err(KvError::Usage("--cas, --acquire and --release are mutually exclusive")),
            }
            if (a.acquire || a.release) && a.session.is_empty() {
                return Err(KvError::Usage("--acquire and --release need --session"));
            }
            let ok: bool = api.put(&path, value).await.map_err(KvError::Write)?.json()?;
            if !ok {
                let why = if a.cas { "CAS failed" } else { "lock not acquired or released" };
                return Err(KvError::NotWritten(a.key, why));
            }
            println!("Success! Data written to: {}", a.key);
            Ok(())
        }
        KvCommand::Delete(a) => {
            let mut path = kv_path(&a.key);
            if a.recurse && a.cas {
                return Err(KvError::Usage("--cas cannot be used with --recurse"));
            }
            if a.recurse {
                path.push_str("?recurse");
            } else if a.cas {
                path.push_str(&format!("?cas={}", a.modify_index));
            }
            let deleted = api.delete(&path).await;
            let ok: bool = match (deleted, a.recurse) {
                (Ok(reply), _) => reply.json()?,
                (Err(e), true) => return Err(KvError::DeletePrefix(a.key, e)),
                (Err(e), false) => return Err(KvError::Delete(a.key, e)),
            };
            if !ok {
                return Err(KvError::NotWritten(a.key, "CAS failed"));
            }
            println!("Success! Deleted key: {}", a.key);
            Ok(())
        }
        KvCommand::Export(a) => {
            let entries = list(api, &a.prefix).await?;
            let export: Vec<ExportEntry> = entries
                .into_iter()
                .map(|e| ExportEntry { key: e.key, flags: e.flags, value: e.value.unwrap_or_default() })
                .collect();
            let mut text = serde_json::to_vec_pretty(&export)?;
            text.push(b'\n');
            out(&text);
            Ok(())
        }
        KvCommand::Import(a) => {
            let data = read_input(a.data.as_deref(), true)?;
            let entries: Vec<ExportEntry> = serde_json::from_slice(&data)?;
            for e in entries {
                let key = format!("{}{}", a.prefix, e.key);
                let value = decode(&key, Some(&e.value))?;
                let path = format!("{}?flags={}", kv_path(&key), e.flags);
                let _: bool = api.put(&path, value).await?.json()?;
                println!("Imported: {key}");
            }
            Ok(())
        }
    }
}

async fn list(api: &Api, prefix: &str) -> Result<Vec<Entry>, KvError> {
    let path = format!("{}?recurse", kv_path(prefix));
    let reply = api.send(reqwest::Method::GET, &path, None, true).await.map_err(KvError::Query)?;
    if reply.status == 404 {
        return Ok(Vec::new());
    }
    Ok(reply.json()?)
}

async fn get(api: &Api, a: GetArgs) -> Result<(), KvError> {
    if a.keys {
        let path = format!("{}?keys&separator={}", kv_path(&a.key), a.separator);
        let reply = api.send(reqwest::Method::GET, &path, None, true).await.map_err(KvError::Query)?;
        let keys: Vec<String> = if reply.status == 404 { Vec::new() } else { reply.json()? };
        for k in keys {
            println!("{k}");
        }
        return Ok(());
    }
    if a.recurse {
        for e in list(api, &a.key).await? {
            let value = decode(&e.key, e.value.as_deref())?;
            out(format!("{}:", e.key).as_bytes());
            out(&value);
            out(b"\n");
        }
        return Ok(());
    }
    let reply = api.send(reqwest::Method::GET, &kv_path(&a.key), None, true).await.map_err(KvError::Query)?;
    if reply.status == 404 {
        return Err(KvError::Missing(a.key));
    }
    let entries: Vec<Entry> = reply.json()?;
    let Some(e) = entries.into_iter().next() else {
        return Err(KvError::Missing(a.key));
    };
    let value = decode(&e.key, e.value.as_deref())?;
    if a.detailed {
        println!("CreateIndex      {}", e.create_index);
        println!("Flags            {}", e.flags);
        println!("Key              {}", e.key);
        println!("LockIndex        {}", e.lock_index);
        println!("ModifyIndex      {}", e.modify_index);
        println!("Session          {}", e.session.as_deref().unwrap_or("-"));
        out(b"Value            ");
    }
    out(&value);
    out(b"\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::kv_path;

    fn check(key: &str, path: &str) {
        assert_eq!(kv_path(key), path, "{key}");
    }

    #[test]
    fn keys_are_percent_encoded_except_slashes() {
        check("a/b", "/v1/kv/a/b");
        check("a b?c", "/v1/kv/a%20b%3Fc");
        check("é", "/v1/kv/%C3%A9");
    }
}
