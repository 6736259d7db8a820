//! The flow facts (`flow_completion`, `flow_wip`) as columns: one vector
//! per column, a row at the same index in each. Unit ids and the short
//! names (level, item type, flow type) are coded as small integers; instants
//! and durations stay epoch milliseconds, as in the tables.
//!
//! Rows carry no order: replacing an item's rows removes them by swapping
//! the last row into their place and appends the new ones.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use super::catchup::Changed;
use super::delivery::{DeliveryFacts, DeliveryRows};
use super::tree::{Tree, TreeRows};
use crate::service::sql::Sql;

/// Rows read per statement while loading.
const PAGE: i64 = 50_000;
/// Items whose rows are read per statement while refreshing.
const ITEMS: usize = 1000;

/// Stands for a missing `start_ms`.
pub const NO_START: i64 = i64::MIN;

/// Small integer codes for repeated values; code 0 is "none".
#[derive(Debug, Default)]
pub struct Codes<T: std::hash::Hash + Eq + Clone> {
    index: HashMap<T, u32>,
    values: Vec<T>,
}

impl<T: std::hash::Hash + Eq + Clone> Codes<T> {
    pub fn code(&mut self, v: &T) -> u32 {
        if let Some(c) = self.index.get(v) {
            return *c;
        }
        self.values.push(v.clone());
        let c = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.index.insert(v.clone(), c);
        c
    }

    /// The code of `v`, `None` when no row holds it.
    pub fn get(&self, v: &T) -> Option<u32> {
        self.index.get(v).copied()
    }

    /// Every value, the one coded 1 first.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    pub fn value(&self, code: u32) -> Option<&T> {
        self.values.get((code as usize).checked_sub(1)?)
    }

    /// The largest code given, 0 for none.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The dictionaries of a store.
#[derive(Debug, Default)]
pub struct Dicts {
    pub units: Codes<i64>,
    pub names: Codes<String>,
}

/// The columns every fact row carries about its item.
#[derive(Debug, Default)]
pub struct Owners {
    pub item: Vec<i64>,
    pub unit: Vec<u32>,
    pub portfolio: Vec<u32>,
    pub program: Vec<u32>,
    pub team: Vec<u32>,
    pub level: Vec<u32>,
    pub item_type: Vec<u32>,
    pub flow_type: Vec<u32>,
}

impl Owners {
    /// Reads `work_item_id, unit_id, portfolio_id, program_id, team_id,
    /// level, item_type, flow_type` from columns 1 to 8 of `row`.
    fn push(&mut self, dicts: &mut Dicts, row: &QueryResult) -> Result<(), DbErr> {
        let unit = |d: &mut Dicts, v: Option<i64>| v.map_or(0, |id| d.units.code(&id));
        self.item.push(row.try_get_by_index::<i64>(1)?);
        self.unit
            .push(unit(dicts, Some(row.try_get_by_index::<i64>(2)?)));
        self.portfolio
            .push(unit(dicts, row.try_get_by_index::<Option<i64>>(3)?));
        self.program
            .push(unit(dicts, row.try_get_by_index::<Option<i64>>(4)?));
        self.team
            .push(unit(dicts, row.try_get_by_index::<Option<i64>>(5)?));
        for (i, col) in [
            (6, &mut self.level),
            (7, &mut self.item_type),
            (8, &mut self.flow_type),
        ] {
            col.push(dicts.names.code(&row.try_get_by_index::<String>(i)?));
        }
        Ok(())
    }

    /// The seven code columns, for what is done to each alike.
    pub(super) fn codes_mut(&mut self) -> [&mut Vec<u32>; 7] {
        [
            &mut self.unit,
            &mut self.portfolio,
            &mut self.program,
            &mut self.team,
            &mut self.level,
            &mut self.item_type,
            &mut self.flow_type,
        ]
    }

    fn swap_remove(&mut self, i: usize) {
        self.item.swap_remove(i);
        self.unit.swap_remove(i);
        self.portfolio.swap_remove(i);
        self.program.swap_remove(i);
        self.team.swap_remove(i);
        self.level.swap_remove(i);
        self.item_type.swap_remove(i);
        self.flow_type.swap_remove(i);
    }

    fn shrink(&mut self) {
        self.item.shrink_to_fit();
        self.unit.shrink_to_fit();
        self.portfolio.shrink_to_fit();
        self.program.shrink_to_fit();
        self.team.shrink_to_fit();
        self.level.shrink_to_fit();
        self.item_type.shrink_to_fit();
        self.flow_type.shrink_to_fit();
    }

    fn bytes(&self) -> usize {
        self.item.capacity() * 8
            + (self.unit.capacity()
                + self.portfolio.capacity()
                + self.program.capacity()
                + self.team.capacity()
                + self.level.capacity()
                + self.item_type.capacity()
                + self.flow_type.capacity())
                * 4
    }

    /// The rows whose item is in `items`, highest first.
    fn rows_of(&self, items: &HashSet<i64>) -> Vec<usize> {
        let mut rows: Vec<usize> = self
            .item
            .iter()
            .enumerate()
            .filter(|(_, id)| items.contains(id))
            .map(|(i, _)| i)
            .collect();
        rows.reverse();
        rows
    }
}

/// `flow_completion`: one row per entry into a `DONE` state.
#[derive(Debug, Default)]
pub struct CompletionCols {
    pub owners: Owners,
    pub created: Vec<i64>,
    /// [`NO_START`] for an item that never started.
    pub start: Vec<i64>,
    pub completed: Vec<i64>,
    pub left: Vec<i64>,
    pub active: Vec<i64>,
}

const COMPLETION_COLUMNS: &str = "id, work_item_id, unit_id, portfolio_id, program_id, team_id, \
     level, item_type, flow_type, created_ms, start_ms, completed_ms, left_ms, active_ms";

impl CompletionCols {
    fn push(&mut self, dicts: &mut Dicts, row: &QueryResult) -> Result<(), DbErr> {
        self.owners.push(dicts, row)?;
        self.created.push(row.try_get_by_index(9)?);
        self.start
            .push(row.try_get_by_index::<Option<i64>>(10)?.unwrap_or(NO_START));
        self.completed.push(row.try_get_by_index(11)?);
        self.left.push(row.try_get_by_index(12)?);
        self.active.push(row.try_get_by_index(13)?);
        Ok(())
    }

    fn swap_remove(&mut self, i: usize) {
        self.owners.swap_remove(i);
        self.created.swap_remove(i);
        self.start.swap_remove(i);
        self.completed.swap_remove(i);
        self.left.swap_remove(i);
        self.active.swap_remove(i);
    }

    fn shrink(&mut self) {
        self.owners.shrink();
        self.created.shrink_to_fit();
        self.start.shrink_to_fit();
        self.completed.shrink_to_fit();
        self.left.shrink_to_fit();
        self.active.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.completed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.completed.is_empty()
    }

    fn bytes(&self) -> usize {
        self.owners.bytes()
            + (self.created.capacity()
                + self.start.capacity()
                + self.completed.capacity()
                + self.left.capacity()
                + self.active.capacity())
                * 8
    }
}

/// `flow_wip`: one row per stretch in `ACTIVE` or `WAITING` states.
#[derive(Debug, Default)]
pub struct WipCols {
    pub owners: Owners,
    pub start: Vec<i64>,
    pub from: Vec<i64>,
    pub to: Vec<i64>,
}

const WIP_COLUMNS: &str = "id, work_item_id, unit_id, portfolio_id, program_id, team_id, \
     level, item_type, flow_type, start_ms, from_ms, to_ms";

impl WipCols {
    fn push(&mut self, dicts: &mut Dicts, row: &QueryResult) -> Result<(), DbErr> {
        self.owners.push(dicts, row)?;
        self.start.push(row.try_get_by_index(9)?);
        self.from.push(row.try_get_by_index(10)?);
        self.to.push(row.try_get_by_index(11)?);
        Ok(())
    }

    fn swap_remove(&mut self, i: usize) {
        self.owners.swap_remove(i);
        self.start.swap_remove(i);
        self.from.swap_remove(i);
        self.to.swap_remove(i);
    }

    fn shrink(&mut self) {
        self.owners.shrink();
        self.start.shrink_to_fit();
        self.from.shrink_to_fit();
        self.to.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.to.len()
    }

    pub fn is_empty(&self) -> bool {
        self.to.is_empty()
    }

    fn bytes(&self) -> usize {
        self.owners.bytes()
            + (self.start.capacity() + self.from.capacity() + self.to.capacity()) * 8
    }
}

/// The flow facts of every item.
#[derive(Debug, Default)]
pub struct Facts {
    pub dicts: Dicts,
    pub completions: CompletionCols,
    pub wip: WipCols,
    /// The item tree, `None` when it cannot be held (delivery progress
    /// then comes from SQL).
    pub tree: Option<Tree>,
    pub delivery: DeliveryFacts,
}

/// Fact rows of some items and delivery entities, read from the database.
pub struct Fetched {
    items: Vec<i64>,
    completions: Vec<QueryResult>,
    wip: Vec<QueryResult>,
    tree: Option<TreeRows>,
    delivery: DeliveryRows,
}

impl Facts {
    /// Every row of both tables, read a page at a time by id.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn load(db: &impl ConnectionTrait) -> Result<Self, DbErr> {
        let mut facts = Self::default();
        let backend = db.get_database_backend();
        for table in ["flow_completion", "flow_wip"] {
            let mut count = Sql::new(backend);
            count.push(&format!("SELECT COUNT(*) AS n FROM {table}"));
            let n = match db.query_one_raw(count.statement()).await? {
                Some(row) => usize::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
                None => 0,
            };
            let columns = if table == "flow_wip" {
                WIP_COLUMNS
            } else {
                COMPLETION_COLUMNS
            };
            facts.reserve(table, n);
            let mut after = 0i64;
            loop {
                let mut page = Sql::new(backend);
                let from = page.bind(after);
                let limit = page.bind(PAGE);
                page.push(&format!(
                    "SELECT {columns} FROM {table} WHERE id > {from} ORDER BY id LIMIT {limit}"
                ));
                let rows = db.query_all_raw(page.statement()).await?;
                let Some(last) = rows.last() else { break };
                after = last.try_get_by_index(0)?;
                for row in &rows {
                    facts.push(table, row)?;
                }
                if rows.len() < PAGE as usize {
                    break;
                }
            }
        }
        facts.completions.shrink();
        facts.wip.shrink();
        facts.tree = Tree::load(db, &mut facts.dicts).await?;
        facts.delivery = DeliveryFacts::load(db).await?;
        Ok(facts)
    }

    fn reserve(&mut self, table: &str, n: usize) {
        let o = if table == "flow_wip" {
            self.wip.start.reserve(n);
            self.wip.from.reserve(n);
            self.wip.to.reserve(n);
            &mut self.wip.owners
        } else {
            let c = &mut self.completions;
            for col in [
                &mut c.created,
                &mut c.start,
                &mut c.completed,
                &mut c.left,
                &mut c.active,
            ] {
                col.reserve(n);
            }
            &mut c.owners
        };
        o.item.reserve(n);
        for col in o.codes_mut() {
            col.reserve(n);
        }
    }

    fn push(&mut self, table: &str, row: &QueryResult) -> Result<(), DbErr> {
        if table == "flow_wip" {
            self.wip.push(&mut self.dicts, row)
        } else {
            self.completions.push(&mut self.dicts, row)
        }
    }

    /// Reads the current fact rows of the items and delivery entities
    /// `changed` names, and of `held` (what the held facts link to its
    /// deployments, [`DeliveryFacts::held_related`]).
    ///
    /// # Errors
    /// Database errors only.
    pub async fn fetch(
        db: &impl ConnectionTrait,
        changed: &Changed,
        held: &[(i32, i64)],
    ) -> Result<Fetched, DbErr> {
        let mut items = changed.items.clone();
        items.sort_unstable();
        items.dedup();
        let mut out = Fetched {
            items,
            completions: Vec::new(),
            wip: Vec::new(),
            tree: None,
            delivery: DeliveryFacts::fetch(db, &changed.delivery, held).await?,
        };
        for chunk in out.items.chunks(ITEMS) {
            for (table, columns) in [
                ("flow_completion", COMPLETION_COLUMNS),
                ("flow_wip", WIP_COLUMNS),
            ] {
                let mut sql = Sql::new(db.get_database_backend());
                let marks: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
                sql.push(&format!(
                    "SELECT {columns} FROM {table} WHERE work_item_id IN ({})",
                    marks.join(", ")
                ));
                let rows = db.query_all_raw(sql.statement()).await?;
                if table == "flow_wip" {
                    out.wip.extend(rows);
                } else {
                    out.completions.extend(rows);
                }
            }
        }
        if !out.items.is_empty() {
            out.tree = Tree::fetch(db, &out.items).await?;
        }
        Ok(out)
    }

    /// Replaces the rows of the items `fetched` was read for with its rows.
    ///
    /// # Errors
    /// A row that does not read as the table's columns.
    pub fn replace(&mut self, fetched: &Fetched) -> Result<(), DbErr> {
        let items: HashSet<i64> = fetched.items.iter().copied().collect();
        if items.is_empty() {
            self.delivery.replace(&fetched.delivery);
            return Ok(());
        }
        for i in self.completions.owners.rows_of(&items) {
            self.completions.swap_remove(i);
        }
        for i in self.wip.owners.rows_of(&items) {
            self.wip.swap_remove(i);
        }
        for row in &fetched.completions {
            self.completions.push(&mut self.dicts, row)?;
        }
        for row in &fetched.wip {
            self.wip.push(&mut self.dicts, row)?;
        }
        self.delivery.replace(&fetched.delivery);
        match (&mut self.tree, &fetched.tree) {
            (Some(tree), Some(rows)) => {
                if let Err(e) = tree.apply(rows, &fetched.items, &mut self.dicts) {
                    tracing::warn!(error = %e, "the tree is no longer held");
                    self.tree = None;
                }
            }
            (Some(_), None) => self.tree = None,
            (None, _) => {}
        }
        Ok(())
    }

    /// Bytes the columns take.
    pub fn bytes(&self) -> usize {
        self.completions.bytes()
            + self.wip.bytes()
            + self.tree.as_ref().map_or(0, Tree::bytes)
            + self.delivery.bytes()
    }

    /// Rows held: flow facts, visits and delivery facts.
    pub fn rows(&self) -> usize {
        self.completions.len()
            + self.wip.len()
            + self.tree.as_ref().map_or(0, Tree::held_entries)
            + self.delivery.rows()
    }
}
