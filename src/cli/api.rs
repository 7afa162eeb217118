//! The CLI's client of a running agent's HTTP API (`cairn kv`, `cairn members`, `cairn catalog` …).
//!
//! The agent is found as Consul's CLI finds it, with one cairn name on top. The address comes
//! from the first of: the `-http-addr` flag, `CAIRN_HTTP_ADDR`, `CONSUL_HTTP_ADDR`,
//! `127.0.0.1:8500`. It is `host:port`, `http://host:port`, `https://host:port` or
//! `unix:///path` (plain HTTP over the agent's Unix socket, `addresses.http`); `CAIRN_` wins
//! over `CONSUL_` because it can only have been set for cairn, while `CONSUL_HTTP_ADDR` may be
//! left in a shell for a Consul cluster. `CONSUL_HTTP_SSL=true` turns a bare or `http://`
//! address into https (as Consul never reverts to http once TLS was asked for). Over https the
//! agent's certificate is checked against `-ca-file`/`CONSUL_CACERT` and
//! `-ca-path`/`CONSUL_CAPATH` (else the system's roots) for the address's host, or for
//! `-tls-server-name`/`CONSUL_TLS_SERVER_NAME`; `-client-cert`/`CONSUL_CLIENT_CERT` with
//! `-client-key`/`CONSUL_CLIENT_KEY` is presented to an agent with `verify_incoming`;
//! `CONSUL_HTTP_SSL_VERIFY=false` skips the check. Flags beat the environment; the TLS settings
//! are read only for https, as Consul does (`cli::tls::client` builds the rustls config). A
//! setting that cannot be honoured (an unreadable file, a boolean that is not one, a scheme
//! other than these) is an error before any request, never a silent fallback to plain HTTP.
//!
//! The ACL token goes with every request as `X-Consul-Token`, found as Consul 1.8.7's CLI finds
//! it (checked against its binary): a token file (`-token-file`, else `CONSUL_HTTP_TOKEN_FILE`)
//! with something in it beats a token (`-token`, else `CONSUL_HTTP_TOKEN`), so the file wins
//! even over the `-token` flag; the file's content is trimmed, an empty one falls through to
//! the token, an unreadable one is an error (`Error loading token file: open F: …`). An empty
//! flag or variable counts as unset. No token at all sends no header, and the agent uses its
//! default token.
//!
//! Every subcommand that talks to an agent goes through `Api`; a non-2xx reply becomes
//! `ApiError::Status` carrying the agent's message.
//!
//! Why reqwest and not the bare hyper client `health::probe` already uses: reqwest 0.13
//! without default features adds few crates to the tree (reqwest, tower-http, and for TLS
//! hyper-rustls and rustls-platform-verifier, which cairn never calls: the rustls config is
//! always ours, on ring); hyper, hyper-util, h2, tower, rustls and url are there for axum, the
//! probes and hickory. For that the CLI gets what it would otherwise rebuild on hyper-util by
//! hand: the connect timeout; curl's `HTTP_PROXY`/`NO_PROXY` rules (a call goes through
//! `HTTP_PROXY` when it is set, even to 127.0.0.1, unless `NO_PROXY` names the host); one
//! connection pool for `cairn lock`'s renewals beside its blocking query; the check of the URL
//! built from the address; and the error chain users see ("error sending request for url (…):
//! client error (Connect): tcp connect error: …"), which a switch would change. The probes stay
//! on bare hyper because each one opens a fresh connection with its own TLS settings, speaks
//! HTTP/2 by prior knowledge (gRPC) and sends h2 PING frames (H2PING), which reqwest's pooled
//! client does not expose.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;

use crate::cli::tls::client::{ClientTlsError, TlsSettings};

/// The environment variable naming the agent's HTTP address (beats `CONSUL_HTTP_ADDR`).
pub const HTTP_ADDR_ENV: &str = "CAIRN_HTTP_ADDR";
/// Consul's name for the agent's HTTP address.
pub const CONSUL_HTTP_ADDR_ENV: &str = "CONSUL_HTTP_ADDR";
/// The header the ACL token travels in.
pub const TOKEN_HEADER: &str = "X-Consul-Token";
/// Consul's variable for the ACL token.
pub const TOKEN_ENV: &str = "CONSUL_HTTP_TOKEN";
/// Consul's variable for a file holding the ACL token (beats the token).
pub const TOKEN_FILE_ENV: &str = "CONSUL_HTTP_TOKEN_FILE";
/// The address used when neither flag nor variable names one.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8500";

/// How the CLI reaches the agent: Consul's HTTP flags, on every subcommand (single or double
/// dash where `cli::flags` applies). Each falls back to its `CONSUL_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Reaching the agent (for subcommands that talk to it)")]
pub struct HttpArgs {
    /// The agent's HTTP address: host:port, http://host:port or https://host:port [env:
    /// CAIRN_HTTP_ADDR, then CONSUL_HTTP_ADDR; default 127.0.0.1:8500].
    #[arg(long, global = true, value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// CA certificate (PEM) to check the agent's HTTPS certificate with [env: CONSUL_CACERT].
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Directory of PEM CA certificates [env: CONSUL_CAPATH].
    #[arg(long, global = true, value_name = "DIR")]
    pub ca_path: Option<PathBuf>,
    /// Client certificate (PEM) for an agent with verify_incoming [env: CONSUL_CLIENT_CERT].
    #[arg(long, global = true, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM) [env: CONSUL_CLIENT_KEY].
    #[arg(long, global = true, value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// Name to check the agent's certificate for, instead of the address's host
    /// [env: CONSUL_TLS_SERVER_NAME].
    #[arg(long, global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// ACL token to use in the request [env: CONSUL_HTTP_TOKEN]; without one the agent uses
    /// its default token.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// File containing the ACL token to use instead of -token or CONSUL_HTTP_TOKEN
    /// [env: CONSUL_HTTP_TOKEN_FILE].
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Where and how to reach the agent, resolved from flags and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The base URL, e.g. `https://127.0.0.1:8501`.
    pub base: String,
    /// The TLS settings, for an `https` base only.
    pub tls: Option<TlsSettings>,
    /// The agent's Unix socket, for a `unix://` address (the base is then `http://localhost`).
    pub socket: Option<PathBuf>,
    /// The ACL token sent as `X-Consul-Token` (none: the agent's default token).
    pub token: Option<String>,
}

impl HttpArgs {
    /// The endpoint these flags and the environment `env` (a variable's value by name) name.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Endpoint, ApiError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let addr = self
            .http_addr
            .clone()
            .or_else(|| env(HTTP_ADDR_ENV))
            .or_else(|| env(CONSUL_HTTP_ADDR_ENV))
            .unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_string());
        let flag = |name: &str| env(name).map(|v| parse_bool(name, &v)).transpose();
        let ssl = flag("CONSUL_HTTP_SSL")?.unwrap_or(false);
        let verify = flag("CONSUL_HTTP_SSL_VERIFY")?.unwrap_or(true);
        let token = self.acl_token(&env)?;
        if let Some(path) = addr.trim().strip_prefix("unix://") {
            if path.is_empty() {
                return Err(ApiError::Address(format!("{addr:?} names no socket path")));
            }
            let socket = Some(PathBuf::from(path));
            return Ok(Endpoint { base: "http://localhost".to_owned(), tls: None, socket, token });
        }
        let base = base_url(&addr, ssl)?;
        if !base.starts_with("https://") {
            return Ok(Endpoint { base, tls: None, socket: None, token });
        }
        let path = |flag: &Option<PathBuf>, var: &str| flag.clone().or_else(|| env(var).map(PathBuf::from));
        let tls = TlsSettings {
            ca_file: path(&self.ca_file, "CONSUL_CACERT"),
            ca_path: path(&self.ca_path, "CONSUL_CAPATH"),
            client_cert: path(&self.client_cert, "CONSUL_CLIENT_CERT"),
            client_key: path(&self.client_key, "CONSUL_CLIENT_KEY"),
            server_name: self.tls_server_name.clone().or_else(|| env("CONSUL_TLS_SERVER_NAME")),
            verify,
        };
        Ok(Endpoint { base, tls: Some(tls), socket: None, token })
    }

    /// The ACL token: a non-empty token file (flag, then variable) beats the token (flag, then
    /// variable), as in Consul 1.8.7; `env` already drops empty variables.
    fn acl_token(&self, env: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ApiError> {
        let file = self
            .token_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| env(TOKEN_FILE_ENV).map(PathBuf::from));
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ApiError::TokenFile(format!("open {}: {e}", path.display())))?;
            let text = text.trim();
            if !text.is_empty() {
                return Ok(Some(text.to_owned()));
            }
        }
        Ok(self.token.clone().filter(|t| !t.is_empty()).or_else(|| env(TOKEN_ENV)))
    }
}

/// The base URL for `addr`: its own scheme (`http` becomes `https` with `ssl`), or `https` with
/// `ssl`, else `http`; no trailing slash.
fn base_url(addr: &str, ssl: bool) -> Result<String, ApiError> {
    let addr = addr.trim().trim_end_matches('/');
    let (scheme, rest) = match addr.split_once("://") {
        Some(("https", rest)) => ("https", rest),
        Some(("http", rest)) => (if ssl { "https" } else { "http" }, rest),
        Some((scheme, _)) => {
            return Err(ApiError::Address(format!("{addr}: the scheme {scheme}:// is not supported")));
        }
        None => (if ssl { "https" } else { "http" }, addr),
    };
    if rest.is_empty() {
        return Err(ApiError::Address(format!("{addr:?} names no host")));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// Go's `strconv.ParseBool`, which Consul reads its boolean variables with.
fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ApiError::Address(format!("{name}={value:?} is not a boolean (true or false)"))),
    }
}

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
    /// The agent answered with a non-success status (worded as Consul's Go client words it).
    #[error("Unexpected response code: {status} ({message})")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The reply body (the agent's error message), trimmed.
        message: String,
    },
    /// The reply was not the JSON expected.
    #[error("unexpected reply from the agent: {0}")]
    Decode(#[from] serde_json::Error),
    /// The address or a boolean variable cannot be used.
    #[error("{0}")]
    Address(String),
    /// The TLS files or settings cannot be used.
    #[error(transparent)]
    Tls(#[from] ClientTlsError),
    /// The token file cannot be read.
    #[error("Error loading token file: {0}")]
    TokenFile(String),
    /// The token cannot be sent in an HTTP header (a control character in it).
    #[error("the ACL token is not a valid HTTP header value")]
    TokenValue,
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(reqwest::Error),
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
    /// `X-Consul-Token`, marked sensitive (its `Debug` does not show it).
    token: Option<reqwest::header::HeaderValue>,
}

impl Api {
    /// A client for `endpoint` (TLS set up from its settings for `https`).
    pub fn connect(endpoint: &Endpoint) -> Result<Self, ApiError> {
        use crate::cli::tls::client;
        let tls = match &endpoint.tls {
            Some(settings) => client::client_config(settings)?,
            None => client::plain_http_config()?,
        };
        let mut builder =
            reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).tls_backend_preconfigured(tls);
        if let Some(path) = &endpoint.socket {
            builder = builder.unix_socket(path.clone());
        }
        let client = builder.build().map_err(ApiError::Client)?;
        let token = match &endpoint.token {
            Some(t) => {
                let mut value =
                    reqwest::header::HeaderValue::from_str(t).map_err(|_| ApiError::TokenValue)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self { base: endpoint.base.clone(), client, token })
    }

    /// A client for the flags `args` and the process environment.
    pub fn from_args(args: &HttpArgs) -> Result<Self, ApiError> {
        Self::connect(&args.resolve(|name| std::env::var(name).ok())?)
    }

    /// A client for the process environment alone.
    pub fn from_env() -> Result<Self, ApiError> {
        Self::from_args(&HttpArgs::default())
    }

    /// This client with `token` as its `X-Consul-Token` instead.
    pub fn with_token(&self, token: &str) -> Result<Self, ApiError> {
        let mut value = reqwest::header::HeaderValue::from_str(token).map_err(|_| ApiError::TokenValue)?;
        value.set_sensitive(true);
        Ok(Self { token: Some(value), ..self.clone() })
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
        if let Some(token) = &self.token {
            req = req.header(TOKEN_HEADER, token.clone());
        }
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

    /// `GET path` with the reply's body left to read as it arrives (`/v1/agent/monitor`'s
    /// endless stream); a non-2xx status is an error carrying the agent's message.
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, ApiError> {
        let transport = |source| ApiError::Transport { base: self.base.clone(), source };
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.header(TOKEN_HEADER, token.clone());
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let body = resp.bytes().await.map_err(transport)?;
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
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::{Endpoint, HttpArgs};

    fn resolve(args: &HttpArgs, env: &[(&str, &str)]) -> Result<Endpoint, String> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        args.resolve(|name| env.get(name).cloned()).map_err(|e| e.to_string())
    }

    fn base(env: &[(&str, &str)]) -> String {
        resolve(&HttpArgs::default(), env).expect("resolve").base
    }

    #[test]
    fn addresses() {
        assert_eq!(base(&[]), "http://127.0.0.1:8500");
        assert_eq!(base(&[("CAIRN_HTTP_ADDR", "127.0.0.1:8500")]), "http://127.0.0.1:8500");
        assert_eq!(base(&[("CAIRN_HTTP_ADDR", "http://10.0.0.1:1234/")]), "http://10.0.0.1:1234");
        assert_eq!(base(&[("CAIRN_HTTP_ADDR", " localhost:8500 ")]), "http://localhost:8500");
        assert_eq!(base(&[("CONSUL_HTTP_ADDR", "https://127.0.0.1:8501")]), "https://127.0.0.1:8501");
        assert_eq!(
            base(&[("CONSUL_HTTP_ADDR", "127.0.0.1:8501"), ("CONSUL_HTTP_SSL", "true")]),
            "https://127.0.0.1:8501"
        );
        assert_eq!(base(&[("CONSUL_HTTP_ADDR", "http://h:1"), ("CONSUL_HTTP_SSL", "1")]), "https://h:1");
        assert_eq!(base(&[("CONSUL_HTTP_ADDR", "https://h:1"), ("CONSUL_HTTP_SSL", "false")]), "https://h:1");
    }

    #[test]
    fn flag_beats_cairn_beats_consul() {
        let env = [("CAIRN_HTTP_ADDR", "cairn:1"), ("CONSUL_HTTP_ADDR", "consul:2"), ("CAIRN_UNRELATED", "")];
        assert_eq!(base(&env), "http://cairn:1");
        assert_eq!(base(&env[1..]), "http://consul:2");
        assert_eq!(base(&[("CAIRN_HTTP_ADDR", ""), ("CONSUL_HTTP_ADDR", "consul:2")]), "http://consul:2");
        let args = HttpArgs { http_addr: Some("flag:3".into()), ..HttpArgs::default() };
        assert_eq!(resolve(&args, &env).expect("resolve").base, "http://flag:3");
    }

    #[test]
    fn tls_settings_only_for_https_flags_before_env() {
        let env = [
            ("CONSUL_HTTP_ADDR", "https://127.0.0.1:8501"),
            ("CONSUL_CACERT", "env-ca.pem"),
            ("CONSUL_CAPATH", "/etc/cas"),
            ("CONSUL_CLIENT_CERT", "env-cert.pem"),
            ("CONSUL_CLIENT_KEY", "env-key.pem"),
            ("CONSUL_TLS_SERVER_NAME", "server.dc1.consul"),
            ("CONSUL_HTTP_SSL_VERIFY", "false"),
        ];
        let tls = resolve(&HttpArgs::default(), &env).expect("resolve").tls.expect("tls");
        assert_eq!(tls.ca_file, Some(PathBuf::from("env-ca.pem")));
        assert_eq!(tls.ca_path, Some(PathBuf::from("/etc/cas")));
        assert_eq!(tls.client_cert, Some(PathBuf::from("env-cert.pem")));
        assert_eq!(tls.client_key, Some(PathBuf::from("env-key.pem")));
        assert_eq!(tls.server_name.as_deref(), Some("server.dc1.consul"));
        assert!(!tls.verify);
        let args = HttpArgs {
            ca_file: Some("flag-ca.pem".into()),
            client_cert: Some("flag-cert.pem".into()),
            client_key: Some("flag-key.pem".into()),
            tls_server_name: Some("other".into()),
            ..HttpArgs::default()
        };
        let tls = resolve(&args, &env).expect("resolve").tls.expect("tls");
        assert_eq!(tls.ca_file, Some(PathBuf::from("flag-ca.pem")));
        assert_eq!(tls.client_cert, Some(PathBuf::from("flag-cert.pem")));
        assert_eq!(tls.client_key, Some(PathBuf::from("flag-key.pem")));
        assert_eq!(tls.server_name.as_deref(), Some("other"));
        let plain = resolve(&HttpArgs::default(), &[("CONSUL_CACERT", "ca.pem")]).expect("resolve");
        assert_eq!(plain.tls, None);
        let verified = resolve(&HttpArgs::default(), &env[..1]).expect("resolve").tls.expect("tls");
        assert!(verified.verify);
    }

    #[test]
    fn unusable_settings_are_errors() {
        let err = resolve(&HttpArgs::default(), &[("CONSUL_HTTP_SSL", "yes")]).expect_err("bad bool");
        assert_eq!(err, r#"CONSUL_HTTP_SSL="yes" is not a boolean (true or false)"#);
        let err = resolve(&HttpArgs::default(), &[("CONSUL_HTTP_SSL_VERIFY", "nope")]).expect_err("bad bool");
        assert!(err.starts_with("CONSUL_HTTP_SSL_VERIFY="), "{err}");
        let err = resolve(&HttpArgs::default(), &[("CONSUL_HTTP_ADDR", "ftp://10.0.0.1")]).expect_err("ftp");
        assert!(err.contains("ftp:// is not supported"), "{err}");
        let err = resolve(&HttpArgs::default(), &[("CONSUL_HTTP_ADDR", "unix://")]).expect_err("no path");
        assert!(err.contains("names no socket path"), "{err}");
    }

    #[test]
    fn a_unix_address_is_plain_http_over_the_socket() {
        let e = resolve(&HttpArgs::default(), &[("CONSUL_HTTP_ADDR", "unix:///run/cairn/http.sock")])
            .expect("unix");
        assert_eq!(e.socket, Some(PathBuf::from("/run/cairn/http.sock")));
        assert_eq!((e.base.as_str(), e.tls), ("http://localhost", None));
    }

    fn token(args: &HttpArgs, env: &[(&str, &str)]) -> Result<Option<String>, String> {
        resolve(args, env).map(|e| e.token)
    }

    /// Consul 1.8.7 checked live: a token file (flag, else variable) with content beats the
    /// token (flag, else variable), even the -token flag; empty files and values fall through.
    #[test]
    fn token_precedence_is_consuls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tf");
        std::fs::write(&file, "  filetok \n").expect("write");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let (file_s, empty_s) = (file.to_str().expect("utf8"), empty.to_str().expect("utf8"));
        let none = HttpArgs::default();
        assert_eq!(token(&none, &[]), Ok(None));
        assert_eq!(token(&none, &[("CONSUL_HTTP_TOKEN", "envtok")]), Ok(Some("envtok".into())));
        assert_eq!(token(&none, &[("CONSUL_HTTP_TOKEN", "")]), Ok(None));
        let both = [("CONSUL_HTTP_TOKEN", "envtok"), ("CONSUL_HTTP_TOKEN_FILE", file_s)];
        assert_eq!(token(&none, &both), Ok(Some("filetok".into())));
        let empty_file = [("CONSUL_HTTP_TOKEN", "envtok"), ("CONSUL_HTTP_TOKEN_FILE", empty_s)];
        assert_eq!(token(&none, &empty_file), Ok(Some("envtok".into())));
        let flag = HttpArgs { token: Some("flagtok".into()), ..HttpArgs::default() };
        assert_eq!(token(&flag, &[("CONSUL_HTTP_TOKEN", "envtok")]), Ok(Some("flagtok".into())));
        assert_eq!(token(&flag, &both), Ok(Some("filetok".into())));
        let blank = HttpArgs { token: Some(String::new()), ..HttpArgs::default() };
        assert_eq!(token(&blank, &[("CONSUL_HTTP_TOKEN", "envtok")]), Ok(Some("envtok".into())));
        let flag_file =
            HttpArgs { token: Some("flagtok".into()), token_file: Some(file.clone()), ..HttpArgs::default() };
        assert_eq!(token(&flag_file, &[("CONSUL_HTTP_TOKEN_FILE", empty_s)]), Ok(Some("filetok".into())));
        let flag_empty_file = HttpArgs { token_file: Some(empty.clone()), ..HttpArgs::default() };
        assert_eq!(token(&flag_empty_file, &both), Ok(Some("envtok".into())));
        // Over https too.
        let https = [("CONSUL_HTTP_ADDR", "https://h:1"), ("CONSUL_HTTP_TOKEN", "t")];
        assert_eq!(token(&none, &https), Ok(Some("t".into())));
    }

    #[test]
    fn an_unreadable_token_file_is_an_error() {
        let args = HttpArgs { token_file: Some("/nonexistent/tf".into()), ..HttpArgs::default() };
        let err = token(&args, &[("CONSUL_HTTP_TOKEN", "envtok")]).expect_err("missing file");
        assert!(err.starts_with("Error loading token file: open /nonexistent/tf: "), "{err}");
        let err = token(&HttpArgs::default(), &[("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/tf")])
            .expect_err("missing file");
        assert!(err.starts_with("Error loading token file: open /nonexistent/tf"), "{err}");
    }
}
