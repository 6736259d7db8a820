//! The one door from a request to the caller's policy: the `Caller`
//! extractor, used by every handler that authenticates with the
//! `Authorization` header (`/graphql` and `/ingest`). The WebSocket carries
//! its token in `connection_init` and the webhooks prove a shared secret;
//! both reach the same authentication functions.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;

use super::AppState;
use super::graphql::{Media, error_response, negotiate};
use crate::error::ApiError;
use crate::policy::{KeyGrant, Policy};
use crate::service::api_keys;

/// The caller's policy: anonymous without an `Authorization` header; a
/// header that is malformed, expired or revoked is refused (401), never
/// treated as anonymous; the database away answers 503.
pub struct Caller(pub Policy);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        policy_for(state, &parts.headers)
            .await
            .map(Caller)
            .map_err(|e| error_response(negotiate(&parts.headers).unwrap_or(Media::Json), &e))
    }
}

/// The caller's policy from the `Authorization` header. A header that is
/// present but wrong is refused, never treated as anonymous.
async fn policy_for(state: &AppState, headers: &HeaderMap) -> Result<Policy, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Policy::anonymous());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken("malformed Authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::InvalidToken(
            "expected `Authorization: Bearer <token>`",
        ))?;
    if token.starts_with(api_keys::PREFIX) {
        let key = state.services.auth_cache.api_key(&state.db, token).await?;
        return Ok(Policy::for_api_key(KeyGrant {
            key_id: key.id,
            unit_root: key.unit_id,
        }));
    }
    let viewer = state
        .services
        .auth_cache
        .viewer(&state.db, &state.services.keys, token)
        .await?;
    Ok(Policy::for_viewer(viewer))
}
