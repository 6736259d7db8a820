//! Live updates: the bus's events, read once per replica and completed with
//! what subscribers need (the item, its unit's place in the tree, its board's
//! columns, the parent card's progress), then shared by every subscriber.
//! Each subscriber only filters by its own access: per event, the database
//! is read once, not once per subscriber.
//!
//! The hub listens to the bus only while someone listens to the hub: with
//! no subscriber (no open WebSocket) on this replica it holds no receiver of
//! the bus, so publishing costs nothing here and a large ingest cannot make
//! it fall behind. When it does fall behind while subscribers listen, it
//! tells them ([`LiveEvent::Missed`]): nothing is skipped silently.
//!
//! The hub sits here, beside the services whose boards and cards it reads,
//! and above the event bus it listens to: `events/` knows none of it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::work_item;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::{Notify, broadcast};

use super::{boards, metrics, units};
use crate::error::ApiResult;
use crate::events::{ChangeKind, DomainEvent, EventBus, relay};
use crate::policy::UnitPath;

/// Events a subscriber may fall behind by before it is told it lagged.
pub const CAPACITY: usize = 1024;

/// A changed work item, with its board after the change.
#[derive(Debug)]
pub struct ItemChange {
    /// The item's card (its item, since when in its state, its children).
    pub card: boards::Card,
    pub unit: UnitPath,
    /// The owning unit's board columns after the change (no cards).
    pub columns: Vec<boards::Column>,
    /// Columns whose WIP limit the change crossed: (column, now over it).
    pub crossed: Vec<(String, bool)>,
    /// The parent's card, whose children roll-up the change moved.
    pub parent: Option<(boards::Card, UnitPath)>,
    /// When the hub read the change, after it was committed: what is
    /// computed from the database after this instant includes it.
    pub read_at: Instant,
}

/// What subscribers receive.
#[derive(Debug)]
pub enum LiveEvent {
    Item {
        kind: ChangeKind,
        at: DateTime<Utc>,
        change: Box<ItemChange>,
    },
    Board {
        unit: UnitPath,
        columns: Vec<boards::Column>,
        at: DateTime<Utc>,
    },
    /// A user's access changed: their connections re-check it.
    Access { user_id: Option<i64> },
    /// The hub fell behind the bus and skipped this many events: any item,
    /// board or access may have changed. Subscribers refetch what they show
    /// (a stream of events reports `LAGGED`, live metrics recompute), and
    /// connections re-check their access.
    Missed(u64),
}

/// Whether the hub's task listens to the bus.
#[derive(Debug)]
enum Feed {
    /// No subscriber: the hub holds no receiver of the bus.
    Idle,
    /// A first subscriber arrived: the receiver the task is to read, taken
    /// when the subscriber subscribed, so that no later event escapes it.
    Handoff(broadcast::Receiver<DomainEvent>),
    Listening,
}

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    bus: EventBus,
    feed: Mutex<Feed>,
    /// Wakes the idle task: a first subscriber, or the hub dropped.
    wake: Arc<Notify>,
    /// Events completed for subscribers (each read the database).
    completed: AtomicU64,
    /// Bus events skipped because the hub fell behind.
    missed: AtomicU64,
    flows: Shared<FlowFollow, Arc<metrics::FlowMetrics>>,
}

/// The live flow metrics a subscriber follows: subscribers that follow the
/// same share each computation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowFollow {
    pub unit: i64,
    /// The rolling window's length: the last `days` days up to now.
    pub days: i64,
    pub filter: metrics::MetricFilter,
    pub parts: metrics::FlowParts,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The idle task ends.
        self.wake.notify_one();
    }
}

/// Completes the bus's events for subscribers, once per replica.
#[derive(Clone, Debug)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

impl LiveHub {
    /// Starts the hub (and, on PostgreSQL, the replica relay) on `bus`.
    pub fn start(db: &DatabaseConnection, bus: &EventBus) -> Self {
        relay::start(db, bus);
        let (tx, _) = broadcast::channel(CAPACITY);
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            tx,
            bus: bus.clone(),
            feed: Mutex::new(Feed::Idle),
            wake: wake.clone(),
            completed: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            flows: Shared::default(),
        });
        // The task holds the hub weakly: it ends once the hub is dropped.
        tokio::spawn(run(db.clone(), Arc::downgrade(&inner), wake));
        Self { inner }
    }

    /// A receiver of every live event from now on. The first one wakes the
    /// hub, which listens to the bus from this call on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        // Counted before the feed is looked at: the task, which goes idle
        // only under the same lock after seeing no receiver, either sees
        // this one or leaves the feed idle for this call to wake.
        let rx = self.inner.tx.subscribe();
        let mut feed = self.inner.feed.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*feed, Feed::Idle) {
            *feed = Feed::Handoff(self.inner.bus.subscribe());
            self.inner.wake.notify_one();
        }
        rx
    }

    /// Open subscriptions (and connections) on this replica.
    pub fn receivers(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    /// Events completed for subscribers so far (exported on `/metrics`).
    pub fn completed(&self) -> u64 {
        self.inner.completed.load(Ordering::Relaxed)
    }

    /// Live flow metrics, shared by the subscribers that follow the same.
    pub fn flows(&self) -> &Shared<FlowFollow, Arc<metrics::FlowMetrics>> {
        &self.inner.flows
    }

    /// Bus events skipped so far because the hub fell behind, each time
    /// reported to the subscribers (exported on `/metrics`).
    pub fn missed(&self) -> u64 {
        self.inner.missed.load(Ordering::Relaxed)
    }
}

/// The receiver handed over by a first subscriber, once there is one;
/// `None` once the hub is dropped.
async fn handoff(hub: &Weak<Inner>, wake: &Notify) -> Option<broadcast::Receiver<DomainEvent>> {
    loop {
        {
            let inner = hub.upgrade()?;
            let mut feed = inner.feed.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(*feed, Feed::Handoff(_))
                && let Feed::Handoff(rx) = std::mem::replace(&mut *feed, Feed::Listening)
            {
                return Some(rx);
            }
        }
        wake.notified().await;
    }
}

/// Whether the hub goes idle: true (and the feed idle) when nobody listens.
fn nobody_listens(inner: &Inner) -> bool {
    let mut feed = inner.feed.lock().unwrap_or_else(|p| p.into_inner());
    if inner.tx.receiver_count() == 0 {
        *feed = Feed::Idle;
        return true;
    }
    false
}

async fn run(db: DatabaseConnection, hub: Weak<Inner>, wake: Arc<Notify>) {
    while let Some(mut rx) = handoff(&hub, &wake).await {
        loop {
            let received = rx.recv().await;
            let Some(inner) = hub.upgrade() else {
                return;
            };
            let event = match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    if nobody_listens(&inner) {
                        break;
                    }
                    tracing::warn!(skipped = n, "live updates fell behind the event bus");
                    inner.missed.fetch_add(n, Ordering::Relaxed);
                    let _ = inner.tx.send(Arc::new(LiveEvent::Missed(n)));
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            // The last subscriber left: drop the bus's receiver (the
            // following events cost the bus nothing) until the next one.
            if nobody_listens(&inner) {
                break;
            }
            match complete(&db, event).await {
                Ok(Some(live)) => {
                    inner.completed.fetch_add(1, Ordering::Relaxed);
                    let _ = inner.tx.send(Arc::new(live));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = ?e, "cannot prepare a live update"),
            }
        }
    }
}

async fn complete(db: &DatabaseConnection, event: DomainEvent) -> ApiResult<Option<LiveEvent>> {
    match event.kind {
        ChangeKind::AccessChanged => Ok(Some(LiveEvent::Access {
            user_id: (event.entity_id != 0).then_some(event.entity_id),
        })),
        ChangeKind::BoardChanged => {
            let unit = units::path(db, event.unit_id).await?;
            let columns = boards::columns(db, unit.id, None, false).await?;
            Ok(Some(LiveEvent::Board {
                unit,
                columns,
                at: event.at,
            }))
        }
        ChangeKind::WorkItemCreated
        | ChangeKind::WorkItemUpdated
        | ChangeKind::WorkItemMoved
        | ChangeKind::WorkItemRanked => {
            let Some(item) = work_item::Entity::find_by_id(event.entity_id)
                .one(db)
                .await?
            else {
                return Ok(None);
            };
            let unit = units::path(db, item.unit_id).await?;
            let columns = boards::columns(db, unit.id, None, false).await?;
            let Some(card) = boards::cards_of(db, vec![item]).await?.pop() else {
                return Ok(None);
            };
            let mut crossed = Vec::new();
            if matches!(
                event.kind,
                ChangeKind::WorkItemCreated | ChangeKind::WorkItemMoved
            ) {
                for c in &columns {
                    let Some(limit) = c.wip_limit.map(i64::from) else {
                        continue;
                    };
                    if c.name == card.item.state && c.count == limit + 1 {
                        crossed.push((c.name.clone(), true));
                    } else if event.from_state.as_deref() == Some(c.name.as_str())
                        && c.count == limit
                    {
                        crossed.push((c.name.clone(), false));
                    }
                }
            }
            let parent = match card.item.parent_id {
                Some(pid) if event.kind != ChangeKind::WorkItemRanked => {
                    match work_item::Entity::find_by_id(pid).one(db).await? {
                        Some(p) => {
                            let path = units::path(db, p.unit_id).await?;
                            boards::cards_of(db, vec![p])
                                .await?
                                .pop()
                                .map(|card| (card, path))
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            Ok(Some(LiveEvent::Item {
                kind: event.kind,
                at: event.at,
                change: Box::new(ItemChange {
                    card,
                    unit,
                    columns,
                    crossed,
                    parent,
                    read_at: Instant::now(),
                }),
            }))
        }
        _ => Ok(None),
    }
}

/// How long a shared result is kept for subscribers that ask for it late.
const KEEP_SHARED: Duration = Duration::from_secs(10);

/// One computation (the live metrics of a unit, say) shared by the
/// subscribers that need the same thing at the same time: a subscriber
/// asks for a result computed after a given instant (the change it follows
/// was read) and gets one in progress or just made if it started after that
/// instant, else starts a new one. A failed computation is not shared: the
/// next subscriber tries again.
#[derive(Debug)]
pub struct Shared<K, V> {
    slots: Mutex<HashMap<K, Arc<Slot<V>>>>,
}

#[derive(Debug)]
struct Slot<V> {
    started: Instant,
    value: tokio::sync::OnceCell<V>,
}

impl<K, V> Default for Shared<K, V> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Shared<K, V> {
    /// The value of `key` computed by `compute` after `since`, computing it
    /// at most once for every caller that asks meanwhile.
    ///
    /// # Errors
    /// `compute`'s error, for this caller only.
    pub async fn get<E, F, Fut>(&self, key: K, since: Instant, compute: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(&key) {
                Some(slot) if slot.started >= since => slot.clone(),
                _ => {
                    let now = Instant::now();
                    slots.retain(|_, s| now.duration_since(s.started) < KEEP_SHARED);
                    let slot = Arc::new(Slot {
                        started: now,
                        value: tokio::sync::OnceCell::new(),
                    });
                    slots.insert(key, slot.clone());
                    slot
                }
            }
        };
        slot.value.get_or_try_init(compute).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use super::Shared;

    #[tokio::test]
    async fn a_computation_serves_those_who_need_no_later_one() {
        let shared = Shared::<&str, u64>::default();
        let runs = AtomicU64::new(0);
        let compute = || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, ()>(runs.fetch_add(1, Ordering::SeqCst) + 1)
        };
        let since = Instant::now();
        // Together, after the same change: one computation.
        let (a, b) = tokio::join!(
            shared.get("org", since, compute),
            shared.get("org", since, compute)
        );
        assert_eq!((a, b), (Ok(1), Ok(1)));
        // A change read later needs a computation started after it.
        let later = Instant::now();
        assert_eq!(shared.get("org", later, compute).await, Ok(2));
        // Another key is another computation; an error is not shared.
        assert_eq!(shared.get("team", since, compute).await, Ok(3));
        let now = Instant::now();
        assert_eq!(
            shared.get("x", now, || async { Err::<u64, ()>(()) }).await,
            Err(())
        );
        assert_eq!(shared.get("x", now, compute).await, Ok(4));
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }
}
