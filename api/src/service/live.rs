//! Live updates: the bus's events, read once per replica and completed with
//! what subscribers need (the item, its unit's place in the tree, its board's
//! columns, the parent card's progress), then shared by every subscriber.
//! Each subscriber only filters by its own access: per event, the database
//! is read once, not once per subscriber.
//!
//! The hub sits here, beside the services whose boards and cards it reads,
//! and above the event bus it listens to: `events/` knows none of it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::work_item;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::broadcast;

use super::{boards, units};
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
    /// A user's access changed (`None`: anyone's may have, because events
    /// were missed): their connections re-check it.
    Access { user_id: Option<i64> },
}

/// Completes the bus's events for subscribers, once per replica.
#[derive(Clone, Debug)]
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveEvent>>,
}

impl LiveHub {
    /// Starts the hub (and, on PostgreSQL, the replica relay) on `bus`.
    pub fn start(db: &DatabaseConnection, bus: &EventBus) -> Self {
        relay::start(db, bus);
        let (tx, _) = broadcast::channel(CAPACITY);
        tokio::spawn(run(db.clone(), bus.subscribe(), tx.clone()));
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }

    /// Open subscriptions (and connections) on this replica.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }
}

async fn run(
    db: DatabaseConnection,
    mut rx: broadcast::Receiver<DomainEvent>,
    tx: broadcast::Sender<Arc<LiveEvent>>,
) {
    loop {
        match rx.recv().await {
            Ok(event) => {
                if tx.receiver_count() == 0 {
                    continue;
                }
                match complete(&db, event).await {
                    Ok(Some(live)) => {
                        let _ = tx.send(Arc::new(live));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = ?e, "cannot prepare a live update"),
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "live updates fell behind the event bus");
                // The skipped events may have changed someone's access.
                let _ = tx.send(Arc::new(LiveEvent::Access { user_id: None }));
            }
            Err(broadcast::error::RecvError::Closed) => break,
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
                }),
            }))
        }
        _ => Ok(None),
    }
}
