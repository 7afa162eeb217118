//! `GET /v1/agent/monitor?loglevel=&logjson`: the agent's log, streamed (Consul's
//! `consul monitor`).
//!
//! Stage: HTTP read that never ends by itself. Input: the level (`trace`, `debug`, `info`,
//! `warn`, `err`/`error`; default `info`) and the format -> output: a chunked body, one line
//! per log event, as Consul 1.8.7 writes them [live]: text
//! `2026-12-07T21:23:16.351Z [INFO]  agent: Synced service: service=redis`, or with
//! `logjson` one JSON object per line (`@level`, `@message`, `@module`, `@timestamp`, fields).
//! Invariants: needs `agent:read` on this node; an unknown level is Consul's 400
//! `Bad request: Unknown log level: X`; the stream holds a `log_stream::Monitor`, so closing
//! the connection detaches it.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Map, Value};
use tracing::Level;

use super::ApiState;
use super::acl_time;
use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use crate::log_stream::{LogRecord, Monitor};

pub(super) async fn monitor(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.agent_read(&st.config.node_name))?;
    let q = Query::parse(q.as_deref());
    let name = q.get("loglevel").unwrap_or("info").to_owned();
    let level = match name.to_ascii_lowercase().as_str() {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "" | "info" => Level::INFO,
        "warn" => Level::WARN,
        "err" | "error" => Level::ERROR,
        _ => return Err(ApiError::BadRequest(format!("Bad request: Unknown log level: {name}"))),
    };
    let json = q.has("logjson");
    let lines = futures_lines(Monitor::open(level), json);
    Response::builder()
        .header("Content-Type", "text/plain; charset=utf-8")
        .extension(Streamed)
        .body(Body::from_stream(lines))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Marks an answer the client reads line by line as it comes (never compressed).
#[derive(Debug, Clone, Copy)]
pub(super) struct Streamed;

/// The monitor's records as body chunks, one line each.
fn futures_lines(
    monitor: Monitor,
    json: bool,
) -> impl futures_util::Stream<Item = Result<String, std::convert::Infallible>> {
    futures_util::stream::unfold(monitor, move |mut m| async move {
        let r = m.next().await?;
        Some((Ok(if json { json_line(&r) } else { text_line(&r) }), m))
    })
}

fn timestamp(r: &LogRecord) -> String {
    let ms = r.time.duration_since(std::time::SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    acl_time::rfc3339(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// hclog's text line: time, `[LEVEL]` padded to 7, module, message, `key=value` fields.
fn text_line(r: &LogRecord) -> String {
    let mut line = format!("{} {:<7} {}: {}", timestamp(r), format!("[{}]", r.level), r.target, r.message);
    if !r.fields.is_empty() {
        line.push(':');
        for (k, v) in &r.fields {
            line.push_str(&format!(" {k}={v}"));
        }
    }
    line.push('\n');
    line
}

/// hclog's JSON line.
fn json_line(r: &LogRecord) -> String {
    let mut m = Map::new();
    m.insert("@level".into(), Value::from(r.level.as_str().to_ascii_lowercase()));
    m.insert("@message".into(), Value::from(r.message.clone()));
    m.insert("@module".into(), Value::from(r.target.clone()));
    m.insert("@timestamp".into(), Value::from(timestamp(r)));
    for (k, v) in &r.fields {
        m.insert(k.clone(), Value::from(v.clone()));
    }
    let mut line = Value::Object(m).to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        LogRecord {
            level: Level::INFO,
            target: "cairn::local".into(),
            message: "Synced service".into(),
            fields: vec![("service".into(), "redis".into())],
            time: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_765_142_596_351),
        }
    }

    #[test]
    fn lines_in_consuls_two_formats() {
        assert_eq!(
            text_line(&record()),
            "2025-12-07T21:23:16.351Z [INFO]  cairn::local: Synced service: service=redis\n"
        );
        let v: Value = serde_json::from_str(&json_line(&record())).unwrap();
        assert_eq!(v["@level"], "info");
        assert_eq!(v["service"], "redis");
    }
}
