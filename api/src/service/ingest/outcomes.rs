//! Outcomes through the ingest door (DESIGN §4, docs/ingest.md):
//! `objective.upserted` creates or updates an objective and its key
//! results, and a `work_item.upserted` naming `objectives` sets the
//! objectives the epic or feature serves (the source system is the truth:
//! the list replaces the item's links).

use chrono::{DateTime, Utc};
use entity::{key_result, objective, objective_work_item};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    Set,
};
use serde_json::{Map, Value};

use super::event::{Fail, list, reject, text, time};
use crate::domain::{WorkItemType, validate_item_key};
use crate::events::{ChangeKind, DomainEvent};

/// The objectives a `work_item.upserted` names, resolved; `None` when the
/// event has no `objectives` field (the links are left as they are).
pub(super) struct Objectives(Option<Vec<i64>>);

/// Resolves `data.objectives` (a list of objective keys): every key must
/// name an objective whose unit the caller may write to, and only epics and
/// features serve objectives.
pub(super) async fn objectives_of_item<F, Fut>(
    txn: &DatabaseTransaction,
    d: &Map<String, Value>,
    item_type: WorkItemType,
    check_unit: F,
) -> Result<Objectives, Fail>
where
    F: Fn(i64) -> Fut,
    Fut: Future<Output = Result<(), Fail>>,
{
    if !d.contains_key("objectives") || d.get("objectives") == Some(&Value::Null) {
        return Ok(Objectives(None));
    }
    let keys = list(d, "objectives")?;
    if !keys.is_empty() && !matches!(item_type, WorkItemType::Epic | WorkItemType::Feature) {
        return reject(format!(
            "only epics and features serve objectives, not a {}",
            item_type.as_str()
        ));
    }
    let found = objective::Entity::find()
        .filter(objective::Column::Key.is_in(keys.iter().copied()))
        .all(txn)
        .await?;
    let mut ids = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(o) = found.iter().find(|o| o.key == key) else {
            return reject(format!("unknown objective {key:?}"));
        };
        check_unit(o.unit_id).await?;
        ids.push(o.id);
    }
    Ok(Objectives(Some(ids)))
}

impl Objectives {
    /// Makes the item's links exactly the resolved objectives.
    pub(super) async fn apply(self, txn: &DatabaseTransaction, item_id: i64) -> Result<(), Fail> {
        let Some(mut ids) = self.0 else {
            return Ok(());
        };
        objective_work_item::Entity::delete_many()
            .filter(objective_work_item::Column::WorkItemId.eq(item_id))
            .exec(txn)
            .await?;
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            let now = Utc::now();
            objective_work_item::Entity::insert_many(ids.into_iter().map(|objective_id| {
                objective_work_item::ActiveModel {
                    objective_id: Set(objective_id),
                    work_item_id: Set(item_id),
                    linked_at: Set(now),
                }
            }))
            .exec_without_returning(txn)
            .await?;
        }
        Ok(())
    }
}

/// A key result as `objective.upserted` lists it.
struct KeyResultFields<'a> {
    key: &'a str,
    title: &'a str,
    start: f64,
    target: f64,
}

fn number(d: &Map<String, Value>, name: &str) -> Result<f64, Fail> {
    match d.get(name) {
        Some(Value::Number(n)) => match n.as_f64().filter(|v| v.is_finite()) {
            Some(v) => Ok(v),
            None => reject(format!("`{name}` must be a finite number")),
        },
        _ => reject(format!("`{name}` is required and must be a number")),
    }
}

fn key_results(d: &Map<String, Value>) -> Result<Vec<KeyResultFields<'_>>, Fail> {
    let list = match d.get("key_results") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        _ => return reject("`data.key_results` must be a list of objects"),
    };
    let mut out = Vec::with_capacity(list.len());
    for kr in list {
        let Value::Object(kr) = kr else {
            return reject("`data.key_results` must be a list of objects");
        };
        let key = text(kr, "key")?;
        validate_item_key(key).map_err(|e| Fail::Reject(e.message()))?;
        let start = number(kr, "start_value")?;
        let target = number(kr, "target_value")?;
        if start == target {
            return reject(format!(
                "key result {key:?}: `target_value` must differ from `start_value`"
            ));
        }
        out.push(KeyResultFields {
            key,
            title: text(kr, "title")?,
            start,
            target,
        });
    }
    Ok(out)
}

/// The checked fields of an `objective.upserted` event.
pub(super) struct ObjectiveFields<'a> {
    pub key: &'a str,
    pub unit: &'a str,
    title: &'a str,
    period_start: DateTime<Utc>,
    period_end: DateTime<Utc>,
    key_results: Vec<KeyResultFields<'a>>,
    /// The epics and features the objective is served by (external ids of
    /// the event's source, or keys); `None` leaves the links as they are.
    pub work_items: Option<Vec<&'a str>>,
}

impl<'a> ObjectiveFields<'a> {
    pub(super) fn parse(d: &'a Map<String, Value>) -> Result<Self, Fail> {
        let key = text(d, "key")?;
        validate_item_key(key).map_err(|e| Fail::Reject(e.message()))?;
        let period_start = time(d, "period_start")?;
        let period_end = time(d, "period_end")?;
        if period_end <= period_start {
            return reject("`data.period_end` must be after `data.period_start`");
        }
        Ok(Self {
            key,
            unit: text(d, "unit")?,
            title: text(d, "title")?,
            period_start,
            period_end,
            key_results: key_results(d)?,
            work_items: match d.get("work_items") {
                None | Some(Value::Null) => None,
                Some(_) => Some(list(d, "work_items")?),
            },
        })
    }

    /// Writes the objective (found by key) and its key results (found by
    /// key; those the event does not list are kept). `unit_id` is the
    /// writable unit named by `unit`; an existing objective moves there only
    /// if the caller may write to its old unit too (`check_unit`). `links`,
    /// the resolved `work_items`, replace the objective's links.
    pub(super) async fn apply<F, Fut>(
        self,
        txn: &DatabaseTransaction,
        unit_id: i64,
        links: Option<Vec<i64>>,
        check_unit: F,
    ) -> Result<Vec<DomainEvent>, Fail>
    where
        F: Fn(i64) -> Fut,
        Fut: Future<Output = Result<(), Fail>>,
    {
        let existing = objective::Entity::find()
            .filter(objective::Column::Key.eq(self.key))
            .one(txn)
            .await?;
        let o = match existing {
            Some(o) => {
                check_unit(o.unit_id).await?;
                let mut m = o.into_active_model();
                m.unit_id = Set(unit_id);
                m.title = Set(self.title.to_owned());
                m.period_start = Set(self.period_start);
                m.period_end = Set(self.period_end);
                m.update(txn).await?
            }
            None => {
                objective::ActiveModel {
                    unit_id: Set(unit_id),
                    key: Set(self.key.to_owned()),
                    title: Set(self.title.to_owned()),
                    period_start: Set(self.period_start),
                    period_end: Set(self.period_end),
                    created_at: Set(Utc::now()),
                    ..Default::default()
                }
                .insert(txn)
                .await?
            }
        };
        for kr in self.key_results {
            let existing = key_result::Entity::find()
                .filter(key_result::Column::Key.eq(kr.key))
                .one(txn)
                .await?;
            match existing {
                Some(e) if e.objective_id != o.id => {
                    return reject(format!(
                        "key result {:?} belongs to another objective",
                        kr.key
                    ));
                }
                Some(e) => {
                    let mut m = e.into_active_model();
                    m.title = Set(kr.title.to_owned());
                    m.start_value = Set(kr.start);
                    m.target_value = Set(kr.target);
                    m.update(txn).await?;
                }
                None => {
                    key_result::ActiveModel {
                        objective_id: Set(o.id),
                        key: Set(kr.key.to_owned()),
                        title: Set(kr.title.to_owned()),
                        start_value: Set(kr.start),
                        target_value: Set(kr.target),
                        ..Default::default()
                    }
                    .insert(txn)
                    .await?;
                }
            }
        }
        if let Some(mut ids) = links {
            objective_work_item::Entity::delete_many()
                .filter(objective_work_item::Column::ObjectiveId.eq(o.id))
                .exec(txn)
                .await?;
            ids.sort_unstable();
            ids.dedup();
            if !ids.is_empty() {
                let now = Utc::now();
                objective_work_item::Entity::insert_many(ids.into_iter().map(|work_item_id| {
                    objective_work_item::ActiveModel {
                        objective_id: Set(o.id),
                        work_item_id: Set(work_item_id),
                        linked_at: Set(now),
                    }
                }))
                .exec_without_returning(txn)
                .await?;
            }
        }
        Ok(vec![DomainEvent::new(
            ChangeKind::ObjectiveUpserted,
            o.unit_id,
            o.id,
        )])
    }
}
