//! The internal event bus: every applied change (from mutations and from
//! ingestion) is published here, after its transaction commits, for live
//! updates to consume. In process: a broadcast channel; a slow receiver
//! lags and is told how many events it missed, it never grows memory.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    UnitUpserted,
    WorkItemCreated,
    WorkItemUpdated,
    WorkItemMoved,
    ChangeUpserted,
    DeploymentRecorded,
    ReleaseRecorded,
    IncidentOpened,
    IncidentResolved,
    KeyResultMeasured,
}

/// One applied change.
#[derive(Clone, Debug, Serialize)]
pub struct DomainEvent {
    pub kind: ChangeKind,
    /// The unit that owns the changed entity.
    pub unit_id: i64,
    /// The changed entity's row id in its table.
    pub entity_id: i64,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<DomainEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// Publishes to every current subscriber; with none, the event is dropped.
    pub fn publish(&self, event: DomainEvent) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.tx.subscribe()
    }
}
