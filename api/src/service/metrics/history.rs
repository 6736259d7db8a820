//! Durations between instants as every metric reports them (DESIGN §3:
//! seconds, from instants truncated to the millisecond as the stored flow
//! facts are).

use chrono::{DateTime, Utc};

/// Seconds between two instants, each truncated to the millisecond.
pub fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to.timestamp_millis() - from.timestamp_millis()) as f64 / 1000.0
}
