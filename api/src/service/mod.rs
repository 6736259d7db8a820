//! Business operations. Every function takes the request's [`Policy`] and asks
//! it before reading or writing; nothing here knows about GraphQL.

pub mod analytics;
pub mod api_keys;
pub mod boards;
pub mod delivery;
pub mod directory;
pub mod facts;
pub mod forecast;
pub mod ingest;
pub mod integrations;
pub mod live;
pub mod metrics;
pub mod outcomes;
pub(crate) mod pg;
pub mod rank;
pub(crate) mod rows;
pub(crate) mod sql;
pub mod tx;
pub mod units;
pub mod users;
pub mod value_streams;
pub mod work_items;

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};

use crate::error::{ApiError, ApiResult};
use crate::policy::Policy;

/// What every service call needs: the database and the caller's policy.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub db: &'a DatabaseConnection,
    pub policy: &'a Policy,
    /// The replica's snapshot of the tree and its workflows.
    pub units: &'a directory::UnitDirectory,
    /// The replica's flow facts in memory, when it holds them.
    pub analytics: &'a analytics::Analytics,
}

/// Largest page a connection returns (as GitHub's API).
pub const MAX_PAGE_SIZE: i32 = 100;
/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE_SIZE: i32 = 20;

/// Cursor arguments, already decoded to row ids.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<i64>,
    pub last: Option<i32>,
    pub before: Option<i64>,
}

impl PageArgs {
    /// # Errors
    /// `BAD_USER_INPUT` for negative or oversize sizes, or `first` with `last`.
    pub fn validate(&self) -> ApiResult<()> {
        if self.first.is_some() && self.last.is_some() {
            return Err(ApiError::bad_input(
                "pass either `first` or `last`, not both",
            ));
        }
        for (name, v) in [("first", self.first), ("last", self.last)] {
            if let Some(v) = v
                && !(0..=MAX_PAGE_SIZE).contains(&v)
            {
                return Err(ApiError::bad_input(format!(
                    "`{name}` must be between 0 and {MAX_PAGE_SIZE}"
                )));
            }
        }
        Ok(())
    }
}

/// One page of rows, in ascending id order.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
    pub has_previous: bool,
    /// Rows matching the filter on all pages, when asked for.
    pub total: Option<u64>,
}

/// Keyset pagination over `select` by its integer id column.
///
/// # Errors
/// Database errors, or invalid page arguments.
pub async fn paginate<E, C>(
    db: &DatabaseConnection,
    select: Select<E>,
    id_col: C,
    args: PageArgs,
    want_total: bool,
) -> ApiResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    C: ColumnTrait,
{
    paginate_as::<E, C, E::Model>(db, select, id_col, args, want_total).await
}

/// [`paginate`], each row decoded as `M`.
///
/// # Errors
/// Database errors, or invalid page arguments.
pub async fn paginate_as<E, C, M>(
    db: &DatabaseConnection,
    select: Select<E>,
    id_col: C,
    args: PageArgs,
    want_total: bool,
) -> ApiResult<Page<M>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    C: ColumnTrait,
    M: FromQueryResult + Send + Sync,
{
    let total = page_total(db, &select, &args, want_total).await?;
    let (q, n) = page_select(select, id_col, &args);
    let rows = q.into_model::<M>().all(db).await?;
    Ok(page_of(rows, n, &args, total))
}

/// Validates a page's arguments and, when asked, counts every row of
/// `select` (cursors aside).
///
/// # Errors
/// Database errors, or invalid page arguments.
pub(crate) async fn page_total<E: EntityTrait>(
    db: &DatabaseConnection,
    select: &Select<E>,
    args: &PageArgs,
    want_total: bool,
) -> ApiResult<Option<u64>>
where
    E::Model: Send + Sync,
{
    args.validate()?;
    Ok(if want_total {
        Some(select.clone().count(db).await?)
    } else {
        None
    })
}

/// The rows of a page: `select` past its cursors, ordered by `id_col`
/// towards the cursor (descending for `last`) and limited to one more row
/// than the page, which tells whether more follow. Returns the page's size.
pub(crate) fn page_select<E: EntityTrait, C: ColumnTrait>(
    select: Select<E>,
    id_col: C,
    args: &PageArgs,
) -> (Select<E>, u64) {
    let mut q = select;
    if let Some(after) = args.after {
        q = q.filter(id_col.gt(after));
    }
    if let Some(before) = args.before {
        q = q.filter(id_col.lt(before));
    }
    let (q, n) = match args.last {
        Some(last) => (q.order_by_desc(id_col), last),
        None => (
            q.order_by_asc(id_col),
            args.first.unwrap_or(DEFAULT_PAGE_SIZE),
        ),
    };
    let n = u64::try_from(n).unwrap_or(0);
    (q.limit(n + 1), n)
}

/// The page of `rows` read by [`page_select`] (in its order) for `args`.
pub(crate) fn page_of<M>(mut rows: Vec<M>, n: u64, args: &PageArgs, total: Option<u64>) -> Page<M> {
    let more = rows.len() as u64 > n;
    rows.truncate(usize::try_from(n).unwrap_or(0));
    if args.last.is_some() {
        rows.reverse();
        Page {
            items: rows,
            has_next: args.before.is_some(),
            has_previous: more,
            total,
        }
    } else {
        Page {
            items: rows,
            has_next: more,
            has_previous: args.after.is_some(),
            total,
        }
    }
}

/// Whether a unit's query covers the units beneath it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reach {
    /// The unit and every unit beneath it.
    #[default]
    Subtree,
    /// Items owned by the unit itself.
    UnitOnly,
}

/// Restricts `q` to rows whose `unit_col` is `unit_id` or, for a subtree,
/// any unit beneath it (through the closure table).
/// [`in_unit`] with the subtree's units read from the replica's snapshot
/// of the tree as a list of ids, when it holds the unit: the database then
/// walks the index of the unit column directly (a team's first page of
/// items reads that page, not every item of the team) instead of joining
/// the closure table. Subtrees of more than [`LISTED_UNITS`] units keep the
/// join.
///
/// # Errors
/// Database errors only (loading the snapshot).
pub(crate) async fn in_unit_listed<E: sea_orm::EntityTrait, C: sea_orm::ColumnTrait>(
    ctx: Ctx<'_>,
    q: sea_orm::Select<E>,
    unit_col: C,
    unit_id: i64,
    reach: Reach,
) -> ApiResult<sea_orm::Select<E>> {
    use sea_orm::QueryFilter;
    if reach == Reach::Subtree
        && let Some(tree) = ctx.units.tree(ctx.db).await?
    {
        match tree.subtree(unit_id) {
            [one] => return Ok(q.filter(unit_col.eq(*one))),
            many if !many.is_empty() && many.len() <= LISTED_UNITS => {
                return Ok(q.filter(unit_col.is_in(many.iter().copied())));
            }
            _ => {}
        }
    }
    Ok(in_unit(q, unit_col, unit_id, reach))
}

/// Largest subtree [`in_unit_listed`] lists.
const LISTED_UNITS: usize = 64;

pub(crate) fn in_unit<E: sea_orm::EntityTrait, C: sea_orm::ColumnTrait>(
    q: sea_orm::Select<E>,
    unit_col: C,
    unit_id: i64,
    reach: Reach,
) -> sea_orm::Select<E> {
    use sea_orm::QueryFilter;
    match reach {
        Reach::UnitOnly => q.filter(unit_col.eq(unit_id)),
        Reach::Subtree => {
            let mut subtree = sea_orm::sea_query::Query::select();
            subtree
                .column(entity::unit_closure::Column::DescendantId)
                .from(entity::unit_closure::Entity)
                .and_where(entity::unit_closure::Column::AncestorId.eq(unit_id));
            q.filter(unit_col.in_subquery(subtree))
        }
    }
}
