//! The CLI's client of a running agent's HTTP API (`cairn kv`, `cairn members`, `cairn catalog` …).
//!
//! Like Consul's `CONSUL_HTTP_ADDR`, the agent is found through `CAIRN_HTTP_ADDR` (`host:port` or
//! `http://host:port`), falling back to `127.0.0.1:8500`. Every subcommand that talks to an agent
//! goes through `Api`; a non-2xx reply becomes `ApiError::Status` carrying the agent's message.
//!
//! Why reqwest and not the bare hyper client `health::probe` already uses: reqwest 0.13
//! without default features (no TLS, no HTTP/2) adds only two crates to the tree, reqwest and
//! tower-http (hyper, hyper-util, h2, tower and url are there for axum, the probes and hickory),
//! about 7 s of a cold debug build. For that the CLI gets what it would otherwise rebuild on
//! hyper-util by hand: the connect timeout; curl's `HTTP_PROXY`/`NO_PROXY` rules (a call goes
//! through `HTTP_PROXY` when it is set, even to 127.0.0.1, unless `NO_PROXY` names the host);
//! one connection pool for `cairn lock`'s renewals beside its blocking query; the check of the
//! URL built from `CAIRN_HTTP_ADDR`; and the error chain users see ("error sending request for
//! url (…): client error (Connect): tcp connect error: …"), which a switch would change. The
//! probes stay on bare hyper because each one opens a fresh connection with its own TLS
//! settings, speaks HTTP/2 by prior knowledge (gRPC) and sends h2 PING frames (H2PING), which
//! reqwest's pooled client does not expose.

use std::time::Duration;

use reqwest::Method;

/// The environment variable naming the agent's HTTP address.
pub const HTTP_ADDR_ENV: &str = "CAIRN_HTTP_ADDR";
/// The address used when `CAIRN_HTTP_ADDR` is unset.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8500";

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The agent could not be reached or the reply could not be read.
    #[error("cannot reach the agent at {base}: {source}")]
    Transport {
        /// The base URL tried.
        base: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The agent answered with a non-success status.
    #[error("agent replied {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The reply body (the agent's error message), trimmed.
        message: String,
    },
    /// The reply was not the JSON expected.
    #[error("unexpected reply from the agent: {0}")]
    Decode(#[from] serde_json::Error),
}

/// A reply from the agent: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code (2xx, or 404 when asked for with `allow_not_found`).
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Response body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body decoded as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// A client of one agent's HTTP API.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    /// A client for `addr` (`host:port` or a full `http://` URL).
    pub fn new(addr: &str) -> Self {
        let addr = addr.trim().trim_end_matches('/');
        let base = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { base, client }
    }

    /// A client for `CAIRN_HTTP_ADDR`, or `127.0.0.1:8500`.
    pub fn from_env() -> Self {
        let addr = std::env::var(HTTP_ADDR_ENV).unwrap_or_else(|_| DEFAULT_HTTP_ADDR.to_string());
        Self::new(&addr)
    }

    /// The base URL, e.g. `http://127.0.0.1:8500`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` (path with its query string, starting with `/v1/`) with an optional
    /// body. A 404 is returned as a reply when `allow_not_found`; any other non-2xx is an error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        allow_not_found: bool,
    ) -> Result<Reply, ApiError> {
        let transport = |source| ApiError::Transport { base: self.base.clone(), source };
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport)?.to_vec();
        if (200..300).contains(&status) || (allow_not_found && status == 404) {
            return Ok(Reply { status, headers, body });
        }
        let message = String::from_utf8_lossy(&body).trim().to_string();
        Err(ApiError::Status { status, message })
    }

    /// `GET path`; 404 is an error.
    pub async fn get(&self, path: &str) -> Result<Reply, ApiError> {
        self.send(Method::GET, path, None, false).await
    }

    /// `PUT path` with a body.
    pub async fn put(&self, path: &str, body: Vec<u8>) -> Result<Reply, ApiError> {
        self.send(Method::PUT, path, Some(body), false).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Reply, ApiError> {
        self.send(Method::DELETE, path, None, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::Api;

    fn check(addr: &str, base: &str) {
        assert_eq!(Api::new(addr).base(), base, "{addr}");
    }

    #[test]
    fn addresses() {
        check("127.0.0.1:8500", "http://127.0.0.1:8500");
        check("http://10.0.0.1:1234/", "http://10.0.0.1:1234");
        check(" localhost:8500 ", "http://localhost:8500");
    }
}
