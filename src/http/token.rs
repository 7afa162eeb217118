//! ACL TOKEN: the secret a request presents, and the authorizer it is checked against.
//!
//! Input: a request's parts (query string and headers) → output: `Acl`, the resolved
//! `acl::Authorizer` of this request, or the `ApiError` Consul answers (403 `ACL not found`,
//! 500 `Cannot resolve root ACL`).
//!
//! Precedence (Consul's `parseTokenInternal`, spec §1.4), the first present and non-empty wins:
//! `?token=`, then `X-Consul-Token`, then `Authorization: Bearer <t>` (the scheme in any case,
//! only the first word after it; any other scheme, or a header of one word, is ignored). An
//! empty value counts as absent, so the resolver falls back to the agent's default token, then
//! anonymous.
//!
//! Invariants: every handler that needs an ACL takes the `Acl` extractor, so the token is read
//! in one place; endpoints that need none (`/v1/status/*`, `/v1/catalog/datacenters`) do not
//! take it and so never resolve (an unknown secret still gets 200 there); a secret never
//! reaches a log or an error text.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::ApiState;
use super::error::ApiError;
use crate::acl::{Authorizer, ResolveError};
use crate::consensus::Authority;

/// The authorizer of the request's token, and the secret it was resolved from (`None`: the
/// agent's default token): a write forwarded to a server carries that secret.
pub(crate) struct Acl(pub Arc<Authorizer>, pub Option<String>);

impl Acl {
    /// On whose authority a write of this request is proposed.
    pub(crate) fn authority(&self) -> Authority<'_> {
        Authority::Caller(self.1.as_deref())
    }
}

impl std::ops::Deref for Acl {
    type Target = Authorizer;

    fn deref(&self) -> &Authorizer {
        &self.0
    }
}

impl FromRequestParts<ApiState> for Acl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &ApiState) -> Result<Self, ApiError> {
        resolve(st, presented_token(parts).as_deref())
    }
}

/// The authorizer of `secret` (`None`: the agent's default token, then anonymous).
pub(crate) fn resolve(st: &ApiState, secret: Option<&str>) -> Result<Acl, ApiError> {
    let authz = st.acl.resolve(secret).map_err(ApiError::from)?;
    Ok(Acl(authz, secret.map(str::to_owned)))
}

/// The secret a request presents, not yet resolved: for the one endpoint that may check
/// another token instead (prepared-query execution uses the query's captured token).
pub(crate) struct Presented(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Presented {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _st: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(presented_token(parts)))
    }
}

/// The secret presented by `parts`, in Consul's order; `None` when none is (or all are empty).
pub(crate) fn presented_token(parts: &Parts) -> Option<String> {
    presented(query_token(parts.uri.query()).as_deref(), &parts.headers)
}

/// The secret presented by a request whose `?token=` value is `query_token`, in Consul's
/// order: the query, then `X-Consul-Token`, then `Authorization: Bearer`.
pub(crate) fn presented(query_token: Option<&str>, headers: &HeaderMap) -> Option<String> {
    query_token
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .or_else(|| header_str(headers, "x-consul-token").filter(|t| !t.is_empty()).map(str::to_owned))
        .or_else(|| header_str(headers, "authorization").and_then(bearer).map(str::to_owned))
}

/// `?token=`; an empty value is no token.
fn query_token(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer <t> …` value: scheme in any case, first word only.
fn bearer(value: &str) -> Option<&str> {
    let mut words = value.split_whitespace();
    let scheme = words.next()?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    words.next()
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NotFound => Self::Forbidden(e.to_string()),
            ResolveError::RootName => Self::Internal(e.to_string()),
            // Consul's `wrap`: a text naming a denial or a missing ACL is 403, else 500.
            ResolveError::Unavailable(text) if is_forbidden_text(&text) => Self::Forbidden(text),
            ResolveError::Unavailable(text) => Self::Internal(text),
        }
    }
}

/// Whether Consul's HTTP layer answers an error text with 403.
fn is_forbidden_text(text: &str) -> bool {
    text.contains("Permission denied") || text.contains("ACL not found")
}

/// 403 `Permission denied` unless `allowed`.
pub(crate) fn require(allowed: bool) -> Result<(), ApiError> {
    if allowed { Ok(()) } else { Err(ApiError::denied()) }
}

/// 403 `Permission denied: Missing <what> on <name>` unless `allowed` (the agent endpoints'
/// detailed text, e.g. `Missing service:write on web`).
pub(crate) fn require_on(allowed: bool, what: &str, name: &str) -> Result<(), ApiError> {
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("Permission denied: Missing {what} on {name}")))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::presented_token;

    fn token_of(uri: &str, headers: &[(&str, &str)]) -> Option<String> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (parts, ()) = b.body(()).expect("request").into_parts();
        presented_token(&parts)
    }

    #[test]
    fn query_beats_header_beats_bearer() {
        let all = [("X-Consul-Token", "hdr"), ("Authorization", "Bearer bear")];
        assert_eq!(token_of("/v1/kv/a?token=q", &all).as_deref(), Some("q"));
        assert_eq!(token_of("/v1/kv/a", &all).as_deref(), Some("hdr"));
        assert_eq!(token_of("/v1/kv/a", &all[1..]).as_deref(), Some("bear"));
        assert_eq!(token_of("/v1/kv/a", &[]), None);
    }

    #[test]
    fn empty_values_fall_through() {
        let all = [("X-Consul-Token", ""), ("Authorization", "Bearer bear")];
        assert_eq!(token_of("/v1/kv/a?token=", &all).as_deref(), Some("bear"));
        assert_eq!(token_of("/v1/kv/a?token=&x=1", &[("X-Consul-Token", "h")]).as_deref(), Some("h"));
        assert_eq!(token_of("/v1/kv/a?token=", &[]), None);
    }

    #[test]
    fn query_token_is_url_decoded() {
        assert_eq!(token_of("/v1/kv/a?recurse&token=a%2Bb", &[]).as_deref(), Some("a+b"));
    }

    #[test]
    fn bearer_scheme_any_case_first_word_only_other_schemes_ignored() {
        let t = |v: &str| token_of("/v1/kv/a", &[("Authorization", v)]);
        assert_eq!(t("bearer abc").as_deref(), Some("abc"));
        assert_eq!(t("BEARER abc def").as_deref(), Some("abc"));
        assert_eq!(t("Bearer").as_deref(), None);
        assert_eq!(t("Basic dXNlcjpwYXNz"), None);
        assert_eq!(t("abc"), None);
    }
}
