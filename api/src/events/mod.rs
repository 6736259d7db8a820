//! The internal event bus: every applied change is published here by the
//! service that made it (`service/`), after its transaction commits, for
//! live updates to consume. In process: a broadcast channel; a slow receiver
//! lags and is told how many events it missed, it never grows memory.
//!
//! With PostgreSQL, [`relay`] also carries every event to the other
//! replicas on the same database through `LISTEN/NOTIFY`, and theirs to
//! this one. The bus knows none of its publishers nor of its readers: the
//! live hub that turns events into what subscriptions deliver is
//! `service::live`.

pub mod relay;

use std::sync::{Arc, OnceLock, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    UnitUpserted,
    WorkItemCreated,
    WorkItemUpdated,
    WorkItemMoved,
    /// A card took another place in its column (no state change).
    WorkItemRanked,
    /// A board's WIP limit or policy changed (`entity_id` is the unit).
    BoardChanged,
    /// A user's memberships, activity or tokens changed (`entity_id` is the
    /// user, or 0 when anyone's may have): their open subscriptions
    /// re-check access.
    AccessChanged,
    /// An API key was revoked (`entity_id` is the key).
    ApiKeyRevoked,
    ChangeUpserted,
    DeploymentRecorded,
    ReleaseRecorded,
    IncidentOpened,
    IncidentResolved,
    KeyResultMeasured,
    ObjectiveUpserted,
}

/// One applied change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainEvent {
    pub kind: ChangeKind,
    /// The unit that owns the changed entity.
    pub unit_id: i64,
    /// The changed entity's row id in its table.
    pub entity_id: i64,
    pub at: DateTime<Utc>,
    /// For a move, the state the item left (when the writer knows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_state: Option<String>,
}

impl DomainEvent {
    pub fn new(kind: ChangeKind, unit_id: i64, entity_id: i64) -> Self {
        Self {
            kind,
            unit_id,
            entity_id,
            at: Utc::now(),
            from_state: None,
        }
    }
}

/// A synchronous reader of every event, see [`EventBus::observe`].
type Observer = Box<dyn Fn(&DomainEvent) + Send + Sync>;

struct Inner {
    tx: broadcast::Sender<DomainEvent>,
    /// To the PostgreSQL relay, once attached.
    remote: OnceLock<mpsc::Sender<DomainEvent>>,
    observers: RwLock<Vec<Observer>>,
    /// Counts the times other replicas' events may have been lost.
    gaps: watch::Sender<u64>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("tx", &self.tx)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            inner: Arc::new(Inner {
                tx,
                remote: OnceLock::new(),
                observers: RwLock::new(Vec::new()),
                gaps: watch::channel(0).0,
            }),
        }
    }

    /// Publishes to every current subscriber of this process (with none, the
    /// event is dropped) and, with a relay attached, to the other replicas.
    /// Observers have seen the event when this returns.
    pub fn publish(&self, event: DomainEvent) {
        if let Some(remote) = self.inner.remote.get()
            && remote.try_send(event.clone()).is_err()
        {
            tracing::warn!("event relay is behind; an event reaches this replica only");
        }
        self.notify_observers(&event);
        let _ = self.inner.tx.send(event);
    }

    /// Delivers an event that another replica published, here only.
    pub(crate) fn deliver_remote(&self, event: DomainEvent) {
        self.notify_observers(&event);
        let _ = self.inner.tx.send(event);
    }

    /// Calls `f` with every event, local or relayed, before
    /// [`publish`](Self::publish) returns and before any subscriber can
    /// receive it: for in-memory state (caches) that must never be read
    /// stale once the change is visible. `f` runs on the publisher's task
    /// and must be quick and must not block.
    pub fn observe(&self, f: impl Fn(&DomainEvent) + Send + Sync + 'static) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(f));
    }

    fn notify_observers(&self, event: &DomainEvent) {
        let observers = self
            .inner
            .observers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for f in observers.iter() {
            f(event);
        }
    }

    /// Says that other replicas' events may have been lost (the relay's
    /// listener reconnected): state kept current from events catches up
    /// from the database.
    pub(crate) fn report_gap(&self) {
        self.inner.gaps.send_modify(|n| *n += 1);
    }

    /// Changes each time events from other replicas may have been lost.
    pub fn gaps(&self) -> watch::Receiver<u64> {
        self.inner.gaps.subscribe()
    }

    pub(crate) fn attach_remote(&self, tx: mpsc::Sender<DomainEvent>) -> bool {
        self.inner.remote.set(tx).is_ok()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.inner.tx.subscribe()
    }
}
