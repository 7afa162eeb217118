//! `cairn monitor [-log-level=LEVEL] [-log-json]`: streams the local agent's log
//! (`GET /v1/agent/monitor?loglevel=&logjson`), one line per event, until interrupted, as
//! Consul's `consul monitor` does.
//!
//! Exit codes are Consul's: 0 when interrupted (SIGINT/SIGTERM), 1 when the agent refuses
//! (`Error starting monitor: …`) or ends the stream ("Remote side ended the monitor!").
//! Consul 1.8.7's own CLI asks for JSON with `-log-json` and then prints a second, text
//! stream instead (a bug in its `monitor` command); cairn prints the JSON lines asked for.

use std::io::Write as _;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use super::ConsulMessage;
use super::api::Api;

/// `cairn monitor` arguments.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Log level of the agent's stream (trace, debug, info, warn, err).
    #[arg(long, default_value = "INFO")]
    pub log_level: String,
    /// Output logs in JSON format.
    #[arg(long)]
    pub log_json: bool,
}

/// The monitor's path for these flags.
pub(crate) fn path(log_level: &str, json: bool) -> String {
    let q = form_urlencoded::Serializer::new(String::new()).append_pair("loglevel", log_level).finish();
    if json { format!("/v1/agent/monitor?{q}&logjson") } else { format!("/v1/agent/monitor?{q}") }
}

/// Streams the log to stdout; returns the exit code (0 interrupted, 1 the stream ended).
pub async fn run(api: &Api, args: &MonitorArgs) -> Result<u8, ConsulMessage> {
    let io = |e: std::io::Error| ConsulMessage(format!("Error starting monitor: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let mut resp = api
        .stream(&path(&args.log_level, args.log_json))
        .await
        .map_err(|e| ConsulMessage(format!("Error starting monitor: {e}")))?;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            chunk = resp.chunk() => match chunk {
                Ok(Some(bytes)) => {
                    if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
                        return Ok(0);
                    }
                }
                Ok(None) | Err(_) => break,
            },
            _ = term.recv() => return Ok(0),
            _ = int.recv() => return Ok(0),
        }
    }
    let _ = writeln!(
        out,
        "\nRemote side ended the monitor! This usually means that the\nremote side has exited or crashed."
    );
    Ok(1)
}
