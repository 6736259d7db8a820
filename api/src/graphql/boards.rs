//! Boards: columns, cards with feedback from below, swimlanes, and the
//! mutations that move cards and set WIP limits.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use super::connection::PageInfo;
use super::ids::{self, kind};
use super::rc;
use super::units::Unit;
use super::users::User;
use super::work_items::WorkItem;
use crate::domain::{FlowType, StateCategory, WipPolicy, WorkItemType};
use crate::error::{ApiError, ApiResult, GqlResult};
use crate::service::boards::{self, Card, ChildProgress};
use crate::service::work_items::{self, Position};

/// Most cards or lanes one page returns.
const MAX_CARDS: i32 = 200;
const DEFAULT_CARDS: i32 = 50;
const MAX_LANES: i32 = 100;

fn seconds_since(t: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    ((now - t).num_milliseconds().max(0) as f64) / 1000.0
}

fn card_cursor(rank: &str, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("card:{id}:{rank}"))
}

fn decode_card_cursor(cursor: &str) -> ApiResult<(String, i64)> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|t| {
            let rest = t.strip_prefix("card:")?;
            let (id, rank) = rest.split_once(':')?;
            Some((rank.to_owned(), id.parse().ok()?))
        })
        .ok_or_else(|| ApiError::bad_input("`after` is not a valid card cursor"))
}

pub struct Board(pub boards::Board);

/// A unit's Kanban board: its workflow's columns with counts and WIP limits,
/// its own items as cards in rank order, and on request the items of one
/// type across its subtree in swimlanes. Readable wherever you may read the
/// unit's aggregates; cards appear only where you may also read its items.
#[Object]
impl Board {
    /// The unit whose board this is.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        rc(ctx)?
            .units
            .load_one(self.0.unit.id)
            .await?
            .map(Unit)
            .ok_or_else(|| ApiError::not_found("unit").into())
    }

    /// What happens when a move takes a column over its WIP limit. `WARN`
    /// (the default): the move happens and is flagged; `BLOCK`: it is refused
    /// with `CONFLICT`.
    async fn wip_policy(&self) -> WipPolicy {
        self.0.wip_policy
    }

    /// Whether you may read this board's cards. When false (an executive on
    /// a team board), columns carry counts and no cards.
    async fn cards_visible(&self) -> bool {
        self.0.cards_visible
    }

    /// The columns, in workflow order.
    async fn columns(&self) -> Vec<BoardColumn> {
        self.0.columns.iter().cloned().map(BoardColumn).collect()
    }

    /// The items of `itemType` owned by the units below this one, one lane
    /// per unit that may own such items (e.g. a program's stories, one lane
    /// per team), ordered by unit key. Only units whose aggregates you may
    /// read get a lane.
    async fn lanes(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The work item type the lanes show, e.g. `STORY`: each lane is a unit below this one of a kind that owns that type."
        )]
        item_type: WorkItemType,
        #[graphql(default = 50, desc = "The most lanes to return, from 0 to 100.")] first: i32,
    ) -> GqlResult<Vec<BoardLane>> {
        if !(0..=MAX_LANES).contains(&first) {
            return Err(
                ApiError::bad_input(format!("`first` must be between 0 and {MAX_LANES}")).into(),
            );
        }
        let r = rc(ctx)?;
        let lanes = boards::lanes(
            r.svc(),
            &self.0,
            item_type,
            usize::try_from(first).unwrap_or(0),
        )
        .await?;
        Ok(lanes.into_iter().map(BoardLane).collect())
    }
}

pub struct BoardLane(boards::Lane);

/// One swimlane of a board: the items of one type owned by one unit below
/// the board's unit.
#[Object]
impl BoardLane {
    /// The unit whose items the lane holds.
    async fn unit(&self, ctx: &Context<'_>) -> GqlResult<Unit> {
        rc(ctx)?
            .units
            .load_one(self.0.unit_id)
            .await?
            .map(Unit)
            .ok_or_else(|| ApiError::not_found("unit").into())
    }

    /// The lane unit's columns in workflow order, counting only items of the
    /// lane's type. Their cards appear only where you may read that unit's
    /// items.
    async fn columns(&self) -> Vec<BoardColumn> {
        self.0.columns.iter().cloned().map(BoardColumn).collect()
    }
}

#[derive(Clone)]
pub struct BoardColumn(pub boards::Column);

/// A column of a board or swimlane: one state of the workflow, with its
/// item count, WIP limit and cards.
#[Object]
impl BoardColumn {
    /// The state's name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The flow-state category of the column's state: `NEW`, `ACTIVE`,
    /// `WAITING`, `DONE` or `CANCELED`.
    async fn category(&self) -> GqlResult<StateCategory> {
        Ok(StateCategory::parse(&self.0.category)?)
    }

    /// The most items the column should hold: the board's own limit for this
    /// column, else its workflow's. Null means no limit.
    async fn wip_limit(&self) -> Option<i32> {
        self.0.wip_limit
    }

    /// Items in the column (an aggregate: shown even when cards are not). In
    /// a swimlane, only items of the lane's type count.
    async fn count(&self) -> i64 {
        self.0.count
    }

    /// Whether the column holds more items than its WIP limit; always false
    /// when it has no limit.
    async fn over_limit(&self) -> bool {
        self.0.over_limit()
    }

    /// Cards in rank order, a page at a time; empty when you may not read the
    /// board's items.
    async fn cards(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, desc = "The most cards to return, from 0 to 200.")] first: i32,
        #[graphql(
            desc = "Return the cards after this cursor: an edge's `cursor` or `pageInfo.endCursor` from an earlier page of this column. Null starts at the first card."
        )]
        after: Option<String>,
    ) -> GqlResult<BoardCardConnection> {
        if !(0..=MAX_CARDS).contains(&first) {
            return Err(
                ApiError::bad_input(format!("`first` must be between 0 and {MAX_CARDS}")).into(),
            );
        }
        let after = after.map(|c| decode_card_cursor(&c)).transpose()?;
        let r = rc(ctx)?;
        let page = boards::cards(
            r.svc(),
            &self.0,
            u64::try_from(first).unwrap_or(DEFAULT_CARDS as u64),
            after,
        )
        .await?;
        let now = Utc::now();
        let edges: Vec<BoardCardEdge> = page
            .cards
            .into_iter()
            .map(|c| BoardCardEdge {
                cursor: card_cursor(&c.item.rank, c.item.id),
                node: BoardCard { card: c, now },
            })
            .collect();
        Ok(BoardCardConnection {
            page_info: PageInfo {
                has_next_page: page.has_next,
                has_previous_page: false,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            nodes: edges.iter().map(|e| e.node.clone()).collect(),
            total_count: if self.0.cards_visible() {
                self.0.count
            } else {
                0
            },
            edges,
        })
    }
}

/// An edge of a column's cards.
#[derive(SimpleObject, Clone)]
pub struct BoardCardEdge {
    /// An opaque cursor: pass it as `after` to get the cards that follow
    /// this one.
    pub cursor: String,
    /// The card.
    pub node: BoardCard,
}

/// A column's cards, a page at a time.
#[derive(SimpleObject)]
pub struct BoardCardConnection {
    /// The page's cards, each with its cursor.
    pub edges: Vec<BoardCardEdge>,
    /// The page's cards, without cursors.
    pub nodes: Vec<BoardCard>,
    /// Whether more cards follow and the cursors of this page's ends. Pages
    /// go forward only, so `hasPreviousPage` is always false.
    pub page_info: PageInfo,
    /// Cards in the column (0 when you may not read them).
    pub total_count: i64,
}

#[derive(Clone)]
pub struct BoardCard {
    pub card: Card,
    /// The instant ages are measured at.
    pub now: DateTime<Utc>,
}

/// A card: a work item as its board shows it, with its age and its
/// children's progress. Cards appear only to viewers who may read the item.
#[Object]
impl BoardCard {
    /// The work item itself, with all its fields.
    async fn work_item(&self) -> WorkItem {
        WorkItem::new(self.card.item.clone())
    }

    /// The work item's unique key.
    async fn key(&self) -> &str {
        &self.card.item.key
    }

    /// The work item's title.
    async fn title(&self) -> &str {
        &self.card.item.title
    }

    /// The work item's type.
    #[graphql(name = "type")]
    async fn item_type(&self) -> GqlResult<WorkItemType> {
        Ok(WorkItemType::parse(&self.card.item.item_type)?)
    }

    /// The work item's Flow Framework flow type: `FEATURE`, `DEFECT`, `RISK`
    /// or `DEBT`.
    async fn flow_type(&self) -> GqlResult<FlowType> {
        Ok(FlowType::parse(&self.card.item.flow_type)?)
    }

    /// The name of the workflow state the item is in, which is the card's
    /// column.
    async fn state(&self) -> &str {
        &self.card.item.state
    }

    /// The card's place in its column, as a base-36 fraction: a column shows
    /// its cards in ascending rank order.
    async fn rank(&self) -> &str {
        &self.card.item.rank
    }

    /// The user the item is assigned to; null when nobody is.
    async fn assignee(&self, ctx: &Context<'_>) -> GqlResult<Option<User>> {
        let Some(uid) = self.card.item.assignee_id else {
            return Ok(None);
        };
        Ok(rc(ctx)?.users.load_one(uid).await?.map(User))
    }

    /// Seconds since the item entered its current state.
    async fn age_in_state(&self) -> f64 {
        seconds_since(self.card.in_state_since, self.now)
    }

    /// Seconds since the item was created.
    async fn total_age(&self) -> f64 {
        seconds_since(self.card.item.created_at, self.now)
    }

    /// Whether the item shows as blocked: flagged as blocked, or in a state
    /// named "Blocked".
    async fn blocked(&self) -> bool {
        boards::is_blocked(&self.card.item)
    }

    /// Feedback from below: how the item's children are doing.
    async fn children(&self) -> ChildSummary {
        ChildSummary {
            progress: self.card.children,
            now: self.now,
        }
    }
}

pub struct ChildSummary {
    pub progress: ChildProgress,
    pub now: DateTime<Utc>,
}

/// How a card's children are doing. The counts are aggregates: they include
/// children you may not read.
#[Object]
impl ChildSummary {
    /// Number of the item's children.
    async fn total(&self) -> i64 {
        self.progress.total
    }

    /// Children in a `DONE` state.
    async fn done(&self) -> i64 {
        self.progress.done
    }

    /// Children in an `ACTIVE` or `WAITING` state.
    async fn in_progress(&self) -> i64 {
        self.progress.in_progress
    }

    /// Children that show as blocked: flagged as blocked, or in a state
    /// named "Blocked".
    async fn blocked(&self) -> i64 {
        self.progress.blocked
    }

    /// Seconds since the creation of the oldest child not yet done or
    /// canceled; null when there is none.
    async fn oldest_age(&self) -> Option<f64> {
        self.progress
            .oldest_open_since
            .map(|t| seconds_since(t, self.now))
    }

    /// The share of children done, `done / total`, from 0 to 1; null when
    /// the item has no children.
    async fn progress(&self) -> Option<f64> {
        (self.progress.total > 0).then(|| self.progress.done as f64 / self.progress.total as f64)
    }
}

/// Where a card goes in its column: just before or just after another card
/// of the same column. Give one of the two.
#[derive(InputObject, Default)]
pub struct CardPosition {
    /// ID of the card (work item) to place just before.
    pub before: Option<ID>,
    /// ID of the card (work item) to place just after.
    pub after: Option<ID>,
}

impl CardPosition {
    pub fn parse(&self) -> ApiResult<Position> {
        match (&self.before, &self.after) {
            (Some(b), None) => Ok(Position::Before(ids::expect(
                b,
                kind::WORK_ITEM,
                "position.before",
            )?)),
            (None, Some(a)) => Ok(Position::After(ids::expect(
                a,
                kind::WORK_ITEM,
                "position.after",
            )?)),
            _ => Err(ApiError::bad_input(
                "a position names exactly one of `before` and `after`",
            )),
        }
    }
}

/// Input of `setWipLimit`: a column of a unit's board and its new WIP limit.
/// Admins, and program and portfolio managers for units in their scope, may
/// change a board.
#[derive(InputObject)]
pub struct SetWipLimitInput {
    /// The unit whose board to change.
    pub unit: ID,
    /// The column: a state of the unit's workflow.
    pub state: String,
    /// The new limit, from 0 to 100000. Null lifts the limit on this board,
    /// even if the workflow sets one.
    pub wip_limit: Option<i32>,
}

/// The result of `setWipLimit`.
#[derive(SimpleObject)]
pub struct SetWipLimitPayload {
    /// The column with its new limit, count and over-limit flag.
    pub column: BoardColumn,
}

/// Input of `setWipPolicy`: a unit's board and its new WIP policy. Who may
/// change it: as `setWipLimit`.
#[derive(InputObject)]
pub struct SetWipPolicyInput {
    /// The unit whose board to change.
    pub unit: ID,
    /// The new policy: `WARN` lets a move over a WIP limit happen and flags
    /// it; `BLOCK` refuses it with `CONFLICT`.
    pub wip_policy: WipPolicy,
}

/// The result of `setWipPolicy`.
#[derive(SimpleObject)]
pub struct SetWipPolicyPayload {
    /// The board with its new policy.
    pub board: Board,
}

/// Input of `reorderWorkItems`: cards of one column and the place they
/// take, together, in that column. You need write access to the items.
#[derive(InputObject)]
pub struct ReorderWorkItemsInput {
    /// Cards of one column, in the order they should take (at most 100).
    pub work_items: Vec<ID>,
    /// Where the cards go, together: next to a card of the same column that
    /// is not one of them.
    pub position: CardPosition,
}

/// The result of `reorderWorkItems`.
#[derive(SimpleObject)]
pub struct ReorderWorkItemsPayload {
    /// The cards, in their new order.
    pub work_items: Vec<WorkItem>,
}

#[derive(Default)]
pub struct BoardsQuery;

#[Object]
impl BoardsQuery {
    /// A unit's Kanban board: columns with counts and WIP limits for
    /// viewers who may read the unit's aggregates (`FORBIDDEN` for others),
    /// cards for those who may read its items.
    async fn board(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Global id of the unit whose board to show; an unknown unit is `NOT_FOUND`."
        )]
        unit: ID,
    ) -> GqlResult<super::boards::Board> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let id = ids::expect(&unit, kind::UNIT, "unit")?;
        Ok(super::boards::Board(
            crate::service::boards::board(r.svc(), id).await?,
        ))
    }
}

#[derive(Default)]
pub struct BoardsMutation;

#[Object]
impl BoardsMutation {
    /// Places cards of one column, in the given order, together before or
    /// after another card; only their ranks change.
    async fn reorder_work_items(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The cards, in order, and where they go.")] input: ReorderWorkItemsInput,
    ) -> GqlResult<ReorderWorkItemsPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let ids = input
            .work_items
            .iter()
            .map(|i| ids::expect(i, kind::WORK_ITEM, "workItems"))
            .collect::<Result<Vec<_>, _>>()?;
        let position = input.position.parse()?;
        let items = work_items::reorder(r.svc(), &r.services.bus, &ids, position).await?;
        Ok(ReorderWorkItemsPayload {
            work_items: items.into_iter().map(WorkItem::new).collect(),
        })
    }

    /// Sets or lifts a column's WIP limit on a unit's board (admins, and
    /// program and portfolio managers in scope).
    async fn set_wip_limit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The board's unit, the column and its new limit.")]
        input: SetWipLimitInput,
    ) -> GqlResult<SetWipLimitPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let unit = ids::expect(&input.unit, kind::UNIT, "unit")?;
        let column = boards::set_wip_limit(
            r.svc(),
            &r.services.bus,
            unit,
            &input.state,
            input.wip_limit,
        )
        .await?;
        Ok(SetWipLimitPayload {
            column: BoardColumn(column),
        })
    }

    /// Sets a board's WIP policy (who may: as `setWipLimit`).
    async fn set_wip_policy(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The board's unit and its new policy.")] input: SetWipPolicyInput,
    ) -> GqlResult<SetWipPolicyPayload> {
        let r = rc(ctx)?;
        r.policy.viewer()?;
        let unit = ids::expect(&input.unit, kind::UNIT, "unit")?;
        let board =
            boards::set_wip_policy(r.svc(), &r.services.bus, unit, input.wip_policy).await?;
        Ok(SetWipPolicyPayload {
            board: Board(board),
        })
    }
}
