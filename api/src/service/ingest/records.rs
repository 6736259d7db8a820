//! Delivery records (changes, deployments, releases, incidents): each owned
//! by a unit and named by its source's external id, so the per-event and the
//! batch paths look them up alike.

use entity::{change, deployment, incident, release};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

/// A table of delivery records: its columns and what a row tells of itself.
pub(super) trait Delivery: EntityTrait {
    const ID: Self::Column;
    const UNIT_ID: Self::Column;
    const SOURCE: Self::Column;
    const EXTERNAL_ID: Self::Column;

    fn id(m: &Self::Model) -> i64;
    fn unit_id(m: &Self::Model) -> i64;
}

macro_rules! delivery {
    ($($m:ident),*) => {$(
        impl Delivery for $m::Entity {
            const ID: $m::Column = $m::Column::Id;
            const UNIT_ID: $m::Column = $m::Column::UnitId;
            const SOURCE: $m::Column = $m::Column::Source;
            const EXTERNAL_ID: $m::Column = $m::Column::ExternalId;

            fn id(m: &$m::Model) -> i64 {
                m.id
            }

            fn unit_id(m: &$m::Model) -> i64 {
                m.unit_id
            }
        }
    )*};
}

delivery!(change, deployment, release, incident);

/// The record of `E` that `source` names `ext`, if there is one.
///
/// # Errors
/// Database errors only.
pub(super) async fn by_ref<E: Delivery>(
    db: &impl ConnectionTrait,
    source: &str,
    ext: &str,
) -> Result<Option<E::Model>, DbErr> {
    E::find()
        .filter(E::SOURCE.eq(source))
        .filter(E::EXTERNAL_ID.eq(ext))
        .one(db)
        .await
}
