//! Reads of delivery records (changes, deployments, releases, incidents),
//! scoped exactly like work items (DESIGN §2): readable when their owning
//! unit's items are.

use entity::{
    change, change_work_item, deployment, deployment_change, incident, release, release_work_item,
    work_item,
};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Select};

use super::Reach;
use super::{Ctx, Page, PageArgs, in_unit, paginate, units};
use crate::error::{ApiError, ApiResult};

/// Rows of `E` the caller may read, by its unit column.
fn readable<E, C>(ctx: Ctx<'_>, unit_col: C) -> ApiResult<Select<E>>
where
    E: EntityTrait + Default,
    C: ColumnTrait,
{
    Ok(E::find().filter(
        ctx.policy
            .unit_condition(Expr::col((E::default(), unit_col)))?,
    ))
}

/// A page of a unit's records of one kind, newest id last.
async fn list<E, C>(
    ctx: Ctx<'_>,
    unit_col: C,
    id_col: C,
    unit_id: i64,
    reach: Reach,
    page: PageArgs,
    want_total: bool,
) -> ApiResult<Page<E::Model>>
where
    E: EntityTrait + Default,
    E::Model: Send + Sync,
    C: ColumnTrait,
{
    let q = readable::<E, C>(ctx, unit_col)?;
    if units::find(ctx, unit_id).await?.is_none() {
        return Err(ApiError::not_found("unit"));
    }
    let q = in_unit(q, unit_col, unit_id, reach);
    paginate(ctx.db, q, id_col, page, want_total).await
}

macro_rules! lists {
    ($($fn_name:ident => $m:ident),+ $(,)?) => {$(
        /// A page of the unit's (and by default its subtree's) records you may read.
        ///
        /// # Errors
        /// `NOT_FOUND` for an unknown unit, `BAD_USER_INPUT` for bad pages.
        pub async fn $fn_name(
            ctx: Ctx<'_>,
            unit_id: i64,
            reach: Reach,
            page: PageArgs,
            want_total: bool,
        ) -> ApiResult<Page<$m::Model>> {
            list::<$m::Entity, $m::Column>(ctx, $m::Column::UnitId, $m::Column::Id, unit_id, reach, page, want_total).await
        }
    )+};
}

lists!(
    changes => change,
    deployments => deployment,
    releases => release,
    incidents => incident,
);

/// One record of a kind by id, when readable.
macro_rules! finds {
    ($($fn_name:ident => $m:ident),+ $(,)?) => {$(
        /// # Errors
        /// `UNAUTHENTICATED`; database errors.
        pub async fn $fn_name(ctx: Ctx<'_>, id: i64) -> ApiResult<Option<$m::Model>> {
            Ok(readable::<$m::Entity, $m::Column>(ctx, $m::Column::UnitId)?
                .filter($m::Column::Id.eq(id))
                .one(ctx.db)
                .await?)
        }
    )+};
}

finds!(
    find_change => change,
    find_deployment => deployment,
    find_release => release,
    find_incident => incident,
);

/// Readable changes that reference a work item.
///
/// # Errors
/// Database errors only.
pub async fn changes_of_item(ctx: Ctx<'_>, item_id: i64) -> ApiResult<Vec<change::Model>> {
    Ok(readable::<change::Entity, _>(ctx, change::Column::UnitId)?
        .filter(
            change::Column::Id.in_subquery(
                Query::select()
                    .column(change_work_item::Column::ChangeId)
                    .from(change_work_item::Entity)
                    .and_where(change_work_item::Column::WorkItemId.eq(item_id))
                    .to_owned(),
            ),
        )
        .order_by_asc(change::Column::MergedAt)
        .all(ctx.db)
        .await?)
}

/// Readable releases that deliver a work item.
///
/// # Errors
/// Database errors only.
pub async fn releases_of_item(ctx: Ctx<'_>, item_id: i64) -> ApiResult<Vec<release::Model>> {
    Ok(
        readable::<release::Entity, _>(ctx, release::Column::UnitId)?
            .filter(
                release::Column::Id.in_subquery(
                    Query::select()
                        .column(release_work_item::Column::ReleaseId)
                        .from(release_work_item::Entity)
                        .and_where(release_work_item::Column::WorkItemId.eq(item_id))
                        .to_owned(),
                ),
            )
            .order_by_asc(release::Column::ReleasedAt)
            .all(ctx.db)
            .await?,
    )
}

/// Readable changes a deployment shipped.
///
/// # Errors
/// Database errors only.
pub async fn changes_of_deployment(
    ctx: Ctx<'_>,
    deployment_id: i64,
) -> ApiResult<Vec<change::Model>> {
    Ok(readable::<change::Entity, _>(ctx, change::Column::UnitId)?
        .filter(
            change::Column::Id.in_subquery(
                Query::select()
                    .column(deployment_change::Column::ChangeId)
                    .from(deployment_change::Entity)
                    .and_where(deployment_change::Column::DeploymentId.eq(deployment_id))
                    .to_owned(),
            ),
        )
        .order_by_asc(change::Column::MergedAt)
        .all(ctx.db)
        .await?)
}

/// Readable work items whose ids `subquery` selects from a link table.
async fn linked_items(
    ctx: Ctx<'_>,
    subquery: sea_orm::sea_query::SelectStatement,
) -> ApiResult<Vec<work_item::Model>> {
    Ok(work_item::Entity::find()
        .filter(ctx.policy.item_condition()?)
        .filter(work_item::Column::Id.in_subquery(subquery))
        .order_by_asc(work_item::Column::Id)
        .all(ctx.db)
        .await?)
}

/// Readable items a change references.
///
/// # Errors
/// Database errors only.
pub async fn items_of_change(ctx: Ctx<'_>, change_id: i64) -> ApiResult<Vec<work_item::Model>> {
    let sub = Query::select()
        .column(change_work_item::Column::WorkItemId)
        .from(change_work_item::Entity)
        .and_where(change_work_item::Column::ChangeId.eq(change_id))
        .to_owned();
    linked_items(ctx, sub).await
}

/// Readable items a release delivers.
///
/// # Errors
/// Database errors only.
pub async fn items_of_release(ctx: Ctx<'_>, release_id: i64) -> ApiResult<Vec<work_item::Model>> {
    let sub = Query::select()
        .column(release_work_item::Column::WorkItemId)
        .from(release_work_item::Entity)
        .and_where(release_work_item::Column::ReleaseId.eq(release_id))
        .to_owned();
    linked_items(ctx, sub).await
}
