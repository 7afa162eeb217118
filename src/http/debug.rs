//! `/debug/pprof/*`: Consul's profiling endpoints (Go's `net/http/pprof` behind Consul's
//! wrapper), serving profiles of the cairn process (`profile`).
//!
//! Access (Consul 1.8.7's wrapper, checked live): the presented token is resolved first (an
//! unknown one: 403, empty body); with ACLs off, `enable_debug` false answers 401 `ACL support
//! disabled`; with ACLs on, the token needs `operator:read` (else 403, empty body), whatever
//! `enable_debug` says. `/debug/pprof` (no slash) redirects to `/debug/pprof/` before any check,
//! as Go's mux does.
//!
//! Profiles, by name (`/debug/pprof/<name>`), as Go serves them: `profile?seconds=N` (CPU,
//! default 30 s when absent, unparsable or ≤ 0), `heap` and `allocs` (the same sampled heap,
//! `allocs` showing allocated space first), `goroutine` (the process's threads: see
//! `profile::threads`), `trace?seconds=N` (cairn's spans and events as Chrome trace JSON,
//! default 1 s: see `profile::trace`), `cmdline`, `symbol`. Protobuf by default, text with
//! `?debug=1|2`. Go's `block`, `mutex` and `threadcreate` have no honest counterpart here and
//! answer 404 `Unknown profile` like any unknown name. Errors carry Go's `X-Go-Pprof: 1`.

use std::fmt::Write as _;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::ApiState;
use super::query::Query;
use super::token::presented_token;
use crate::profile::{self, ProfileError, heap, heap_report, threads};

/// The routes, behind Consul's access wrapper.
pub(crate) fn routes(state: &ApiState) -> Router<ApiState> {
    let gated = Router::new()
        .route("/debug/pprof/", any(index))
        .route("/debug/pprof/cmdline", any(cmdline))
        .route("/debug/pprof/profile", any(cpu))
        .route("/debug/pprof/symbol", any(symbol))
        .route("/debug/pprof/trace", any(trace))
        .route("/debug/pprof/{*name}", any(named))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), gate));
    Router::new().route("/debug/pprof", any(redirect)).merge(gated)
}

/// Consul's wrapper around every pprof handler.
async fn gate(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(authz) = st.acl.resolve(presented_token(&parts).as_deref()) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    if !st.acl.enabled() && !st.config.enable_debug {
        let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
        return (StatusCode::UNAUTHORIZED, text, "ACL support disabled").into_response();
    }
    if st.acl.enabled() && !authz.operator_read() {
        return StatusCode::FORBIDDEN.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

async fn redirect() -> Response {
    let body = "<a href=\"/debug/pprof/\">Moved Permanently</a>.\n\n";
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, "/debug/pprof/"), (header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Go's `serveError`: plain text with a newline, `X-Go-Pprof: 1`.
fn pprof_error(status: StatusCode, text: &str) -> Response {
    let mut r = (status, format!("{text}\n")).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("X-Go-Pprof", HeaderValue::from_static("1"));
    h.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
    r
}

/// A profile file: octet-stream with Go's attachment name.
fn attachment(name: &str, bytes: Vec<u8>) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
    r
}

fn plain(text: String) -> Response {
    let mut r = text.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
    r
}

/// `?seconds=` of a CPU profile: Go's `ParseInt`, 30 s when absent, unparsable or ≤ 0.
pub(crate) fn cpu_window(raw: Option<&str>) -> Duration {
    match raw.and_then(|s| s.parse::<i64>().ok()) {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => Duration::from_secs(30),
    }
}

/// `?seconds=` of a trace: Go's `ParseFloat`, 1 s when absent, unparsable or ≤ 0; a value
/// no duration holds (`inf`, `1e30`) overflows in Go to a window that ends at once.
pub(crate) fn trace_window(raw: Option<&str>) -> Duration {
    match raw.and_then(|s| s.parse::<f64>().ok()) {
        Some(s) if s > 0.0 => Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO),
        _ => Duration::from_secs(1),
    }
}

async fn cpu(RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    match profile::cpu::profile(cpu_window(q.get("seconds"))).await {
        Ok(bytes) => attachment("profile", bytes),
        Err(e) => {
            pprof_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("Could not enable CPU profiling: {e}"))
        }
    }
}

async fn trace(RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    match profile::trace::capture(trace_window(q.get("seconds"))).await {
        Ok(bytes) => attachment("trace", bytes),
        Err(e) => pprof_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("Could not enable tracing: {e}")),
    }
}

async fn named(Path(name): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let q = Query::parse(raw.as_deref());
    let debug = q.get("debug").and_then(|d| d.parse::<i64>().ok()).unwrap_or(0);
    let file = name.clone();
    let built = match name.as_str() {
        "heap" | "allocs" => {
            // With ACLs on and `enable_debug` off, sampling starts at the first authorized ask.
            heap::start();
            tokio::task::spawn_blocking(move || {
                if debug != 0 {
                    return Ok(Err(heap_report::text()));
                }
                let mut p = heap_report::profile();
                if name == "allocs" {
                    p.default_sample_type = string_index(&p, "alloc_space");
                }
                profile::gzip_profile(&p).map(Ok)
            })
            .await
            .map_err(|e| ProfileError::Sampler(e.to_string()))
            .and_then(|r| r)
        }
        "goroutine" => {
            let (ts, tasks) = (threads::threads(), threads::tasks());
            match debug {
                0 => profile::gzip_profile(&threads::profile(&ts, tasks)).map(Ok),
                1 => Ok(Err(threads::text_grouped(&ts, tasks))),
                _ => Ok(Err(threads::text_each(&ts, tasks))),
            }
        }
        _ => return pprof_error(StatusCode::NOT_FOUND, "Unknown profile"),
    };
    match built {
        Ok(Ok(bytes)) => attachment(&file, bytes),
        Ok(Err(text)) => plain(text),
        Err(e) => pprof_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn string_index(p: &pprof::protos::Profile, s: &str) -> i64 {
    p.string_table.iter().position(|t| t == s).map_or(0, |i| i as i64)
}

async fn cmdline() -> Response {
    let args: Vec<String> = std::env::args().collect();
    plain(args.join("\0"))
}

/// Go's symbol lookup: `num_symbols: 1` on GET; for `0x…+0x…` (query or body) one
/// `<address> <function>` line per resolved address.
async fn symbol(req: Request) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let body = axum::body::to_bytes(req.into_body(), super::MAX_BODY_BYTES).await.unwrap_or_default();
    let wanted = if body.is_empty() { query } else { String::from_utf8_lossy(&body).into_owned() };
    let mut out = String::from("num_symbols: 1\n");
    for word in wanted.split('+') {
        let Some(hex) = word.trim().strip_prefix("0x") else { continue };
        let Ok(addr) = u64::from_str_radix(hex, 16) else { continue };
        if let Some(f) = profile::symbols_at(addr) {
            let _ = writeln!(out, "{addr:#x} {f}");
        }
    }
    plain(out)
}

async fn index() -> Response {
    let threads = threads::threads().len();
    let stacks = heap::stacks().len();
    let rows = [
        (stacks, "allocs", "allocs?debug=1", "A sampling of all past memory allocations"),
        (0, "cmdline", "cmdline", "The command line invocation of the current program"),
        (
            threads,
            "goroutine",
            "goroutine?debug=1",
            "The OS threads of the process and its async task counts (cairn has no goroutines; no stacks)",
        ),
        (stacks, "heap", "heap?debug=1", "A sampling of memory allocations of live objects"),
        (
            0,
            "profile",
            "profile",
            "CPU profile. You can specify the duration in the seconds GET parameter. After you get the profile file, use the go tool pprof command to investigate the profile.",
        ),
        (
            0,
            "trace",
            "trace",
            "cairn's tracing spans and events of a window, as Chrome trace-event JSON (open it in Perfetto). You can specify the duration in the seconds GET parameter.",
        ),
    ];
    let mut html = String::from(
        "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n.profile-name{\n\tdisplay:inline-block;\n\twidth:6rem;\n}\n</style>\n</head>\n<body>\n/debug/pprof/<br>\n<br>\nTypes of profiles available:\n<table>\n<thead><td>Count</td><td>Profile</td></thead>\n",
    );
    for (count, name, href, _) in rows {
        let href = href.replace('=', "&#61;");
        let _ = write!(html, "\n\t<tr>\n\t<td>{count}</td><td><a href={href}>{name}</a></td>\n\t</tr>\n");
    }
    html.push_str("\n</table>\n<a href=\"goroutine?debug=2\">full thread list</a>\n<br/>\n<p>\nProfile Descriptions:\n<ul>\n");
    for (_, name, _, what) in rows {
        let _ = write!(html, "\n<li><div class=profile-name>{name}:</div> {what}</li>\n");
    }
    html.push_str("\n</ul>\n</p>\n</body>\n</html>\n");
    let mut r = html.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert("X-Content-Type-Options", HeaderValue::from_static("nosniff"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_as_go_does() {
        assert_eq!(cpu_window(None), Duration::from_secs(30));
        assert_eq!(cpu_window(Some("abc")), Duration::from_secs(30));
        assert_eq!(cpu_window(Some("-3")), Duration::from_secs(30));
        assert_eq!(cpu_window(Some("0")), Duration::from_secs(30));
        assert_eq!(cpu_window(Some("1.5")), Duration::from_secs(30), "ParseInt refuses a fraction");
        assert_eq!(cpu_window(Some("2")), Duration::from_secs(2));
        assert_eq!(trace_window(None), Duration::from_secs(1));
        assert_eq!(trace_window(Some("0.5")), Duration::from_millis(500));
        assert_eq!(trace_window(Some("-1")), Duration::from_secs(1));
        assert_eq!(trace_window(Some("x")), Duration::from_secs(1));
        assert_eq!(trace_window(Some("inf")), Duration::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn any_seconds_value_gives_a_window(raw in ".*") {
            let cpu = cpu_window(Some(&raw));
            proptest::prop_assert!(cpu > Duration::ZERO);
            let _ = trace_window(Some(&raw));
        }
    }
}
