//! Argument helpers the feature files share: page arguments and their cost,
//! and patches of nullable input fields.

use async_graphql::{Context, ID, MaybeUndefined};

use super::ids;
use crate::error::GqlResult;
use crate::service::PageArgs;
use crate::service::work_items::Patch;

pub(crate) fn page_args(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> GqlResult<PageArgs> {
    let args = PageArgs {
        first,
        after: after.map(|c| ids::decode_cursor(&c, "after")).transpose()?,
        last,
        before: before
            .map(|c| ids::decode_cursor(&c, "before"))
            .transpose()?,
    };
    args.validate()?;
    Ok(args)
}

pub(super) fn page_complexity(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let n = first
        .or(last)
        .unwrap_or(crate::service::DEFAULT_PAGE_SIZE)
        .clamp(1, 100);
    usize::try_from(n).unwrap_or(100) * child + 2
}

/// Whether the selection asks for `totalCount` (it costs a COUNT query).
pub(super) fn wants_total(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

pub(super) fn patch<T>(v: MaybeUndefined<T>) -> Patch<T> {
    match v {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(v) => Patch::Set(v),
    }
}

pub(super) fn patch_id(v: MaybeUndefined<ID>, k: &str, field: &str) -> GqlResult<Patch<i64>> {
    Ok(match v {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(id) => Patch::Set(ids::expect(&id, k, field)?),
    })
}
