//! Webhook adapters: verify a vendor's signature and translate its native
//! payload into common-data-model events (DESIGN §4), which then take the
//! same path as `POST /ingest`. Unmapped repositories, statuses or
//! environments are rejected with a reason in the ingest log, never guessed.

pub mod github;
pub mod gitlab;

use serde_json::Value;

/// What a payload translates to.
#[derive(Debug)]
pub enum Translation {
    /// Events to apply, in order.
    Events(Vec<Value>),
    /// A delivery the adapter deliberately ignores (pings, other actions).
    Ignored(String),
    /// A delivery that cannot be translated; the reason goes to the ingest log.
    Rejected(String),
}
