//! Webhook adapters: verify a vendor's signature and translate its native
//! payload into common-data-model events (DESIGN §4), which then take the
//! same path as `POST /ingest`. Unmapped repositories, statuses or
//! environments are rejected with a reason in the ingest log, never guessed.

pub mod github;
pub mod gitlab;
pub mod jira;

use serde_json::Value;

/// The string at a path of keys, if there is one.
pub(crate) fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |acc, k| acc.get(k))?.as_str()
}

/// An item key from a repository or project path and a number: the last
/// path segment, upper-cased, then the number (`acme/cards-api`, 42 →
/// `CARDS-API-42`).
pub(crate) fn item_key(path: &str, number: i64) -> String {
    let name: String = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{name}-{number}")
}

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
