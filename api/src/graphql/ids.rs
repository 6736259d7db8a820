//! Opaque global ids (`Node.id`) and connection cursors.

use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{ApiError, ApiResult};

/// Node type names used inside global ids.
pub mod kind {
    pub const UNIT: &str = "Unit";
    pub const WORK_ITEM: &str = "WorkItem";
    pub const USER: &str = "User";
    pub const MEMBERSHIP: &str = "Membership";
    pub const TRANSITION: &str = "Transition";
    pub const WORKFLOW: &str = "Workflow";
    pub const API_KEY: &str = "ApiKey";
    pub const CHANGE: &str = "Change";
    pub const DEPLOYMENT: &str = "Deployment";
    pub const RELEASE: &str = "Release";
    pub const INCIDENT: &str = "Incident";
    pub const OBJECTIVE: &str = "Objective";
    pub const KEY_RESULT: &str = "KeyResult";
    pub const VALUE_STREAM: &str = "ValueStream";
}

pub fn encode(kind: &str, id: i64) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{kind}:{id}")))
}

/// Splits a global id into its type name and row id; `None` when malformed.
pub fn decode(id: &str) -> Option<(String, i64)> {
    let raw = URL_SAFE_NO_PAD.decode(id.as_bytes()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (kind, num) = text.split_once(':')?;
    Some((kind.to_owned(), num.parse().ok()?))
}

/// The row id of a global id that must name a `kind`.
///
/// # Errors
/// `BAD_USER_INPUT` for a malformed id or one of another type.
pub fn expect(id: &ID, kind: &str, field: &str) -> ApiResult<i64> {
    match decode(id) {
        Some((k, n)) if k == kind => Ok(n),
        _ => Err(ApiError::bad_input(format!(
            "`{field}` is not a valid {kind} id"
        ))),
    }
}

pub fn cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("cursor:{id}"))
}

/// # Errors
/// `BAD_USER_INPUT` for a cursor this server did not issue.
pub fn decode_cursor(cursor: &str, field: &str) -> ApiResult<i64> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|t| t.strip_prefix("cursor:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::bad_input(format!("`{field}` is not a valid cursor")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let id = encode(kind::WORK_ITEM, 42);
        assert_eq!(decode(&id), Some(("WorkItem".to_owned(), 42)));
        assert!(expect(&id, kind::UNIT, "unit").is_err());
        assert_eq!(decode_cursor(&cursor(7), "after").unwrap(), 7);
        assert!(decode_cursor("nope", "after").is_err());
        assert!(decode("!!!").is_none());
    }
}
