//! `cairn lock PREFIX COMMAND…`: Consul's `consul lock` — run a command while holding a
//! session-based lock on `PREFIX/.lock`.
//!
//! Flow: create a session (TTL, lock-delay, behaviour release) → renew it every TTL/2 →
//! acquire `PREFIX/.lock` (waiting with blocking reads while someone else holds it) → run
//! `sh -c COMMAND` → when the command exits, release the key and destroy the session and exit
//! with the command's status. If the lock is lost meanwhile (session invalidated, key taken),
//! the command is killed and the exit status is 1; SIGINT/SIGTERM kill the command and release.
//! Invariant: every path out after the session exists destroys it (best effort), so an
//! interrupted `cairn lock` never keeps the lock beyond its session's TTL.
//!
//! The key follows Consul's lock protocol (the Go client's `api.Lock`, used by `consul lock`
//! and `LockKey`), so cairn's and Consul's lockers take turns on one key: it is acquired and
//! released with Consul's lock flag value (`LOCK_FLAG`), a key holding other flags is refused
//! ("Existing key does not match lock use"), and once released the key is deleted with
//! check-and-set unless another session already holds it (Consul's `Destroy`).

use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use super::api::{Api, ApiError};
use super::kv::kv_path;

/// `cairn lock` arguments.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// KV prefix; the lock key is `PREFIX/.lock`.
    pub prefix: String,
    /// The command to run while holding the lock (run with `sh -c`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Session name.
    #[arg(long, default_value = "cairn lock")]
    pub name: String,
    /// Session TTL (renewed every half of it while the command runs).
    #[arg(long, default_value = "15s")]
    pub session_ttl: String,
    /// Session lock-delay: after an invalidation, nobody acquires the lock for this long.
    #[arg(long, default_value = "15s")]
    pub lock_delay: String,
}

/// Why `cairn lock` failed before or around the command.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// An agent call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// An argument is invalid.
    #[error("{0}")]
    Usage(String),
    /// Starting or waiting for the command failed.
    #[error("command: {0}")]
    Command(std::io::Error),
}

/// Consul's `api.LockFlagValue`: the flags of a key used as a lock.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    flags: u64,
    #[serde(default)]
    modify_index: u64,
}

/// The key's entry, if it exists.
async fn entry(api: &Api, key: &str) -> Result<Option<Entry>, ApiError> {
    let reply = api.send(reqwest::Method::GET, &kv_path(key), None, true).await?;
    if reply.status == 404 {
        return Ok(None);
    }
    let entries: Vec<Entry> = reply.json()?;
    Ok(entries.into_iter().next())
}

/// Consul's `Lock.Destroy` after a release: deletes the key (check-and-set on its index)
/// unless it is in use; a key that is not a lock is an error.
async fn cleanup(api: &Api, key: &str) -> Result<(), LockError> {
    let Some(e) = entry(api, key).await? else { return Ok(()) };
    if e.flags != LOCK_FLAG {
        return Err(LockError::Usage("Lock cleanup failed: Existing key does not match lock use".into()));
    }
    if e.session.as_deref().is_some_and(|s| !s.is_empty()) {
        return Ok(());
    }
    api.delete(&format!("{}?cas={}", kv_path(key), e.modify_index)).await?;
    Ok(())
}

/// What ended the wait for the command.
enum End {
    Exited(i32),
    LockLost,
    Signalled,
}

/// Runs the command under the lock; returns the process exit status to use.
pub async fn run(api: &Api, args: LockArgs) -> Result<i32, LockError> {
    let ttl = crate::agent::parse_go_duration(&args.session_ttl)
        .map_err(|e| LockError::Usage(format!("--session-ttl: {e}")))?;
    let key = format!("{}/.lock", args.prefix.trim_end_matches('/'));
    let body = json!({ "Name": args.name, "TTL": args.session_ttl, "LockDelay": args.lock_delay, "Behavior": "release" });
    let created: serde_json::Value =
        api.put("/v1/session/create", body.to_string().into_bytes()).await?.json()?;
    let session = created["ID"].as_str().unwrap_or_default().to_owned();
    if session.is_empty() {
        return Err(LockError::Usage("the agent returned no session ID".into()));
    }
    let renewer = tokio::spawn(renew(api.clone(), session.clone(), ttl / 2));
    let result = hold(api, &key, &session, &args.command).await;
    renewer.abort();
    let released =
        api.put(&format!("{}?release={session}&flags={LOCK_FLAG}", kv_path(&key)), Vec::new()).await;
    let _ = api.put(&format!("/v1/session/destroy/{session}"), Vec::new()).await;
    let end = result?;
    released?;
    cleanup(api, &key).await?;
    match end {
        End::Exited(code) => Ok(code),
        End::LockLost => {
            eprintln!("Lock lost, the command was killed");
            Ok(1)
        }
        End::Signalled => Ok(1),
    }
}

async fn renew(api: Api, session: String, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = api.put(&format!("/v1/session/renew/{session}"), Vec::new()).await {
            eprintln!("session renewal failed: {e}");
        }
    }
}

/// The key's holder and the index to block on.
async fn holder(api: &Api, key: &str, index: u64) -> Result<(Option<String>, u64), ApiError> {
    let path = format!("{}?index={index}&wait=15s", kv_path(key));
    let reply = api.send(reqwest::Method::GET, &path, None, true).await?;
    let new_index = reply
        .headers
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if reply.status == 404 {
        return Ok((None, new_index));
    }
    let entries: Vec<Entry> = reply.json()?;
    Ok((entries.into_iter().next().and_then(|e| e.session), new_index))
}

async fn hold(api: &Api, key: &str, session: &str, command: &[String]) -> Result<End, LockError> {
    let mut term = signal(SignalKind::terminate()).map_err(LockError::Command)?;
    let mut int = signal(SignalKind::interrupt()).map_err(LockError::Command)?;
    let acquire = format!("{}?acquire={session}&flags={LOCK_FLAG}", kv_path(key));
    let mut index = 0;
    loop {
        if entry(api, key).await?.is_some_and(|e| e.flags != LOCK_FLAG) {
            return Err(LockError::Usage(
                "Lock acquisition failed: Existing key does not match lock use".into(),
            ));
        }
        let ok: bool = api.put(&acquire, Vec::new()).await?.json()?;
        if ok {
            break;
        }
        let (held_by, new_index) = tokio::select! {
            r = holder(api, key, index) => r?,
            _ = term.recv() => return Ok(End::Signalled),
            _ = int.recv() => return Ok(End::Signalled),
        };
        if held_by.is_none() || new_index == index {
            // Free but refused (lock-delay), or nothing changed: retry shortly.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        index = new_index;
    }
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command.join(" "))
        .kill_on_drop(true)
        .spawn()
        .map_err(LockError::Command)?;
    let watch = async {
        let mut index = 0;
        loop {
            match holder(api, key, index).await {
                Ok((Some(s), i)) if s == session => index = i,
                Ok(_) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    };
    let end = tokio::select! {
        status = child.wait() => End::Exited(status.map_err(LockError::Command)?.code().unwrap_or(1)),
        () = watch => End::LockLost,
        _ = term.recv() => End::Signalled,
        _ = int.recv() => End::Signalled,
    };
    if !matches!(end, End::Exited(_)) {
        let _ = child.kill().await;
    }
    Ok(end)
}
