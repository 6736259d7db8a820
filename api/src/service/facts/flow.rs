//! Per-item flow facts (`flow_completion`, `flow_wip`, `flow_state`), derived from each
//! item's whole transition history and rewritten in the same transaction
//! whenever the item or its history changes, so that a late or out-of-order
//! transition corrects them. Flow metrics aggregate these rows instead of
//! replaying histories (DESIGN §7).
//!
//! The derivation follows [`crate::service::metrics::history`]: completion is an entry into a
//! `DONE` state that is the item's last transition at the window's end,
//! start is the first entry into `ACTIVE` or `WAITING`, active time counts
//! every visit between the two. Instants are truncated to milliseconds and
//! durations are differences of those.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{flow_completion, flow_state, flow_wip, transition, unit, unit_closure, work_item};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Value,
};

use crate::domain::UnitKind;
use crate::events::{ChangeKind, DomainEvent};
use crate::service::pg::{NULL_BIGINT, bigints, opt_bigints, statement, texts};
use crate::service::sql::{execute_overlapped, sqlite_rows};

/// The open end of a stretch: 9999-12-31T23:59:59.999Z.
pub const OPEN: i64 = 253_402_300_799_999;

/// Items whose facts are rewritten per round of statements.
const CHUNK: usize = 2000;

/// Rows per multi-row insert (12 values each).
const INSERT_ROWS: usize = 1000;

/// Epoch milliseconds of `t`.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// One entry into a `DONE` state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub start_ms: Option<i64>,
    pub completed_ms: i64,
    pub left_ms: i64,
    pub active_ms: i64,
}

/// One stretch in `ACTIVE` or `WAITING` states, `[from_ms, to_ms)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stretch {
    pub start_ms: i64,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// One visit to a state, `[from_ms, to_ms)`; `to_ms` is [`OPEN`] for the
/// state the item is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visit {
    pub state: String,
    pub category: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// One transition of a history: epoch ms, the state entered and its
/// category.
pub type Step<'a> = (i64, &'a str, &'a str);

/// The visits of a history in order: each transition starts one that ends
/// at the next.
pub fn visits(steps: &[Step<'_>]) -> Vec<Visit> {
    steps
        .iter()
        .enumerate()
        .map(|(i, &(at, state, category))| Visit {
            state: state.to_owned(),
            category: category.to_owned(),
            from_ms: at,
            to_ms: steps.get(i + 1).map_or(OPEN, |s| s.0),
        })
        .collect()
}

fn is_wip(category: &str) -> bool {
    category == "ACTIVE" || category == "WAITING"
}

/// The completions and in-progress stretches of a history in order (by
/// time, then by arrival).
pub fn derive(steps: &[Step<'_>]) -> (Vec<Completion>, Vec<Stretch>) {
    let mut completions = Vec::new();
    let mut stretches = Vec::new();
    let mut start: Option<i64> = None;
    let mut active = 0i64;
    let mut open: Option<i64> = None;
    for (i, &(at, _, category)) in steps.iter().enumerate() {
        let next = steps.get(i + 1).map_or(OPEN, |s| s.0);
        if is_wip(category) {
            start.get_or_insert(at);
            open.get_or_insert(at);
        } else if let Some(from) = open.take()
            && at > from
        {
            stretches.push(Stretch {
                start_ms: start.unwrap_or(from),
                from_ms: from,
                to_ms: at,
            });
        }
        if category == "DONE" && next > at {
            completions.push(Completion {
                start_ms: start,
                completed_ms: at,
                left_ms: next,
                active_ms: active,
            });
        }
        if category == "ACTIVE" && next != OPEN {
            active += next - at;
        }
    }
    if let Some(from) = open {
        stretches.push(Stretch {
            start_ms: start.unwrap_or(from),
            from_ms: from,
            to_ms: OPEN,
        });
    }
    (completions, stretches)
}

/// Where an item sits in the tree, for subtree filters by equality.
#[derive(Clone, Debug, Default)]
pub struct Line {
    pub level: String,
    pub portfolio_id: Option<i64>,
    pub program_id: Option<i64>,
    pub team_id: Option<i64>,
}

/// Lines of `unit_ids`.
async fn lines(db: &impl ConnectionTrait, unit_ids: &[i64]) -> Result<HashMap<i64, Line>, DbErr> {
    let mut out = HashMap::new();
    for ids in unit_ids.chunks(CHUNK) {
        let rows: Vec<(i64, i64, String)> = unit_closure::Entity::find()
            .select_only()
            .column(unit_closure::Column::DescendantId)
            .column(unit_closure::Column::AncestorId)
            .column(unit::Column::Kind)
            .join(
                sea_orm::JoinType::InnerJoin,
                unit_closure::Entity::belongs_to(unit::Entity)
                    .from(unit_closure::Column::AncestorId)
                    .to(unit::Column::Id)
                    .into(),
            )
            .filter(unit_closure::Column::DescendantId.is_in(ids.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        for (descendant, ancestor, kind) in rows {
            let line: &mut Line = out.entry(descendant).or_default();
            if ancestor == descendant {
                line.level.clone_from(&kind);
            }
            match UnitKind::parse(&kind).ok() {
                Some(UnitKind::Portfolio) => line.portfolio_id = Some(ancestor),
                Some(UnitKind::Program) => line.program_id = Some(ancestor),
                Some(UnitKind::Team) => line.team_id = Some(ancestor),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The history of an item created in the running batch, as the batch wrote
/// it: the item's columns the facts carry and its transitions in the order
/// they were inserted (by time, then by arrival, as they read back).
#[derive(Clone, Debug)]
pub struct Known {
    pub unit_id: i64,
    pub item_type: String,
    pub flow_type: String,
    pub created_at: DateTime<Utc>,
    /// `(at, to_state, to_category)` of each transition.
    pub steps: Vec<(DateTime<Utc>, String, String)>,
}

/// Rewrites the facts of the work items touched by `events` (created,
/// updated or moved), and the delivery facts of the deployments, changes
/// and incidents they wrote ([`super::delivery::refresh_touched`]).
///
/// # Errors
/// Database errors only.
pub async fn refresh_touched(
    db: &impl ConnectionTrait,
    events: &[DomainEvent],
) -> Result<(), DbErr> {
    refresh_touched_known(db, events, &HashMap::new()).await
}

/// [`refresh_touched`], deriving the facts of the items that `known` holds
/// and `events` created from those histories instead of reading them back.
/// The caller vouches that each is the item's whole history: it created the
/// item and wrote every transition since, nothing else wrote to it.
///
/// # Errors
/// Database errors only.
pub async fn refresh_touched_known(
    db: &impl ConnectionTrait,
    events: &[DomainEvent],
    known: &HashMap<i64, Known>,
) -> Result<(), DbErr> {
    let mut ids: Vec<i64> = Vec::new();
    let mut created: Vec<i64> = Vec::new();
    for e in events {
        match e.kind {
            ChangeKind::WorkItemCreated => created.push(e.entity_id),
            ChangeKind::WorkItemUpdated | ChangeKind::WorkItemMoved => ids.push(e.entity_id),
            _ => {}
        }
    }
    ids.extend(&created);
    ids.sort_unstable();
    ids.dedup();
    created.sort_unstable();
    let is_created = |id: &i64| created.binary_search(id).is_ok();
    for chunk in ids.chunks(CHUNK) {
        // Items created by these events have no facts to delete.
        let old: Vec<i64> = chunk.iter().copied().filter(|id| !is_created(id)).collect();
        let mine: HashMap<i64, &Known> = chunk
            .iter()
            .filter(|id| is_created(id))
            .filter_map(|id| known.get(id).map(|k| (*id, k)))
            .collect();
        refresh_chunk(db, chunk, &old, &mine).await?;
    }
    super::delivery::refresh_touched(db, events).await
}

/// Rewrites the facts of `item_ids` from their current rows and histories.
///
/// # Errors
/// Database errors only.
pub async fn refresh(db: &impl ConnectionTrait, item_ids: &[i64]) -> Result<(), DbErr> {
    for ids in item_ids.chunks(CHUNK) {
        refresh_chunk(db, ids, ids, &HashMap::new()).await?;
    }
    Ok(())
}

/// Rewrites the facts of `ids`, deleting the existing ones of `old` first;
/// those of the items in `known` come from there, the others from their
/// rows and histories read back.
async fn refresh_chunk(
    db: &impl ConnectionTrait,
    ids: &[i64],
    old: &[i64],
    known: &HashMap<i64, &Known>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    if !old.is_empty() {
        flow_completion::Entity::delete_many()
            .filter(flow_completion::Column::WorkItemId.is_in(old.iter().copied()))
            .exec(db)
            .await?;
        flow_wip::Entity::delete_many()
            .filter(flow_wip::Column::WorkItemId.is_in(old.iter().copied()))
            .exec(db)
            .await?;
        flow_state::Entity::delete_many()
            .filter(flow_state::Column::WorkItemId.is_in(old.iter().copied()))
            .exec(db)
            .await?;
    }
    let unknown: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !known.contains_key(id))
        .collect();
    let (items, steps) = if unknown.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        read_back(db, &unknown).await?
    };
    let mut unit_ids: Vec<i64> = items
        .iter()
        .map(|i| i.1)
        .chain(known.values().map(|k| k.unit_id))
        .collect();
    unit_ids.sort_unstable();
    unit_ids.dedup();
    let lines = lines(db, &unit_ids).await?;
    let mut rows = Rows::default();
    // In id order, as read back: the known items merged into the others.
    let mut order = ids.to_vec();
    order.sort_unstable();
    order.dedup();
    let mut read = items.iter().peekable();
    let mut rest = steps.as_slice();
    for id in &order {
        if let Some(k) = known.get(id) {
            let history: Vec<Step<'_>> = k
                .steps
                .iter()
                .map(|(at, state, category)| (ms(*at), state.as_str(), category.as_str()))
                .collect();
            let item = Item {
                id: *id,
                unit_id: k.unit_id,
                item_type: &k.item_type,
                flow_type: &k.flow_type,
                created_ms: ms(k.created_at),
            };
            let line = lines.get(&k.unit_id).cloned().unwrap_or_default();
            rows.push(&item, &line, &history);
            continue;
        }
        let Some((_, unit_id, item_type, flow_type, created_at)) = read.next_if(|i| i.0 == *id)
        else {
            // Gone (deleted meanwhile): no facts.
            continue;
        };
        while rest.first().is_some_and(|s| s.0 < *id) {
            rest = &rest[1..];
        }
        let n = rest.iter().take_while(|s| s.0 == *id).count();
        let (mine, tail) = rest.split_at(n);
        rest = tail;
        let history: Vec<Step<'_>> = mine
            .iter()
            .map(|s| (ms(s.1), s.2.as_str(), s.3.as_str()))
            .collect();
        let item = Item {
            id: *id,
            unit_id: *unit_id,
            item_type,
            flow_type,
            created_ms: ms(*created_at),
        };
        let line = lines.get(unit_id).cloned().unwrap_or_default();
        rows.push(&item, &line, &history);
    }
    rows.write(db).await?;
    mark_changed(db, ids).await
}

/// Records in `flow_change`, on PostgreSQL, that the running transaction
/// rewrote the facts of `ids`: replicas holding the facts in memory find
/// them there when the notification of the change did not reach them
/// ([`crate::service::analytics`]). In id order, so that two transactions
/// over the same items lock the rows in the same order.
pub(crate) async fn mark_changed(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    if ids.is_empty() || db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let sql = r#"INSERT INTO "flow_change" ("work_item_id", "xid")
SELECT DISTINCT id, pg_current_xact_id()::text::bigint FROM UNNEST($1::bigint[]) AS x(id)
ORDER BY id
ON CONFLICT ("work_item_id") DO UPDATE SET "xid" = EXCLUDED."xid""#;
    db.execute_raw(statement(sql, vec![bigints(ids.iter().copied())]))
        .await?;
    Ok(())
}

/// An item's columns the facts carry: id, unit, type, flow type, creation.
type ItemRow = (i64, i64, String, String, DateTime<Utc>);
/// A transition: item, instant, state entered and its category.
type StepRow = (i64, DateTime<Utc>, String, String);

/// The rows of `ids` (in id order) and their transitions (by item, time,
/// then arrival).
async fn read_back(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<(Vec<ItemRow>, Vec<StepRow>), DbErr> {
    let items: Vec<ItemRow> = work_item::Entity::find()
        .select_only()
        .column(work_item::Column::Id)
        .column(work_item::Column::UnitId)
        .column(work_item::Column::ItemType)
        .column(work_item::Column::FlowType)
        .column(work_item::Column::CreatedAt)
        .filter(work_item::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(work_item::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let steps: Vec<StepRow> = transition::Entity::find()
        .select_only()
        .column(transition::Column::WorkItemId)
        .column(transition::Column::At)
        .column(transition::Column::ToState)
        .column(transition::Column::ToCategory)
        .filter(transition::Column::WorkItemId.is_in(ids.iter().copied()))
        .order_by_asc(transition::Column::WorkItemId)
        .order_by_asc(transition::Column::At)
        .order_by_asc(transition::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    Ok((items, steps))
}

/// The item-level columns of the facts.
pub struct Item<'a> {
    pub id: i64,
    pub unit_id: i64,
    pub item_type: &'a str,
    pub flow_type: &'a str,
    pub created_ms: i64,
}

/// The columns every fact row carries about its item.
#[derive(Clone, Debug)]
struct Owner {
    item_id: i64,
    unit_id: i64,
    line: Line,
    item_type: String,
    flow_type: String,
}

/// Fact rows waiting to be inserted.
#[derive(Default)]
pub struct Rows {
    completions: Vec<(Owner, i64, Completion)>,
    wips: Vec<(Owner, Stretch)>,
    visits: Vec<(Owner, Visit)>,
}

impl Rows {
    /// Adds the facts of `item` with the history `steps` in order.
    pub fn push(&mut self, item: &Item<'_>, line: &Line, steps: &[Step<'_>]) {
        if steps.is_empty() {
            return;
        }
        let (completions, stretches) = derive(steps);
        let owner = Owner {
            item_id: item.id,
            unit_id: item.unit_id,
            line: line.clone(),
            item_type: item.item_type.to_owned(),
            flow_type: item.flow_type.to_owned(),
        };
        for c in completions {
            self.completions.push((owner.clone(), item.created_ms, c));
        }
        for s in stretches {
            self.wips.push((owner.clone(), s));
        }
        for v in visits(steps) {
            self.visits.push((owner.clone(), v));
        }
    }

    /// Rows waiting.
    pub fn len(&self) -> usize {
        self.completions.len() + self.wips.len() + self.visits.len()
    }

    /// Whether no row waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts the waiting rows and empties the buffer.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn write(&mut self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let completions = std::mem::take(&mut self.completions);
        let wips = std::mem::take(&mut self.wips);
        let visits = std::mem::take(&mut self.visits);
        if db.get_database_backend() == DbBackend::Postgres {
            for chunk in completions.chunks(UNNEST_ROWS) {
                db.execute_raw(completion_unnest(chunk)).await?;
            }
            for chunk in wips.chunks(UNNEST_ROWS) {
                db.execute_raw(wip_unnest(chunk)).await?;
            }
            for chunk in visits.chunks(UNNEST_ROWS) {
                db.execute_raw(visit_unnest(chunk)).await?;
            }
            return Ok(());
        }
        let completions = completions.chunks(INSERT_ROWS).map(|chunk| {
            let mut values = Vec::with_capacity(chunk.len() * 13);
            for (o, created_ms, c) in chunk {
                owner_values(&mut values, o);
                values.extend([
                    Value::BigInt(Some(*created_ms)),
                    Value::BigInt(c.start_ms),
                    Value::BigInt(Some(c.completed_ms)),
                    Value::BigInt(Some(c.left_ms)),
                    Value::BigInt(Some(c.active_ms)),
                ]);
            }
            sqlite_rows(&completion_head(), 13, values, "")
        });
        let wips = wips.chunks(INSERT_ROWS).map(|chunk| {
            let mut values = Vec::with_capacity(chunk.len() * 11);
            for (o, st) in chunk {
                owner_values(&mut values, o);
                values.extend([
                    Value::BigInt(Some(st.start_ms)),
                    Value::BigInt(Some(st.from_ms)),
                    Value::BigInt(Some(st.to_ms)),
                ]);
            }
            sqlite_rows(&wip_head(), 11, values, "")
        });
        let visits = visits.chunks(INSERT_ROWS).map(|chunk| {
            let mut values = Vec::with_capacity(chunk.len() * 12);
            for (o, v) in chunk {
                owner_values(&mut values, o);
                values.extend([
                    Value::String(Some(v.state.clone())),
                    Value::String(Some(v.category.clone())),
                    Value::BigInt(Some(v.from_ms)),
                    Value::BigInt(Some(v.to_ms)),
                ]);
            }
            sqlite_rows(&visit_head(), 12, values, "")
        });
        let mut statements = completions.chain(wips).chain(visits);
        execute_overlapped(db, || statements.next()).await
    }
}

/// Rows per `UNNEST` insert on PostgreSQL.
const UNNEST_ROWS: usize = 20_000;

/// The owner columns, `$1` to `$8`.
fn owner_arrays<'a>(owners: impl Iterator<Item = &'a Owner> + Clone) -> Vec<sea_orm::Value> {
    vec![
        bigints(owners.clone().map(|o| o.item_id)),
        bigints(owners.clone().map(|o| o.unit_id)),
        bigints(owners.clone().map(|o| o.line.portfolio_id.unwrap_or(0))),
        bigints(owners.clone().map(|o| o.line.program_id.unwrap_or(0))),
        bigints(owners.clone().map(|o| o.line.team_id.unwrap_or(0))),
        texts(owners.clone().map(|o| o.line.level.as_str())),
        texts(owners.clone().map(|o| o.item_type.as_str())),
        texts(owners.map(|o| o.flow_type.as_str())),
    ]
}

const OWNER_COLUMNS: &str = r#""work_item_id", "unit_id", "portfolio_id", "program_id", "team_id", "level", "item_type", "flow_type""#;
const OWNER_SELECT: &str = "w, u, NULLIF(po, 0), NULLIF(pr, 0), NULLIF(te, 0), lv, it, ft";
const OWNER_ARRAYS: &str = "$1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[]";
const OWNER_NAMES: &str = "w, u, po, pr, te, lv, it, ft";

/// The owner columns of a SQLite row, in [`OWNER_COLUMNS`]' order.
fn owner_values(values: &mut Vec<Value>, o: &Owner) {
    values.extend([
        Value::BigInt(Some(o.item_id)),
        Value::BigInt(Some(o.unit_id)),
        Value::BigInt(o.line.portfolio_id),
        Value::BigInt(o.line.program_id),
        Value::BigInt(o.line.team_id),
        Value::String(Some(o.line.level.clone())),
        Value::String(Some(o.item_type.clone())),
        Value::String(Some(o.flow_type.clone())),
    ]);
}

fn completion_head() -> String {
    format!(
        r#"INSERT INTO "flow_completion" ({OWNER_COLUMNS}, "created_ms", "start_ms", "completed_ms", "left_ms", "active_ms")"#
    )
}

fn wip_head() -> String {
    format!(r#"INSERT INTO "flow_wip" ({OWNER_COLUMNS}, "start_ms", "from_ms", "to_ms")"#)
}

fn visit_head() -> String {
    format!(
        r#"INSERT INTO "flow_state" ({OWNER_COLUMNS}, "state", "category", "from_ms", "to_ms")"#
    )
}

fn completion_unnest(rows: &[(Owner, i64, Completion)]) -> sea_orm::Statement {
    let sql = format!(
        r#"{}
SELECT {OWNER_SELECT}, cr, NULLIF(st, {NULL_BIGINT}), co, le, ac
FROM UNNEST({OWNER_ARRAYS}, $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[])
AS x({OWNER_NAMES}, cr, st, co, le, ac)"#,
        completion_head()
    );
    let mut values = owner_arrays(rows.iter().map(|r| &r.0));
    values.extend([
        bigints(rows.iter().map(|r| r.1)),
        opt_bigints(rows.iter().map(|r| r.2.start_ms)),
        bigints(rows.iter().map(|r| r.2.completed_ms)),
        bigints(rows.iter().map(|r| r.2.left_ms)),
        bigints(rows.iter().map(|r| r.2.active_ms)),
    ]);
    statement(&sql, values)
}

fn wip_unnest(rows: &[(Owner, Stretch)]) -> sea_orm::Statement {
    let sql = format!(
        r#"{}
SELECT {OWNER_SELECT}, st, fr, t
FROM UNNEST({OWNER_ARRAYS}, $9::bigint[], $10::bigint[], $11::bigint[])
AS x({OWNER_NAMES}, st, fr, t)"#,
        wip_head()
    );
    let mut values = owner_arrays(rows.iter().map(|r| &r.0));
    values.extend([
        bigints(rows.iter().map(|r| r.1.start_ms)),
        bigints(rows.iter().map(|r| r.1.from_ms)),
        bigints(rows.iter().map(|r| r.1.to_ms)),
    ]);
    statement(&sql, values)
}

fn visit_unnest(rows: &[(Owner, Visit)]) -> sea_orm::Statement {
    let sql = format!(
        r#"{}
SELECT {OWNER_SELECT}, s, c, fr, t
FROM UNNEST({OWNER_ARRAYS}, $9::text[], $10::text[], $11::bigint[], $12::bigint[])
AS x({OWNER_NAMES}, s, c, fr, t)"#,
        visit_head()
    );
    let mut values = owner_arrays(rows.iter().map(|r| &r.0));
    values.extend([
        texts(rows.iter().map(|r| r.1.state.as_str())),
        texts(rows.iter().map(|r| r.1.category.as_str())),
        bigints(rows.iter().map(|r| r.1.from_ms)),
        bigints(rows.iter().map(|r| r.1.to_ms)),
    ]);
    statement(&sql, values)
}

/// Rebuilds every item's facts, a chunk of items at a time (after the
/// migration that introduced them, or to repair them).
///
/// # Errors
/// Database errors only.
pub async fn rebuild_all(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let mut after = 0i64;
    let mut done = 0u64;
    loop {
        let ids: Vec<i64> = work_item::Entity::find()
            .select_only()
            .column(work_item::Column::Id)
            .filter(work_item::Column::Id.gt(after))
            .order_by_asc(work_item::Column::Id)
            .limit(CHUNK as u64)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = ids.last() else { break };
        after = *last;
        refresh_chunk(db, &ids, &ids, &HashMap::new()).await?;
        done += ids.len() as u64;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    /// A history whose states are named after their categories.
    fn named(steps: &[(i64, &'static str)]) -> Vec<Step<'static>> {
        steps.iter().map(|&(at, c)| (at, c, c)).collect()
    }

    #[test]
    fn reopened_re_entered_and_canceled() {
        // New at 0, active 0–24, waiting to 48, active to 72, done at 72,
        // reopened (active) at 96, done again at 108.
        let h = named(&[
            (0, "NEW"),
            (0, "ACTIVE"),
            (24 * H, "WAITING"),
            (48 * H, "ACTIVE"),
            (72 * H, "DONE"),
            (96 * H, "ACTIVE"),
            (108 * H, "DONE"),
        ]);
        let (c, w) = derive(&h);
        assert_eq!(
            c,
            vec![
                Completion {
                    start_ms: Some(0),
                    completed_ms: 72 * H,
                    left_ms: 96 * H,
                    active_ms: 48 * H,
                },
                Completion {
                    start_ms: Some(0),
                    completed_ms: 108 * H,
                    left_ms: OPEN,
                    active_ms: 60 * H,
                },
            ]
        );
        assert_eq!(
            w,
            vec![
                Stretch {
                    start_ms: 0,
                    from_ms: 0,
                    to_ms: 72 * H,
                },
                Stretch {
                    start_ms: 0,
                    from_ms: 96 * H,
                    to_ms: 108 * H,
                },
            ]
        );
        // Canceled after work: no completion, one closed stretch.
        let (c, w) = derive(&named(&[(0, "NEW"), (H, "ACTIVE"), (3 * H, "CANCELED")]));
        assert!(c.is_empty());
        assert_eq!(w.len(), 1);
        // Still in progress: an open stretch.
        let (_, w) = derive(&named(&[(0, "NEW"), (H, "WAITING")]));
        assert_eq!(w[0].to_ms, OPEN);
        // Done and moved on at the same instant never counts as completed.
        let (c, _) = derive(&named(&[(0, "ACTIVE"), (H, "DONE"), (H, "ACTIVE")]));
        assert!(c.is_empty());
    }

    #[test]
    fn visits_end_at_the_next_transition() {
        let v = visits(&[
            (0, "Backlog", "NEW"),
            (0, "In Progress", "ACTIVE"),
            (5 * H, "Blocked", "WAITING"),
            (7 * H, "In Progress", "ACTIVE"),
        ]);
        let spans: Vec<(&str, i64, i64)> = v
            .iter()
            .map(|v| (v.state.as_str(), v.from_ms, v.to_ms))
            .collect();
        assert_eq!(
            spans,
            vec![
                ("Backlog", 0, 0),
                ("In Progress", 0, 5 * H),
                ("Blocked", 5 * H, 7 * H),
                ("In Progress", 7 * H, OPEN),
            ]
        );
        assert_eq!(v[2].category, "WAITING");
    }
}
