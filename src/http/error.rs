//! `ApiError`: every failure an HTTP handler can return, mapped to Consul's status and text.
//!
//! Input: errors from decoding, validation, TTL updates and Raft → output: a `text/plain`
//! response. Invariants: 400 for request problems found up front (bad query parameters,
//! undecodable or invalid bodies), 403 for ACL refusals (`Permission denied`, `ACL not found`), 404 for unknown IDs, 413 for oversized writes, 500 for
//! RPC-level failures (Consul maps errors raised by its RPC endpoints to 500, including
//! `CommandResponse::Rejected`); a `catalog::Invalid` gets the status its `Class` names.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::agent::DefinitionError;
use crate::catalog::Invalid;
use crate::catalog::validate::Class;
use crate::consensus::ProposeError;
use crate::health::TtlError;

/// An HTTP API failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400 with a message (bad parameter, invalid definition).
    #[error("{0}")]
    BadRequest(String),
    /// 400 `Request decode failed: …` (malformed JSON, unknown field, wrong type).
    #[error("Request decode failed: {0}")]
    Decode(String),
    /// 403 with Consul's message (`Permission denied…`, `ACL not found`).
    #[error("{0}")]
    Forbidden(String),
    /// 404 with Consul's message.
    #[error("{0}")]
    NotFound(String),
    /// 413 with Consul's message (a request larger than a write may be).
    #[error("{0}")]
    TooLarge(String),
    /// 500 with the RPC error text.
    #[error("{0}")]
    Internal(String),
    /// 500: reads and writes that need a leader while none is known.
    #[error("No cluster leader")]
    NoLeader,
}

impl ApiError {
    /// The HTTP status for this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Decode(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) | Self::NoLeader => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    /// 403 `Permission denied`: the caller's token lacks a permission.
    pub(crate) fn denied() -> Self {
        Self::Forbidden(PERMISSION_DENIED.into())
    }
}

/// Consul's text for a missing permission (`acl.ErrPermissionDenied`).
pub(crate) const PERMISSION_DENIED: &str = "Permission denied";

impl From<DefinitionError> for ApiError {
    fn from(e: DefinitionError) -> Self {
        if e.is_decode() { Self::Decode(e.to_string()) } else { Self::BadRequest(e.to_string()) }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        match e.class() {
            Class::BadRequest => Self::BadRequest(e.to_string()),
            Class::TooLarge => Self::TooLarge(e.to_string()),
            Class::Rpc => Self::Internal(e.to_string()),
        }
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NoLeader => Self::NoLeader,
            ProposeError::Rejected(msg) => Self::Internal(msg),
            ProposeError::Invalid(e) => e.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::local::LocalError> for ApiError {
    fn from(e: crate::local::LocalError) -> Self {
        match e {
            crate::local::LocalError::Propose(p) => p.into(),
            other @ crate::local::LocalError::Persist(_) => Self::Internal(other.to_string()),
        }
    }
}

impl From<TtlError> for ApiError {
    fn from(e: TtlError) -> Self {
        match e {
            TtlError::UnknownCheck(_) => Self::NotFound(e.to_string()),
            TtlError::Propose(p) => p.into(),
            TtlError::NotTtl(_) | TtlError::Rejected(_) => Self::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], self.to_string())
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::ApiError;
    use crate::catalog::Invalid;
    use crate::codec::Format;
    use crate::consensus::ProposeError;
    use crate::rpc::{Remote, Response};

    /// What a client agent answers when the server refuses its forwarded write with `e`: the
    /// `Remote` crosses the wire in a `Response::Forward` frame and comes back as the
    /// `ProposeError` the replica reports.
    fn forwarded(e: &Invalid) -> ApiError {
        let frame = Format::FramePayload.encode(&Response::Forward(Err(Remote::Invalid(e.clone())))).unwrap();
        let Response::Forward(Err(Remote::Invalid(back))) = Format::FramePayload.decode(&frame).unwrap()
        else {
            panic!("not a refused forward");
        };
        ProposeError::Invalid(back).into()
    }

    #[test]
    fn a_refused_forwarded_write_gets_the_status_and_text_of_a_direct_one() {
        let cases = [
            (Invalid::KeyName("a/../b".into()), StatusCode::BAD_REQUEST),
            (Invalid::MissingKey, StatusCode::BAD_REQUEST),
            (Invalid::TooManyOps(129), StatusCode::PAYLOAD_TOO_LARGE),
            (Invalid::ValueTooLarge(3 << 20), StatusCode::PAYLOAD_TOO_LARGE),
            (Invalid::ServiceAddress, StatusCode::INTERNAL_SERVER_ERROR),
            (Invalid::SessionTtlRange("5s".into()), StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (e, status) in cases {
            let direct = ApiError::from(e.clone());
            let via = forwarded(&e);
            assert_eq!((direct.status(), direct.to_string()), (status, e.to_string()), "{e:?}");
            assert_eq!((via.status(), via.to_string()), (status, e.to_string()), "{e:?}");
        }
    }
}
