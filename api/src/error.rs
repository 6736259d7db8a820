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
    /// The request's deadline passed; its work was cancelled.
    Timeout,
    /// The database cannot be reached; try again after `Retry-After`.
    Unavailable,
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
            Self::Timeout => "TIMEOUT",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    /// Reads a code back from its `extensions.code` text.
    pub fn parse(code: &str) -> Option<Self> {
        [
            Self::Unauthenticated,
            Self::Forbidden,
            Self::NotFound,
            Self::BadUserInput,
            Self::Conflict,
            Self::RateLimited,
            Self::PayloadTooLarge,
            Self::Lagged,
            Self::Timeout,
            Self::Unavailable,
            Self::Internal,
        ]
        .into_iter()
        .find(|c| c.as_str() == code)
    }

    /// The one HTTP status of this code, whatever the operation (DESIGN §5).
    /// `LAGGED` travels only over the WebSocket; it has no status of its own.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadUserInput => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited => 429,
            Self::Internal | Self::Lagged => 500,
            Self::Unavailable => 503,
            Self::Timeout => 504,
        }
    }

    /// Whether the code speaks of the request's fate rather than of the data
    /// asked for: an answer without data that carries it takes its status.
    pub fn decides_status(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Internal | Self::Unavailable | Self::Timeout
        )
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
    /// The caller's cost budget cannot pay for this operation yet.
    OverBudget {
        cost: u64,
        remaining: u64,
        retry_after_secs: u64,
    },
    /// A subscriber fell behind and this many events were skipped.
    Lagged(u64),
    /// The request's deadline passed.
    Timeout,
    /// The database cannot be reached. The source is logged.
    Unavailable(anyhow::Error),
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
            Self::RateLimited | Self::OverBudget { .. } => ErrorCode::RateLimited,
            Self::Lagged(_) => ErrorCode::Lagged,
            Self::Timeout => ErrorCode::Timeout,
            Self::Unavailable(_) => ErrorCode::Unavailable,
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
            Self::OverBudget {
                cost,
                retry_after_secs,
                ..
            } => format!(
                "this operation costs {cost} and the budget cannot pay for it; try again in {retry_after_secs} s"
            ),
            Self::Timeout => "the request took longer than its deadline and was cancelled".into(),
            Self::Unavailable(_) => "the database is unavailable; try again shortly".into(),
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

    /// An unexpected error, unless it says the database is away or a
    /// statement ran past the deadline: those keep their own codes.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        match err.chain().find_map(db_failure) {
            Some(DbFailure::Unavailable) => Self::Unavailable(err),
            Some(DbFailure::Timeout) => Self::Timeout,
            None => Self::Internal(err),
        }
    }

    /// Seconds a client should wait before retrying, for the codes that
    /// answer with `Retry-After`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::OverBudget {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

/// What `Retry-After` says while the database is away.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// A database error that is not a bug.
enum DbFailure {
    /// The database cannot be reached: no connection within the pool's
    /// timeout, a broken connection, a server shutting down or starting.
    Unavailable,
    /// The server cancelled a statement at `statement_timeout`.
    Timeout,
}

fn db_failure(err: &(dyn std::error::Error + 'static)) -> Option<DbFailure> {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    if let Some(db) = err.downcast_ref::<DbErr>() {
        return match db {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Some(DbFailure::Unavailable),
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                db_failure(e.as_ref())
            }
            _ => None,
        };
    }
    let sqlx = err.downcast_ref::<Sqlx>()?;
    match sqlx {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Protocol(_) => Some(DbFailure::Unavailable),
        Sqlx::Database(e) => {
            let code = e.code()?;
            // 57014 query_canceled (statement_timeout); class 08 connection
            // exceptions; 57P01–57P03 shutdown and start-up.
            if code == "57014" {
                Some(DbFailure::Timeout)
            } else if code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03") {
                Some(DbFailure::Unavailable)
            } else {
                None
            }
        }
        _ => None,
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
        Self::internal(err)
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        err.log();
        let code = err.code().as_str();
        let retry_after = err.retry_after_secs();
        let (skipped, budget) = match err {
            ApiError::Lagged(n) => (Some(n), None),
            ApiError::OverBudget {
                cost, remaining, ..
            } => (None, Some((cost, remaining))),
            _ => (None, None),
        };
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(n) = skipped {
                ext.set("skipped", n);
            }
            if let Some(s) = retry_after {
                ext.set("retryAfter", s);
            }
            if let Some((cost, remaining)) = budget {
                ext.set("cost", cost);
                ext.set("remaining", remaining);
            }
        })
    }
}

impl ApiError {
    /// Logs what a client will not see.
    pub fn log(&self) {
        match self {
            Self::Internal(source) => tracing::error!(error = ?source, "internal error"),
            Self::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
            }
            _ => {}
        }
    }
}

/// Resolver result: errors reach the client only through [`ApiError`].
pub type GqlResult<T> = Result<T, async_graphql::Error>;
