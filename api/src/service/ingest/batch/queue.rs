//! What a segment queues: the rows the planner has checked and the writer
//! will insert, named by queue position until they have ids.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{change, deployment};
use sea_orm::DbErr;

use crate::events::ChangeKind;
use crate::service::ingest::event::Envelope;

/// A row that exists, or the n-th row of its kind queued in this segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Id {
    Row(i64),
    New(usize),
}

/// A queued work item.
pub(super) struct NewItem {
    pub(super) key: String,
    pub(super) title: String,
    pub(super) description: Option<String>,
    pub(super) item_type: String,
    pub(super) flow_type: String,
    pub(super) state: String,
    pub(super) category: String,
    pub(super) unit_id: i64,
    pub(super) parent_id: Option<i64>,
    pub(super) estimate: Option<f64>,
    pub(super) business_value: Option<f64>,
    pub(super) rank: String,
    pub(super) found_in: Option<String>,
    pub(super) severity: Option<String>,
    pub(super) created_at: DateTime<Utc>,
}

/// A queued transition.
pub(super) struct NewTransition {
    pub(super) item: Id,
    pub(super) from: Option<String>,
    pub(super) to: String,
    pub(super) category: String,
    pub(super) at: DateTime<Utc>,
    pub(super) source: String,
}

/// An entity a queued domain event is about.
#[derive(Clone, Copy)]
pub(super) enum Target {
    Item(Id),
    /// A queued change or deployment, by queue position.
    Change(usize),
    Deployment(usize),
}

/// Writes queued by the current segment.
#[derive(Default)]
pub(super) struct Pending {
    /// Every event of the segment, to replay should its writes fail.
    pub(super) events: Vec<(usize, usize, Envelope)>,
    /// Claimed ids to mark rejected, with the reason.
    pub(super) rejections: Vec<(String, String)>,
    pub(super) items: Vec<NewItem>,
    /// For each queued item, its index in the cache.
    pub(super) item_slots: Vec<usize>,
    pub(super) refs: Vec<(Id, String, String, Option<String>)>,
    pub(super) transitions: Vec<NewTransition>,
    /// New state, category and rank of items that exist.
    pub(super) moves: HashMap<i64, (String, String, String)>,
    pub(super) changes: Vec<change::ActiveModel>,
    pub(super) change_refs: Vec<(String, String)>,
    pub(super) change_links: Vec<(usize, Id)>,
    pub(super) deployments: Vec<deployment::ActiveModel>,
    pub(super) deployment_refs: Vec<(String, String)>,
    pub(super) deployment_links: Vec<(usize, Id)>,
    pub(super) domain: Vec<(ChangeKind, i64, Target)>,
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Ids of the rows a segment inserted, by queue position.
pub(super) struct Written {
    pub(super) items: Vec<i64>,
    pub(super) changes: Vec<i64>,
    pub(super) deployments: Vec<i64>,
}

/// A failure of the batch's own bookkeeping (a row it wrote and cannot find,
/// a unit kind it cannot read), told as a database error.
pub(super) fn internal(e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(e.to_string())
}
