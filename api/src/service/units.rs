//! The organisation tree. Its structure (keys, names, kinds, parents) is
//! readable by every authenticated caller (DESIGN §2); creating units is not.

use chrono::Utc;
use entity::{unit, unit_closure, workflow, workflow_state};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationDef, Set, TransactionSession, TransactionTrait,
};

use super::Ctx;
use crate::domain::{UnitKind, validate_unit_key};
use crate::error::{ApiError, ApiResult};
use crate::policy::UnitPath;

/// # Errors
/// `UNAUTHENTICATED` for anonymous callers; database errors.
pub async fn find_by_key(ctx: Ctx<'_>, key: &str) -> ApiResult<Option<unit::Model>> {
    ctx.policy.viewer()?;
    if let Some(tree) = ctx.units.tree(ctx.db).await?
        && let Some(u) = tree.unit_by_key(key)
    {
        return Ok(Some(u.clone()));
    }
    Ok(unit::Entity::find()
        .filter(unit::Column::Key.eq(key))
        .one(ctx.db)
        .await?)
}

/// # Errors
/// `UNAUTHENTICATED` for anonymous callers; database errors.
pub async fn find(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<unit::Model>> {
    ctx.policy.viewer()?;
    if let Some(tree) = ctx.units.tree(ctx.db).await?
        && let Some(u) = tree.unit(id)
    {
        return Ok(Some(u.clone()));
    }
    Ok(unit::Entity::find_by_id(id).one(ctx.db).await?)
}

/// Units by id, for the DataLoader; unknown ids are left out.
///
/// The tree is readable by every authenticated caller, and the loader is
/// only reached from objects that a root field (or `login`, for the fresh
/// viewer's memberships) already authorised, so the policy is not asked.
///
/// # Errors
/// Database errors only.
pub async fn find_many_unchecked(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> ApiResult<Vec<unit::Model>> {
    Ok(unit::Entity::find()
        .filter(unit::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// The organisation (root) unit.
///
/// # Errors
/// `INTERNAL` if the database was never bootstrapped.
pub async fn organisation(db: &impl ConnectionTrait) -> ApiResult<unit::Model> {
    unit::Entity::find()
        .filter(unit::Column::Kind.eq(UnitKind::Organization.as_str()))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no organisation unit")))
}

/// A unit's place in the tree, as the policy needs it.
///
/// # Errors
/// `NOT_FOUND` for an unknown unit.
pub async fn path(db: &impl ConnectionTrait, id: i64) -> ApiResult<UnitPath> {
    let unit = unit::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("unit"))?;
    path_of(db, &unit).await
}

/// # Errors
/// Database errors only.
pub async fn path_of(db: &impl ConnectionTrait, unit: &unit::Model) -> ApiResult<UnitPath> {
    let rows = unit_closure::Entity::find()
        .filter(unit_closure::Column::DescendantId.eq(unit.id))
        .filter(unit_closure::Column::Depth.gt(0))
        .order_by_desc(unit_closure::Column::Depth)
        .all(db)
        .await?;
    Ok(UnitPath {
        id: unit.id,
        kind: UnitKind::parse(&unit.kind)?,
        ancestors: rows.into_iter().map(|r| r.ancestor_id).collect(),
    })
}

/// [`path_of`] for several units, in one statement; in the order given.
///
/// # Errors
/// Database errors only.
pub async fn paths_of(
    db: &impl ConnectionTrait,
    units: &[unit::Model],
) -> ApiResult<Vec<UnitPath>> {
    let rows = unit_closure::Entity::find()
        .filter(unit_closure::Column::DescendantId.is_in(units.iter().map(|u| u.id)))
        .filter(unit_closure::Column::Depth.gt(0))
        .order_by_desc(unit_closure::Column::Depth)
        .all(db)
        .await?;
    let mut ancestors: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for r in rows {
        ancestors
            .entry(r.descendant_id)
            .or_default()
            .push(r.ancestor_id);
    }
    units
        .iter()
        .map(|u| {
            Ok(UnitPath {
                id: u.id,
                kind: UnitKind::parse(&u.kind)?,
                ancestors: ancestors.remove(&u.id).unwrap_or_default(),
            })
        })
        .collect()
}

fn closure_to_unit(descendant_side: bool) -> RelationDef {
    let col = if descendant_side {
        unit_closure::Column::DescendantId
    } else {
        unit_closure::Column::AncestorId
    };
    unit::Entity::belongs_to(unit_closure::Entity)
        .from(unit::Column::Id)
        .to(col)
        .into()
}

/// Strict ancestors of a unit, the organisation first.
///
/// # Errors
/// Database errors only.
pub async fn ancestors(ctx: Ctx<'_>, id: i64) -> ApiResult<Vec<unit::Model>> {
    ctx.policy.viewer()?;
    Ok(unit::Entity::find()
        .join(JoinType::InnerJoin, closure_to_unit(false))
        .filter(unit_closure::Column::DescendantId.eq(id))
        .filter(unit_closure::Column::Depth.gt(0))
        .order_by_desc(unit_closure::Column::Depth)
        .all(ctx.db)
        .await?)
}

/// Direct children of a unit, by key.
///
/// # Errors
/// Database errors only.
pub async fn children(ctx: Ctx<'_>, id: i64) -> ApiResult<Vec<unit::Model>> {
    ctx.policy.viewer()?;
    Ok(unit::Entity::find()
        .filter(unit::Column::ParentId.eq(id))
        .order_by_asc(unit::Column::Key)
        .all(ctx.db)
        .await?)
}

/// Every unit below `id` (not `id` itself), by depth then key.
///
/// # Errors
/// Database errors only.
pub async fn descendants(ctx: Ctx<'_>, id: i64) -> ApiResult<Vec<unit::Model>> {
    ctx.policy.viewer()?;
    Ok(unit::Entity::find()
        .join(JoinType::InnerJoin, closure_to_unit(true))
        .filter(unit_closure::Column::AncestorId.eq(id))
        .filter(unit_closure::Column::Depth.gt(0))
        .order_by_asc(unit::Column::Depth)
        .order_by_asc(unit::Column::Key)
        .all(ctx.db)
        .await?)
}

/// The workflow a unit uses: its own, or its nearest ancestor's.
#[derive(Clone, Debug)]
pub struct EffectiveWorkflow {
    pub workflow: workflow::Model,
    /// States in board order.
    pub states: Vec<workflow_state::Model>,
}

impl EffectiveWorkflow {
    pub fn state(&self, name: &str) -> Option<&workflow_state::Model> {
        self.states.iter().find(|s| s.name == name)
    }

    /// The state an item starts in: the first `NEW` state.
    pub fn initial_state(&self) -> Option<&workflow_state::Model> {
        self.states
            .iter()
            .find(|s| s.category == crate::domain::StateCategory::New.as_str())
            .or_else(|| self.states.first())
    }

    /// `BAD_USER_INPUT` naming the known states, for an unknown one.
    pub fn unknown_state(&self, name: &str) -> ApiError {
        let known: Vec<&str> = self.states.iter().map(|s| s.name.as_str()).collect();
        ApiError::bad_input(format!(
            "unknown state {name:?}: the workflow's states are {}",
            known.join(", ")
        ))
    }
}

/// Effective workflows of several units at once (for the DataLoader).
///
/// # Errors
/// Database errors only.
pub async fn effective_workflows(
    db: &impl ConnectionTrait,
    unit_ids: &[i64],
) -> ApiResult<Vec<(i64, EffectiveWorkflow)>> {
    // For each unit, the workflows of itself and its ancestors with their depth.
    let rows: Vec<(workflow::Model, Option<unit_closure::Model>)> = workflow::Entity::find()
        .select_also(unit_closure::Entity)
        .join(
            JoinType::InnerJoin,
            workflow::Entity::belongs_to(unit_closure::Entity)
                .from(workflow::Column::UnitId)
                .to(unit_closure::Column::AncestorId)
                .into(),
        )
        .filter(unit_closure::Column::DescendantId.is_in(unit_ids.iter().copied()))
        .all(db)
        .await?;
    let mut nearest: std::collections::HashMap<i64, (i32, workflow::Model)> =
        std::collections::HashMap::new();
    for (wf, closure) in rows {
        let Some(c) = closure else { continue };
        match nearest.get(&c.descendant_id) {
            Some((depth, _)) if *depth <= c.depth => {}
            _ => {
                nearest.insert(c.descendant_id, (c.depth, wf));
            }
        }
    }
    let wf_ids: Vec<i64> = nearest.values().map(|(_, w)| w.id).collect();
    let states = workflow_state::Entity::find()
        .filter(workflow_state::Column::WorkflowId.is_in(wf_ids))
        .order_by_asc(workflow_state::Column::Position)
        .all(db)
        .await?;
    Ok(nearest
        .into_iter()
        .map(|(unit_id, (_, wf))| {
            let states = states
                .iter()
                .filter(|s| s.workflow_id == wf.id)
                .cloned()
                .collect();
            (
                unit_id,
                EffectiveWorkflow {
                    workflow: wf,
                    states,
                },
            )
        })
        .collect())
}

/// # Errors
/// `INTERNAL` when the tree has no workflow at all (never after bootstrap).
pub async fn effective_workflow(
    db: &impl ConnectionTrait,
    unit_id: i64,
) -> ApiResult<EffectiveWorkflow> {
    effective_workflows(db, &[unit_id])
        .await?
        .into_iter()
        .next()
        .map(|(_, wf)| wf)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unit {unit_id} has no workflow")))
}

/// A workflow by id, as the effective workflow of the unit that defines
/// it; `None` for an unknown id. Workflows, like the tree, are readable by
/// every authenticated caller.
///
/// # Errors
/// `UNAUTHENTICATED` for anonymous callers; database errors.
pub async fn find_workflow(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<EffectiveWorkflow>> {
    ctx.policy.viewer()?;
    match workflow::Entity::find_by_id(id).one(ctx.db).await? {
        Some(wf) => Ok(Some(effective_workflow(ctx.db, wf.unit_id).await?)),
        None => Ok(None),
    }
}

/// Input of [`create`].
#[derive(Debug)]
pub struct NewUnit {
    pub parent: Option<i64>,
    pub kind: UnitKind,
    pub key: String,
    pub name: String,
}

/// Creates a unit under its parent (the organisation when `parent` is `None`).
///
/// # Errors
/// `BAD_USER_INPUT` for a malformed key or a parent of the wrong level,
/// `CONFLICT` for a key in use, `FORBIDDEN` outside the caller's rights.
pub async fn create(ctx: Ctx<'_>, input: NewUnit) -> ApiResult<unit::Model> {
    ctx.policy.viewer()?;
    validate_unit_key(&input.key)?;
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_input("name must have 1 to 200 characters"));
    }
    if input.kind == UnitKind::Organization {
        return Err(ApiError::bad_input("there is exactly one organisation"));
    }
    let parent = match input.parent {
        Some(id) => unit::Entity::find_by_id(id)
            .one(ctx.db)
            .await?
            .ok_or_else(|| ApiError::not_found("parent unit"))?,
        None => organisation(ctx.db).await?,
    };
    let parent_path = path_of(ctx.db, &parent).await?;
    if parent_path.kind.child_kind() != Some(input.kind) {
        return Err(ApiError::bad_input(format!(
            "a {} cannot be placed under a {}: the tree is organisation → portfolio → program → team",
            input.kind.as_str(),
            parent_path.kind.as_str()
        )));
    }
    if !ctx.policy.can_create_unit_under(&parent_path, input.kind) {
        return Err(ApiError::forbidden("you may not create units here"));
    }
    insert_unit(ctx.db, &parent, input.kind, &input.key, name).await
}

/// Inserts a unit and its closure rows without a policy check (seeding, CLI).
///
/// # Errors
/// `CONFLICT` for a key in use; database errors.
pub async fn insert_unit<C>(
    db: &C,
    parent: &unit::Model,
    kind: UnitKind,
    key: &str,
    name: &str,
) -> ApiResult<unit::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db.begin().await?;
    if unit::Entity::find()
        .filter(unit::Column::Key.eq(key))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "unit key {key:?} is already in use"
        )));
    }
    let created = unit::ActiveModel {
        key: Set(key.to_owned()),
        name: Set(name.to_owned()),
        kind: Set(kind.as_str().to_owned()),
        parent_id: Set(Some(parent.id)),
        depth: Set(parent.depth + 1),
        next_item_number: Set(1),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let above = unit_closure::Entity::find()
        .filter(unit_closure::Column::DescendantId.eq(parent.id))
        .all(&txn)
        .await?;
    let rows = above
        .into_iter()
        .map(|a| unit_closure::ActiveModel {
            ancestor_id: Set(a.ancestor_id),
            descendant_id: Set(created.id),
            depth: Set(a.depth + 1),
        })
        .chain(std::iter::once(unit_closure::ActiveModel {
            ancestor_id: Set(created.id),
            descendant_id: Set(created.id),
            depth: Set(0),
        }));
    unit_closure::Entity::insert_many(rows).exec(&txn).await?;
    txn.commit().await?;
    Ok(created)
}

/// Takes the next number for a generated item key of `unit_id`.
///
/// # Errors
/// Database errors only.
pub async fn next_item_number(db: &impl ConnectionTrait, unit_id: i64) -> ApiResult<i64> {
    // The UPDATE takes the row lock first, so concurrent creators serialise.
    unit::Entity::update_many()
        .col_expr(
            unit::Column::NextItemNumber,
            Expr::col(unit::Column::NextItemNumber).add(1),
        )
        .filter(unit::Column::Id.eq(unit_id))
        .exec(db)
        .await?;
    let unit = unit::Entity::find_by_id(unit_id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("unit"))?;
    Ok(unit.next_item_number - 1)
}
