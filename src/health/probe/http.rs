//! HTTP checks: one request per probe on a fresh connection, redirects followed only to the
//! same scheme, host and port.
//!
//! Stage: `probe`, for `HTTP` checks. Input: the check's URL, method, headers, body and TLS
//! settings (built once into an `HttpProbe`) → output: a raw status (2xx passing, 429
//! warning, anything else critical) and Consul's output text `HTTP <method> <url>: <status>
//! Output: <body tail>`.
//! Invariants: at most 10 redirects, never to another host or port; a redirected request
//! other than 307/308 becomes a GET without body, as Go's client does; only the tail of a long
//! body is kept, within the output limit.

use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::{HttpProbe, Outcome, Probe, connect, error_chain, host_port};
use crate::catalog::{CheckDefinition, HealthStatus};
use crate::health::status::tail;
use crate::health::tls;

impl Probe {
    pub(super) async fn http(d: &CheckDefinition) -> Result<HttpProbe, String> {
        let parsed =
            reqwest::Url::parse(&d.http).map_err(|e| format!("invalid HTTP URL {:?}: {e}", d.http))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("invalid HTTP URL {:?}: scheme must be http or https", d.http));
        }
        host_port(&parsed)?;
        let method_name = if d.method.is_empty() { "GET" } else { d.method.as_str() };
        let method = hyper::Method::from_bytes(method_name.as_bytes())
            .map_err(|_| format!("invalid HTTP method {method_name:?}"))?;
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::USER_AGENT,
            hyper::header::HeaderValue::from_static("Consul Health Check"),
        );
        headers.insert(
            hyper::header::ACCEPT,
            hyper::header::HeaderValue::from_static("text/plain, text/*, */*"),
        );
        // Consul disables keep-alives: one connection per probe.
        headers.insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
        for (name, values) in &d.header {
            let n = hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            headers.remove(&n);
            for v in values {
                let v = hyper::header::HeaderValue::from_str(v)
                    .map_err(|_| format!("invalid value of header {name:?}"))?;
                headers.append(n.clone(), v);
            }
        }
        let tls = tls::client_config(d.tls_skip_verify, tls::Alpn::Http1)?;
        Ok(HttpProbe {
            url: d.http.clone(),
            parsed,
            method,
            headers,
            body: bytes::Bytes::from(d.body.clone()),
            disable_redirects: d.disable_redirects,
            tls,
            server_name: d.tls_server_name.clone(),
        })
    }
}

impl HttpProbe {
    pub(super) async fn run(&self, max: usize) -> Outcome {
        match self.follow(max).await {
            Ok((code, body)) => {
                let status_text = match code.canonical_reason() {
                    Some(r) => format!("{} {r}", code.as_u16()),
                    None => code.as_u16().to_string(),
                };
                // The newest bytes of the body fill what the prefix leaves of the limit.
                let prefix = format!("HTTP {} {}: {status_text} Output: ", self.method, self.url);
                let output = format!("{prefix}{}", tail(body.as_bytes(), max.saturating_sub(prefix.len())));
                let status = if code.is_success() {
                    HealthStatus::Passing
                } else if code.as_u16() == 429 {
                    HealthStatus::Warning
                } else {
                    HealthStatus::Critical
                };
                (status, output)
            }
            Err(e) => (HealthStatus::Critical, format!("HTTP {} {}: {e}", self.method, self.url)),
        }
    }

    /// Sends the request, following at most 10 redirects that stay on the same scheme, host
    /// and port; any other redirect is the result (and so critical).
    async fn follow(&self, max: usize) -> Result<(hyper::StatusCode, String), String> {
        let mut url = self.parsed.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        for hop in 0.. {
            let (code, location, out) = self.send(&url, &method, body.clone(), max).await?;
            let next = match location {
                Some(loc) if code.is_redirection() && !self.disable_redirects && hop < 10 => {
                    url.join(&loc).ok()
                }
                _ => None,
            };
            match next {
                Some(n) if n.scheme() == url.scheme() && host_port(&n) == host_port(&url) => {
                    // Go's client turns a redirected POST into a GET, except for 307 and 308.
                    if !matches!(code.as_u16(), 307 | 308) && method != hyper::Method::HEAD {
                        method = hyper::Method::GET;
                        body = bytes::Bytes::new();
                    }
                    url = n;
                }
                _ => return Ok((code, out)),
            }
        }
        Err("too many redirects".into())
    }

    async fn send(
        &self,
        url: &reqwest::Url,
        method: &hyper::Method,
        body: bytes::Bytes,
        max: usize,
    ) -> Result<(hyper::StatusCode, Option<String>, String), String> {
        let (host, port) = host_port(url)?;
        let tls = (url.scheme() == "https").then_some(&self.tls);
        let io = connect(&host, port, tls, &self.server_name).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut req = hyper::Request::builder().method(method.clone()).uri(path);
        if !self.headers.contains_key(hyper::header::HOST) {
            req = req.header(hyper::header::HOST, authority);
        }
        let mut req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        req.headers_mut().extend(self.headers.clone());
        let mut resp = sender.send_request(req).await.map_err(|e| error_chain(&e))?;
        let code = resp.status();
        let location =
            resp.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // Consul keeps the tail of the body in a buffer of the output size.
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = resp.body_mut().frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
                if buf.len() > 2 * max {
                    buf.drain(..buf.len() - max);
                }
            }
        }
        Ok((code, location, tail(&buf, max)))
    }
}
