//! What became of each event: the per-event result and the counts over a
//! batch that every caller of the ingest path answers with.

use serde::Serialize;

/// What became of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The event was applied.
    Applied,
    /// An event with the same `id` was applied before, so this one was
    /// skipped and changed nothing.
    Duplicate,
    /// The event was refused and changed nothing; `reason` says why.
    Rejected,
}

/// The result of one event, as the caller sees it.
#[derive(Clone, Debug, Serialize)]
pub struct EventResult {
    /// 1-based line (NDJSON) or position (JSON array) of the event.
    pub line: usize,
    pub id: Option<String>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counts over a batch.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Summary {
    pub applied: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

impl Summary {
    pub fn add(&mut self, r: &EventResult) {
        match r.status {
            Status::Applied => self.applied += 1,
            Status::Duplicate => self.duplicates += 1,
            Status::Rejected => self.rejected += 1,
        }
    }
}

/// The reason given for an event not applied because of a failure on our side.
pub(super) const INTERNAL_REASON: &str =
    "internal error: nothing was written; send the event again";
