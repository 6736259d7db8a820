//! What the facts in memory missed, read from the database (PostgreSQL):
//! every rewrite of an item's flow facts records the rewriting
//! transaction's id in `flow_change` (`service::facts::flow`), every write
//! of a deployment, change, incident or release in `delivery_change`
//! (`service::facts::delivery`), and a
//! [`Mark`] is the snapshot a replica last read under. The items changed
//! since are those whose transaction had not finished then: at or past the
//! snapshot's `xmax`, or in its in-progress list. Each poll reads them and
//! the next mark in one statement on one snapshot, so nothing committed
//! between two polls is skipped, however long its transaction ran and
//! whatever the replicas' clocks say; and with nothing changed, the poll is
//! two index probes that find no row.

use sea_orm::{ConnectionTrait, DbErr};

use crate::service::pg::{bigints, statement};

/// Where a replica's facts stand: every transaction below `xmax` and not
/// in `xip` had finished when they were read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    xmax: i64,
    xip: Vec<i64>,
}

/// One statement, one snapshot: kind 0 is the snapshot's `xmax`, kind 1 a
/// transaction in progress, kind 2 an item changed since the mark `$1`,
/// `$2`, kinds 3 and up a delivery entity (of `delivery_change` kind
/// k − 2).
const POLL: &str = "WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS s) \
     SELECT 0 AS k, pg_snapshot_xmax(s)::text::bigint AS v FROM s \
     UNION ALL SELECT 1, x::text::bigint FROM s, pg_snapshot_xip(s) AS x \
     UNION ALL SELECT 2, work_item_id FROM flow_change WHERE xid >= $1 \
     UNION ALL SELECT 2, work_item_id FROM flow_change WHERE xid = ANY($2::bigint[]) \
     UNION ALL SELECT 2 + kind, entity_id FROM delivery_change WHERE xid >= $1 \
     UNION ALL SELECT 2 + kind, entity_id FROM delivery_change WHERE xid = ANY($2::bigint[])";

/// What changed since a mark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Work items whose flow facts were rewritten, each once.
    pub items: Vec<i64>,
    /// Delivery entities written: `(delivery_change kind, id)`, each once.
    pub delivery: Vec<(i32, i64)>,
}

impl Changed {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.delivery.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len() + self.delivery.len()
    }

    pub fn extend(&mut self, other: &Self) {
        self.items.extend(&other.items);
        self.delivery.extend(&other.delivery);
    }
}

impl Mark {
    /// The mark of now: what facts read from here on will hold.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn now(db: &impl ConnectionTrait) -> Result<Self, DbErr> {
        let nothing = Self {
            xmax: i64::MAX,
            xip: Vec::new(),
        };
        Ok(nothing.changes(db).await?.0)
    }

    /// The mark of now and what changed since `self`.
    ///
    /// # Errors
    /// Database errors only, or a snapshot that does not read.
    pub async fn changes(&self, db: &impl ConnectionTrait) -> Result<(Self, Changed), DbErr> {
        let stmt = statement(
            POLL,
            vec![self.xmax.into(), bigints(self.xip.iter().copied())],
        );
        let mut xmax = None;
        let mut xip = Vec::new();
        let mut changed = Changed::default();
        for row in db.query_all_raw(stmt).await? {
            let v: i64 = row.try_get_by_index(1)?;
            match row.try_get_by_index::<i32>(0)? {
                0 => xmax = Some(v),
                1 => xip.push(v),
                2 => changed.items.push(v),
                k => changed.delivery.push((k - 2, v)),
            }
        }
        let xmax = xmax.ok_or_else(|| DbErr::Custom("no snapshot read".to_owned()))?;
        changed.items.sort_unstable();
        changed.items.dedup();
        changed.delivery.sort_unstable();
        changed.delivery.dedup();
        Ok((Self { xmax, xip }, changed))
    }
}
