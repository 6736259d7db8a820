//! One error type for the whole API. Its `Display` is safe to show to a
//! client; internal detail is logged, never returned.

use async_graphql::ErrorExtensions;

/// Stable error codes (DESIGN §5), sent as `extensions.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    RateLimited,
    /// HTTP only: a body over the configured limit (413).
    PayloadTooLarge,
    /// Subscriptions only: events were skipped because the client read too
    /// slowly; `extensions.skipped` says how many.
    Lagged,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::Lagged => "LAGGED",
            Self::Internal => "INTERNAL",
        }
    }
}

/// Deliberately not `Display`: async-graphql turns any `Display` error into a
/// client message without a code. [`From<ApiError>`] below adds the code.
#[derive(Debug)]
pub enum ApiError {
    Unauthenticated,
    InvalidToken(&'static str),
    Forbidden(String),
    NotFound(String),
    BadInput(String),
    Conflict(String),
    RateLimited,
    /// A subscriber fell behind and this many events were skipped.
    Lagged(u64),
    /// Anything unexpected. The source is logged; clients see a generic text.
    Internal(anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated | Self::InvalidToken(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadInput(_) => ErrorCode::BadUserInput,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::RateLimited => ErrorCode::RateLimited,
            Self::Lagged(_) => ErrorCode::Lagged,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The text a client may see.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated => "authentication required".into(),
            Self::InvalidToken(m) => (*m).to_owned(),
            Self::Forbidden(m) | Self::NotFound(m) | Self::BadInput(m) | Self::Conflict(m) => {
                m.clone()
            }
            Self::RateLimited => "too many failed attempts; try again later".into(),
            Self::Lagged(n) => {
                format!("{n} events were skipped because this subscription was read too slowly")
            }
            Self::Internal(_) => "internal error".into(),
        }
    }

    pub fn bad_input(msg: impl Into<String>) -> Self {
        Self::BadInput(msg.into())
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(msg.into())
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        // Unique violations are the caller's business (a duplicate key); the
        // services check first, this covers races between two writers.
        if matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ) {
            tracing::debug!(error = %err, "unique violation");
            return Self::Conflict("a record with the same identity already exists".into());
        }
        Self::Internal(err.into())
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        if let ApiError::Internal(source) = &err {
            tracing::error!(error = ?source, "internal error");
        }
        let code = err.code().as_str();
        let skipped = match err {
            ApiError::Lagged(n) => Some(n),
            _ => None,
        };
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(n) = skipped {
                ext.set("skipped", n);
            }
        })
    }
}

/// Resolver result: errors reach the client only through [`ApiError`].
pub type GqlResult<T> = Result<T, async_graphql::Error>;
