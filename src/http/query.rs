//! Query-string access with Consul's semantics: repeatable keys, bare flags, Go booleans.
//!
//! Input: the raw query string → decoded `(key, value)` pairs in order.
//! Invariants: a bare `?passing` has the value `""` and counts as present; `all` keeps order
//! for repeatable parameters (`tag`, `node-meta`), which combine with AND.

use super::error::ApiError;

/// Decoded query parameters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes `raw` (`application/x-www-form-urlencoded`).
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs =
            raw.map(|r| form_urlencoded::parse(r.as_bytes()).into_owned().collect()).unwrap_or_default();
        Self { pairs }
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present (with or without a value).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every value of a repeatable parameter.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// A boolean flag: absent → false, bare → true, else Go's `strconv.ParseBool`.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(_) => Err(ApiError::BadRequest(format!("Invalid value for ?{name}"))),
        }
    }

    /// `?node-meta=key:value` filters as pairs.
    pub(crate) fn node_meta(&self) -> Vec<(String, String)> {
        self.all("node-meta")
            .into_iter()
            .map(|kv| match kv.split_once(':') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv.to_owned(), String::new()),
            })
            .collect()
    }
}
