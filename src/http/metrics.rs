//! `GET /v1/agent/metrics`: Consul's JSON (go-metrics' in-memory sink shape), or with
//! `?format=prometheus` the Prometheus text format. Aggregates `metrics::global()` and the
//! current catalog snapshot at scrape time (`metrics::render`).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;

pub(super) async fn metrics(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let prometheus = form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "format" && v == "prometheus");
    let report = crate::metrics::global().report(&st.snapshots.load_full());
    if prometheus {
        let mut resp = crate::metrics::render::prometheus(&report).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return resp;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    axum::Json(crate::metrics::render::consul_json(&report, now)).into_response()
}
