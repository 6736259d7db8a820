//! Subscriptions (served at `/graphql/ws`): live work item and board events
//! of a unit, each filtered by the subscriber's access, and live flow
//! metrics of a unit, pushed again when its subtree changes. The connection
//! restarts its subscriptions with fresh access whenever the subscriber's
//! memberships change, so revoked access stops the events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{Context, Enum, ID, Object, SimpleObject, Subscription as GqlSubscription};
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::broadcast;

use super::boards::{BoardCard, BoardColumn};
use super::ids::{self, kind};
use super::metrics::{FlowMetrics, MetricFilterInput, flow_selection};
use super::units::Unit;
use super::work_items::WorkItem;
use super::{RequestCtx, rc};
use crate::error::{ApiError, GqlResult};
use crate::events::ChangeKind;
use crate::policy::UnitPath;
use crate::service::Reach;
use crate::service::boards;
use crate::service::live::{FlowFollow, ItemChange, LiveEvent};
use crate::service::metrics::{self, Window};
use crate::service::units;

pub struct Subscription;

/// What happened to a work item.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WorkItemEventKind {
    /// The item was created, by a mutation or an ingested event.
    Created,
    /// The item's fields changed, or its card took another place in its column.
    Updated,
    /// The item moved to another state: a transition was recorded.
    Moved,
}

/// A work item changed.
#[derive(SimpleObject)]
pub struct WorkItemEvent {
    /// What happened to the item.
    pub kind: WorkItemEventKind,
    /// The item as you may see it now.
    pub work_item: WorkItem,
    /// When the server recorded the change (UTC).
    pub at: DateTime<Utc>,
}

/// What happened on a board.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum BoardEventKind {
    /// A card was added to the board.
    CardCreated,
    /// A card changed column or place in its column.
    CardMoved,
    /// A card's fields, or its children's progress, changed.
    CardUpdated,
    /// Items of a unit below the board changed: the counts of that unit's
    /// columns (its swimlane) changed.
    CountsChanged,
    /// A column went over its WIP limit, or came back within it.
    WipLimitCrossed,
    /// The board's WIP limits or policy changed.
    BoardChanged,
}

/// A change on a board.
pub struct BoardEvent {
    kind: BoardEventKind,
    lane: i64,
    card: Option<BoardCard>,
    columns: Vec<BoardColumn>,
    column: Option<BoardColumn>,
    at: DateTime<Utc>,
}

/// A change on a board, as `boardEvents` delivers it.
#[Object]
impl BoardEvent {
    /// What happened on the board.
    async fn kind(&self) -> BoardEventKind {
        self.kind
    }

    /// The unit whose columns `columns` are: the board's unit, or for
    /// `COUNTS_CHANGED` the unit below it (its swimlane).
    async fn lane(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        rc(ctx)?
            .units
            .load_one(self.lane)
            .await?
            .map(Unit)
            .ok_or_else(|| ApiError::not_found("unit").into())
    }

    /// The card concerned; null when there is none or you may not read it.
    async fn card(&self) -> Option<&BoardCard> {
        self.card.as_ref()
    }

    /// The lane's columns after the change; empty for a `CARD_UPDATED` that
    /// only reports the progress of a card's children.
    async fn columns(&self) -> &[BoardColumn] {
        &self.columns
    }

    /// For `WIP_LIMIT_CROSSED`: the column (its `overLimit` says which way).
    async fn column(&self) -> Option<&BoardColumn> {
        self.column.as_ref()
    }

    /// When the server recorded the change (UTC).
    async fn at(&self) -> DateTime<Utc> {
        self.at
    }
}

fn lagged(n: u64) -> async_graphql::Error {
    ApiError::Lagged(n).into()
}

/// The subscription's unit, checked against the subscriber's access.
async fn scoped_unit(r: &RequestCtx, unit: &ID) -> GqlResult<UnitPath> {
    r.policy.viewer()?;
    let id = ids::expect(unit, kind::UNIT, "unit")?;
    let path = units::path(&r.db, id).await?;
    r.policy.require_aggregates_of(&path)?;
    Ok(path)
}

/// A stream of `T`s made from live events by `convert`, which returns the
/// zero or more items one event gives this subscriber.
fn live_stream<'a, T, F>(r: &'a RequestCtx, convert: F) -> impl Stream<Item = GqlResult<T>> + 'a
where
    T: Send + 'a,
    F: Fn(&RequestCtx, &LiveEvent) -> Vec<T> + Send + 'a,
{
    let rx = r.services.live.subscribe();
    futures::stream::unfold(
        (rx, VecDeque::<T>::new(), convert),
        move |(mut rx, mut pending, convert)| async move {
            loop {
                if let Some(next) = pending.pop_front() {
                    return Some((Ok(next), (rx, pending, convert)));
                }
                match rx.recv().await {
                    Ok(event) => {
                        // The hub skipped events: this subscriber may have
                        // missed some, as if it had lagged itself.
                        if let LiveEvent::Missed(n) = *event {
                            return Some((Err(lagged(n)), (rx, pending, convert)));
                        }
                        // Fields below the event load afresh for each event.
                        r.clear_caches();
                        pending.extend(convert(r, &event));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some((Err(lagged(n)), (rx, pending, convert)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    )
}

fn item_kind(kind: ChangeKind) -> Option<WorkItemEventKind> {
    match kind {
        ChangeKind::WorkItemCreated => Some(WorkItemEventKind::Created),
        ChangeKind::WorkItemUpdated | ChangeKind::WorkItemRanked => {
            Some(WorkItemEventKind::Updated)
        }
        ChangeKind::WorkItemMoved => Some(WorkItemEventKind::Moved),
        _ => None,
    }
}

fn columns_for(r: &RequestCtx, unit: &UnitPath, columns: &[boards::Column]) -> Vec<BoardColumn> {
    let visible = r.policy.can_read_items_of(unit);
    columns
        .iter()
        .cloned()
        .map(|c| BoardColumn(c.with_cards_visible(visible)))
        .collect()
}

fn card_for(r: &RequestCtx, change: &ItemChange, now: DateTime<Utc>) -> Option<BoardCard> {
    r.policy.can_read_items_of(&change.unit).then(|| BoardCard {
        card: change.card.clone(),
        now,
    })
}

fn board_events(r: &RequestCtx, board: &UnitPath, event: &LiveEvent) -> Vec<BoardEvent> {
    let now = Utc::now();
    match event {
        LiveEvent::Access { .. } | LiveEvent::Missed(_) => Vec::new(),
        LiveEvent::Board {
            unit: u,
            columns,
            at,
        } if u.id == board.id => vec![BoardEvent {
            kind: BoardEventKind::BoardChanged,
            lane: u.id,
            card: None,
            columns: columns_for(r, u, columns),
            column: None,
            at: *at,
        }],
        LiveEvent::Board { .. } => Vec::new(),
        LiveEvent::Item { kind, at, change } => {
            let mut out = Vec::new();
            if change.unit.id == board.id {
                let k = match kind {
                    ChangeKind::WorkItemCreated => BoardEventKind::CardCreated,
                    ChangeKind::WorkItemMoved | ChangeKind::WorkItemRanked => {
                        BoardEventKind::CardMoved
                    }
                    _ => BoardEventKind::CardUpdated,
                };
                let columns = columns_for(r, &change.unit, &change.columns);
                out.push(BoardEvent {
                    kind: k,
                    lane: board.id,
                    card: card_for(r, change, now),
                    columns: columns.clone(),
                    column: None,
                    at: *at,
                });
                for (name, _) in &change.crossed {
                    out.push(BoardEvent {
                        kind: BoardEventKind::WipLimitCrossed,
                        lane: board.id,
                        card: None,
                        column: columns
                            .iter()
                            .find(|c| c.0.name == *name)
                            .map(|c| BoardColumn(c.0.clone())),
                        columns: columns.clone(),
                        at: *at,
                    });
                }
            } else if change.unit.is_under(board.id)
                && r.policy.can_read_aggregates_of(&change.unit)
            {
                out.push(BoardEvent {
                    kind: BoardEventKind::CountsChanged,
                    lane: change.unit.id,
                    card: card_for(r, change, now),
                    columns: columns_for(r, &change.unit, &change.columns),
                    column: None,
                    at: *at,
                });
            }
            if let Some((parent, parent_unit)) = &change.parent
                && parent_unit.id == board.id
                && r.policy.can_read_items_of(parent_unit)
            {
                out.push(BoardEvent {
                    kind: BoardEventKind::CardUpdated,
                    lane: board.id,
                    card: Some(BoardCard {
                        card: parent.clone(),
                        now,
                    }),
                    columns: Vec::new(),
                    column: None,
                    at: *at,
                });
            }
            out
        }
    }
}

/// Live flow metrics send at most one message per this, per subscription.
pub const COALESCE: Duration = Duration::from_secs(1);
/// Without a change, live flow metrics are pushed again after this long: the
/// rolling window moves with time (ages grow, old completions leave it).
pub const REFRESH: Duration = Duration::from_secs(60);

/// Whether `event` may change the flow metrics of `root` (with `reach`):
/// an item of its subtree created, changed or moved, or events missed.
fn touches(root: &UnitPath, reach: Reach, event: &LiveEvent) -> bool {
    match event {
        LiveEvent::Item { kind, change, .. } => {
            *kind != ChangeKind::WorkItemRanked
                && match reach {
                    Reach::Subtree => change.unit.is_under(root.id),
                    Reach::UnitOnly => change.unit.id == root.id,
                }
        }
        LiveEvent::Missed(_) => true,
        LiveEvent::Board { .. } | LiveEvent::Access { .. } => false,
    }
}

/// The instant after which a computation includes `event`.
fn read_at(event: &LiveEvent) -> Instant {
    match event {
        LiveEvent::Item { change, .. } => change.read_at,
        _ => Instant::now(),
    }
}

/// The flow metrics `follow` asks for over the last `follow.days` days up to
/// now, through the root field's service path, computed after `since`:
/// shared with the subscribers that follow the same, unless the parts
/// depend on the viewer (`oldestWip` lists the items they may read).
async fn live_flow(r: &RequestCtx, follow: &FlowFollow, since: Instant) -> GqlResult<FlowMetrics> {
    r.clear_caches();
    let max_days = r.services.settings.max_metric_window_days;
    let compute = || async {
        let to = Utc::now();
        let window = Window::new(to - chrono::Duration::days(follow.days), to, max_days)?;
        metrics::flow_metrics(r.svc(), follow.unit, window, &follow.filter, follow.parts)
            .await
            .map(Arc::new)
    };
    let m = if follow.parts.oldest {
        compute().await?
    } else {
        r.services
            .live
            .flows()
            .get(follow.clone(), since, compute)
            .await?
    };
    Ok(FlowMetrics((*m).clone()))
}

/// Waits for the next moment live metrics should be pushed: a change that
/// touches the unit (then no sooner than [`COALESCE`] after the last
/// message, folding every change meanwhile into one), or [`REFRESH`]
/// without any. Returns the instant after which the next computation must
/// start, `None` when the hub is gone.
async fn next_push(
    rx: &mut broadcast::Receiver<Arc<LiveEvent>>,
    root: &UnitPath,
    reach: Reach,
    sent: Instant,
) -> Option<Instant> {
    let refresh = tokio::time::sleep_until((sent + REFRESH).into());
    tokio::pin!(refresh);
    let mut since = loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(event) if touches(root, reach, &event) => break read_at(&event),
                Ok(_) => {}
                // Missed events may have touched it: recompute.
                Err(broadcast::error::RecvError::Lagged(_)) => break Instant::now(),
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            () = &mut refresh => {
                // Any result of the last second is recent enough.
                break Instant::now().checked_sub(COALESCE).unwrap_or(sent);
            }
        }
    };
    let due = tokio::time::sleep_until((sent + COALESCE).into());
    tokio::pin!(due);
    loop {
        tokio::select! {
            () = &mut due => return Some(since),
            got = rx.recv() => match got {
                Ok(event) if touches(root, reach, &event) => since = since.max(read_at(&event)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => since = Instant::now(),
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        }
    }
}

/// Live events over WebSocket at `/graphql/ws` (`graphql-transport-ws`), with
/// the session token in the `connection_init` payload. Events are filtered by
/// your access, and follow changes to your memberships.
#[GqlSubscription]
impl Subscription {
    /// Work items of `unit` and the units below it that you may read, as
    /// they are created, updated and moved. `FORBIDDEN` when the unit is
    /// outside your aggregate scope. Falling behind by more than 1,024
    /// events yields one `LAGGED` error, then the stream goes on.
    async fn work_item_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Global id of the unit to watch, with its subtree; an unknown unit is `NOT_FOUND`."
        )]
        unit: ID,
    ) -> async_graphql::Result<impl Stream<Item = GqlResult<WorkItemEvent>>> {
        let r = rc(ctx)?;
        let root = Arc::new(scoped_unit(r, &unit).await?);
        Ok(live_stream(r, move |r, event| {
            let LiveEvent::Item { kind, at, change } = event else {
                return Vec::new();
            };
            let Some(k) = item_kind(*kind) else {
                return Vec::new();
            };
            if !change.unit.is_under(root.id) || !r.policy.can_read_items_of(&change.unit) {
                return Vec::new();
            }
            vec![WorkItemEvent {
                kind: k,
                work_item: WorkItem::new(change.card.item.clone()),
                at: *at,
            }]
        }))
    }

    /// Flow metrics of `unit` over the last `lastDays` days up to now, as
    /// `flowMetrics` computes them for that window (`window` says which):
    /// now, then again whenever a work item of the unit's subtree is
    /// created, changed or moved (by a mutation or by ingest), at most once
    /// a second (changes meanwhile come together in the next message, and
    /// the last state always comes), and every 60 seconds without a change
    /// as the window moves on. Only the fields you select are computed.
    /// `FORBIDDEN` when you may not read the unit's aggregates.
    #[graphql(complexity = "super::metrics::days_cost(last_days) + child_complexity")]
    async fn flow_metrics_updates<'a>(
        &self,
        ctx: &Context<'a>,
        #[graphql(
            desc = "Global id of the unit to measure (with its subtree unless the filter says otherwise); an unknown unit is `NOT_FOUND`."
        )]
        unit: ID,
        #[graphql(
            desc = "Length of the rolling window in days: each message covers the last `lastDays` days up to the instant it was computed. At least 1 and at most the longest metric window (1,827 days by default), else `BAD_USER_INPUT`."
        )]
        last_days: i32,
        #[graphql(
            desc = "Which items to count (types, flow types, owning unit levels, scope); every item of the unit's subtree when omitted."
        )]
        filter: Option<MetricFilterInput>,
    ) -> async_graphql::Result<impl Stream<Item = GqlResult<FlowMetrics>> + use<'a>> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let max_days = r.services.settings.max_metric_window_days;
        if last_days < 1 || i64::from(last_days) > max_days {
            return Err(ApiError::bad_input(format!(
                "`lastDays` must be between 1 and {max_days}"
            ))
            .into());
        }
        let root = scoped_unit(r, &unit).await?;
        let (filter, parts) = flow_selection(ctx, filter);
        let reach = filter.reach;
        let follow = FlowFollow {
            unit: root.id,
            days: i64::from(last_days),
            filter,
            parts,
        };
        // Listening before the first computation: no change escapes.
        let rx = r.services.live.subscribe();
        let subscribed = Instant::now();
        Ok(futures::stream::unfold(
            (rx, None::<Instant>),
            move |(mut rx, sent)| {
                let root = root.clone();
                let follow = follow.clone();
                async move {
                    let since = match sent {
                        None => subscribed,
                        Some(sent) => next_push(&mut rx, &root, reach, sent).await?,
                    };
                    let m = live_flow(r, &follow, since).await;
                    Some((m, (rx, Some(Instant::now()))))
                }
            },
        ))
    }

    /// Changes on `unit`'s board: its cards moving, its counts and WIP
    /// limits, the progress of its cards' children, and the counts of the
    /// units below it. Cards you may not read come as counts only, and a unit
    /// outside your aggregate scope is `FORBIDDEN`.
    async fn board_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Global id of the unit whose board to watch; an unknown unit is `NOT_FOUND`."
        )]
        unit: ID,
    ) -> async_graphql::Result<impl Stream<Item = GqlResult<BoardEvent>>> {
        let r = rc(ctx)?;
        let board = Arc::new(scoped_unit(r, &unit).await?);
        Ok(live_stream(r, move |r, event| {
            board_events(r, &board, event)
        }))
    }
}
