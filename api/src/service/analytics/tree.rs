//! The work item tree and each item's visits to states, so that delivery
//! progress (DESIGN §3.7) walks the leaves below an item in memory instead
//! of a recursive query and a state lookup per leaf, and time in state
//! (§3.2) and the cumulative flow (§3.3) add up visits in memory instead of
//! grouping `flow_state` in the database.
//!
//! Items are indexed by id (ids are dense: the tables number them), each
//! with its parent, its children as a linked list, and the owner columns
//! its facts carry (unit line, level, type and flow type, coded as in the
//! rest of the store). An item's history is a run of *entries*, one per
//! `flow_state` visit in order (empty visits, two transitions at one
//! instant, included), each starting where the previous one ends; a gap
//! between visits (none is written today) is an entry in no state. The
//! last entry is open. Entries live in one arena; an item whose history
//! grew is written again at its end, and the arena is compacted when half
//! of it is garbage.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult};

use super::columns::{Codes, Dicts, Owners};
use crate::service::facts::flow::OPEN;
use crate::service::sql::Sql;

/// Items whose ids a load reads per statement.
const ID_STEP: i64 = 20_000;
/// Items whose rows are read per statement while refreshing.
const ITEMS: usize = 1000;
/// Ids above this many times the item count (plus a margin) are too sparse
/// to index by id: the tree is not held and progress comes from SQL.
const SPARSE: usize = 8;
const MARGIN: usize = 1 << 20;

/// The state code of an entry in no state (a gap), and its category code.
pub const GAP: u16 = 0;

/// What delivery progress makes of a category.
const NEW: u8 = 1;
const IN_PROGRESS: u8 = 2;
const DONE: u8 = 3;
const CANCELED: u8 = 4;

fn progress_kind(category: &str) -> u8 {
    match category {
        "NEW" => NEW,
        "DONE" => DONE,
        "CANCELED" => CANCELED,
        // ACTIVE, WAITING, and whatever else the SQL path counts so.
        _ => IN_PROGRESS,
    }
}

/// Leaves by category at an instant, and the units owning the open ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafCounts {
    pub done: u64,
    pub in_progress: u64,
    pub not_started: u64,
    pub open_units: Vec<i64>,
}

/// The tree and the visits of every item.
#[derive(Debug, Default)]
pub struct Tree {
    /// Per id: whether a work item has that id.
    present: Vec<bool>,
    /// Per id: parent, first child and next sibling ids; 0 for none.
    parent: Vec<u32>,
    first_child: Vec<u32>,
    next_sibling: Vec<u32>,
    /// Per id: where its entries are in the arena, and how many.
    at: Vec<u32>,
    len: Vec<u32>,
    /// Per id: the owner columns of its `flow_state` rows (codes 0 for an
    /// item without any; `item` is not kept).
    pub owners: Owners,
    /// The arena: an entry's start, its state and its category ([`GAP`]
    /// for none).
    from: Vec<i64>,
    state: Vec<u16>,
    category: Vec<u8>,
    /// State and category names by code.
    pub states: Codes<String>,
    pub categories: Codes<String>,
    /// Per category code, what progress makes of it.
    kinds: Vec<u8>,
    /// Arena slots no item uses.
    garbage: usize,
}

/// The owner columns of an item's `flow_state` rows, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerRow {
    pub unit: i64,
    pub portfolio: Option<i64>,
    pub program: Option<i64>,
    pub team: Option<i64>,
    pub level: String,
    pub item_type: String,
    pub flow_type: String,
}

/// The tree rows of some items, read from the database.
#[derive(Debug, Default)]
pub struct TreeRows {
    /// `(id, parent)` of the items that exist.
    items: Vec<(i64, Option<i64>)>,
    /// The owner columns of each item with visits.
    owners: HashMap<i64, OwnerRow>,
    /// Entries of each item, in order.
    entries: HashMap<i64, Vec<Entry>>,
    /// State and category names by (local) code.
    states: Codes<String>,
    categories: Codes<String>,
}

/// An entry as read: its start, and its state's and category's codes in
/// [`TreeRows`]'s dictionaries (0 and 0 for a gap).
type Entry = (i64, u32, u32);

/// One item's visits turned into entries.
#[derive(Default)]
struct EntryBuilder {
    entries: Vec<Entry>,
    /// Where the last visit ended.
    end: Option<i64>,
}

impl EntryBuilder {
    /// Adds a visit `[from, to)`; `Err` when it overlaps the previous one
    /// or ends before it starts (the SQL path would count the item twice:
    /// leave it to SQL).
    fn visit(&mut self, from: i64, to: i64, state: u32, category: u32) -> Result<(), DbErr> {
        if to < from {
            return Err(DbErr::Custom("a state visit ends before it starts".into()));
        }
        if let Some(end) = self.end {
            if from < end {
                return Err(DbErr::Custom("overlapping state visits".into()));
            }
            if from > end {
                self.entries.push((end, 0, 0));
            }
        }
        self.entries.push((from, state, category));
        self.end = Some(to);
        Ok(())
    }

    fn finish(mut self) -> Vec<Entry> {
        if let Some(end) = self.end
            && end < OPEN
        {
            self.entries.push((end, 0, 0));
        }
        self.entries
    }
}

const VISIT_COLUMNS: &str = "work_item_id, state, category, from_ms, to_ms";

/// The owner columns of each item's visits: the same on every row of an
/// item (its facts are written together), taken once per item.
const OWNER_COLUMNS: &str = "work_item_id, MIN(unit_id), MIN(portfolio_id), MIN(program_id), \
     MIN(team_id), MIN(level), MIN(item_type), MIN(flow_type)";

impl TreeRows {
    /// Reads visit rows (ordered by item, start and end) into entries.
    fn read_visits(&mut self, rows: &[QueryResult]) -> Result<(), DbErr> {
        let mut current: Option<(i64, EntryBuilder)> = None;
        for row in rows {
            let item: i64 = row.try_get_by_index(0)?;
            let state = self.states.code(&row.try_get_by_index::<String>(1)?);
            let category = self.categories.code(&row.try_get_by_index::<String>(2)?);
            let from: i64 = row.try_get_by_index(3)?;
            let to: i64 = row.try_get_by_index(4)?;
            if current.as_ref().is_none_or(|(id, _)| *id != item)
                && let Some((id, b)) = current.replace((item, EntryBuilder::default()))
            {
                self.entries.insert(id, b.finish());
            }
            if let Some((_, b)) = current.as_mut() {
                b.visit(from, to, state, category)?;
            }
        }
        if let Some((id, b)) = current {
            self.entries.insert(id, b.finish());
        }
        Ok(())
    }

    /// Reads rows of [`OWNER_COLUMNS`].
    fn read_owners(&mut self, rows: &[QueryResult]) -> Result<(), DbErr> {
        for row in rows {
            self.owners.insert(
                row.try_get_by_index(0)?,
                OwnerRow {
                    unit: row.try_get_by_index(1)?,
                    portfolio: row.try_get_by_index(2)?,
                    program: row.try_get_by_index(3)?,
                    team: row.try_get_by_index(4)?,
                    level: row.try_get_by_index(5)?,
                    item_type: row.try_get_by_index(6)?,
                    flow_type: row.try_get_by_index(7)?,
                },
            );
        }
        Ok(())
    }

    /// Reads the items, visits and owners the conditions of [`by_item`]
    /// select.
    async fn read(
        &mut self,
        db: &impl ConnectionTrait,
        ([mut a, mut b, mut c], [items, visits, owners]): ([Sql; 3], [String; 3]),
    ) -> Result<(), DbErr> {
        a.push(&format!(
            "SELECT id, parent_id FROM work_item WHERE {items}"
        ));
        for row in db.query_all_raw(a.statement()).await? {
            self.items
                .push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
        }
        b.push(&format!(
            "SELECT {VISIT_COLUMNS} FROM flow_state WHERE {visits} \
             ORDER BY work_item_id, from_ms, to_ms"
        ));
        self.read_visits(&db.query_all_raw(b.statement()).await?)?;
        c.push(&format!(
            "SELECT {OWNER_COLUMNS} FROM flow_state WHERE {owners} GROUP BY work_item_id"
        ));
        self.read_owners(&db.query_all_raw(c.statement()).await?)
    }
}

/// The three statements of [`TreeRows::read`] (items, visits, owners),
/// each with the condition `cond` binds on its item id column.
fn by_item(backend: DbBackend, cond: impl Fn(&mut Sql, &str) -> String) -> ([Sql; 3], [String; 3]) {
    let mut sqls = [Sql::new(backend), Sql::new(backend), Sql::new(backend)];
    let conds = [
        cond(&mut sqls[0], "id"),
        cond(&mut sqls[1], "work_item_id"),
        cond(&mut sqls[2], "work_item_id"),
    ];
    (sqls, conds)
}

fn slot(id: i64) -> Option<usize> {
    usize::try_from(id)
        .ok()
        .filter(|&i| u32::try_from(i).is_ok())
}

fn id_of(slot: u32) -> usize {
    slot as usize
}

impl Tree {
    /// Reads every item and visit, a range of ids at a time; `None` when
    /// the ids are too sparse to index or the visits overlap.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn load(db: &impl ConnectionTrait, dicts: &mut Dicts) -> Result<Option<Self>, DbErr> {
        let backend = db.get_database_backend();
        let mut count = Sql::new(backend);
        count.push("SELECT COUNT(*) AS n, MAX(id) AS m FROM work_item");
        let (n, max) = match db.query_one_raw(count.statement()).await? {
            Some(row) => (
                row.try_get::<i64>("", "n")?,
                row.try_get::<Option<i64>>("", "m")?.unwrap_or(0),
            ),
            None => (0, 0),
        };
        let n = usize::try_from(n).unwrap_or(0);
        let Some(max_slot) = slot(max).filter(|&m| m <= n * SPARSE + MARGIN) else {
            tracing::warn!(
                items = n,
                max_id = max,
                "item ids too sparse to hold the tree"
            );
            return Ok(None);
        };
        let mut tree = Self::default();
        tree.grow(max_slot);
        let mut lo = 0i64;
        while lo < max {
            let hi = lo.saturating_add(ID_STEP);
            let statements = by_item(backend, |sql, col| {
                let (a, b) = (sql.bind(lo), sql.bind(hi));
                format!("{col} > {a} AND {col} <= {b}")
            });
            let mut rows = TreeRows::default();
            let read = rows.read(db, statements).await;
            if let Err(e) = read.and_then(|()| tree.apply(&rows, &[], dicts)) {
                if matches!(e, DbErr::Custom(_)) {
                    tracing::warn!(error = %e, "the tree is not held");
                    return Ok(None);
                }
                return Err(e);
            }
            lo = hi;
        }
        tree.from.shrink_to_fit();
        tree.state.shrink_to_fit();
        tree.category.shrink_to_fit();
        Ok(Some(tree))
    }

    /// Reads the current rows of `items`; `None` when their visits overlap
    /// or an id cannot be indexed.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn fetch(
        db: &impl ConnectionTrait,
        items: &[i64],
    ) -> Result<Option<TreeRows>, DbErr> {
        if !items.iter().all(|&id| slot(id).is_some()) {
            return Ok(None);
        }
        let mut out = TreeRows::default();
        for chunk in items.chunks(ITEMS) {
            let statements = by_item(db.get_database_backend(), |sql, col| {
                let marks: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
                format!("{col} IN ({})", marks.join(", "))
            });
            match out.read(db, statements).await {
                Ok(()) => {}
                Err(DbErr::Custom(e)) => {
                    tracing::warn!(error = %e, "the tree is no longer held");
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(out))
    }

    fn grow(&mut self, max_slot: usize) {
        if self.present.len() > max_slot {
            return;
        }
        let n = max_slot + 1;
        self.present.resize(n, false);
        self.parent.resize(n, 0);
        self.first_child.resize(n, 0);
        self.next_sibling.resize(n, 0);
        self.at.resize(n, 0);
        self.len.resize(n, 0);
        for col in self.owners.codes_mut() {
            col.resize(n, 0);
        }
    }

    /// Puts `rows` in place: the items it names exist as read, and those of
    /// `gone` that it does not name no longer exist. Unit ids and names
    /// are coded in `dicts`.
    ///
    /// # Errors
    /// More states (65,535) or categories (255) than the arena codes.
    pub fn apply(&mut self, rows: &TreeRows, gone: &[i64], dicts: &mut Dicts) -> Result<(), DbErr> {
        // The codes of `rows`' names here.
        let mut states = vec![GAP; rows.states.len() + 1];
        for (code, name) in (1..).zip(rows.states.values()) {
            states[code] = u16::try_from(self.states.code(name))
                .map_err(|_| DbErr::Custom("too many states to hold".into()))?;
        }
        let mut categories = vec![0u8; rows.categories.len() + 1];
        for (code, name) in (1..).zip(rows.categories.values()) {
            let c = self.categories.code(name);
            categories[code] =
                u8::try_from(c).map_err(|_| DbErr::Custom("too many categories to hold".into()))?;
            if self.kinds.len() <= c as usize {
                self.kinds.resize(c as usize + 1, 0);
                self.kinds[c as usize] = progress_kind(name);
            }
        }
        let named: HashSet<i64> = rows.items.iter().map(|(id, _)| *id).collect();
        for &id in gone {
            if !named.contains(&id)
                && let Some(s) = slot(id)
                && s < self.present.len()
                && self.present[s]
            {
                self.detach(s);
                self.present[s] = false;
                self.write_entries(s, &[], &states, &categories);
                self.set_owners(s, None, dicts);
            }
        }
        for &(id, parent) in &rows.items {
            let Some(s) = slot(id) else { continue };
            self.grow(s);
            let parent = parent.and_then(slot).map_or(0, |p| {
                self.grow(p);
                p
            });
            if !self.present[s] || id_of(self.parent[s]) != parent {
                self.detach(s);
                self.attach(s, parent);
            }
            self.present[s] = true;
            let entries = rows.entries.get(&id).map_or(&[][..], Vec::as_slice);
            self.write_entries(s, entries, &states, &categories);
            self.set_owners(s, rows.owners.get(&id), dicts);
        }
        if self.garbage > self.from.len() / 2 && self.garbage > 1 << 16 {
            self.compact();
        }
        Ok(())
    }

    fn set_owners(&mut self, s: usize, row: Option<&OwnerRow>, dicts: &mut Dicts) {
        let o = &mut self.owners;
        let Some(r) = row else {
            for col in o.codes_mut() {
                col[s] = 0;
            }
            return;
        };
        let mut unit = |v: Option<i64>| v.map_or(0, |id| dicts.units.code(&id));
        o.unit[s] = unit(Some(r.unit));
        o.portfolio[s] = unit(r.portfolio);
        o.program[s] = unit(r.program);
        o.team[s] = unit(r.team);
        o.level[s] = dicts.names.code(&r.level);
        o.item_type[s] = dicts.names.code(&r.item_type);
        o.flow_type[s] = dicts.names.code(&r.flow_type);
    }

    fn detach(&mut self, s: usize) {
        let p = id_of(self.parent[s]);
        if p == 0 {
            return;
        }
        let s32 = self.parent_code(s);
        if self.first_child[p] == s32 {
            self.first_child[p] = self.next_sibling[s];
        } else {
            let mut c = id_of(self.first_child[p]);
            while c != 0 {
                if self.next_sibling[c] == s32 {
                    self.next_sibling[c] = self.next_sibling[s];
                    break;
                }
                c = id_of(self.next_sibling[c]);
            }
        }
        self.parent[s] = 0;
        self.next_sibling[s] = 0;
    }

    fn attach(&mut self, s: usize, parent: usize) {
        if parent == 0 {
            return;
        }
        self.parent[s] = self.parent_code(parent);
        self.next_sibling[s] = self.first_child[parent];
        self.first_child[parent] = self.parent_code(s);
    }

    /// The stored form of a slot (slots fit `u32` by [`slot`]).
    fn parent_code(&self, s: usize) -> u32 {
        u32::try_from(s).unwrap_or(0)
    }

    /// Writes the entries of slot `s`, their codes translated by `states`
    /// and `categories`.
    fn write_entries(&mut self, s: usize, entries: &[Entry], states: &[u16], categories: &[u8]) {
        let old = self.len[s] as usize;
        let at = if entries.len() <= old {
            self.garbage += old - entries.len();
            self.at[s] as usize
        } else {
            self.garbage += old;
            self.from.len()
        };
        for (i, &(from, state, category)) in entries.iter().enumerate() {
            let state = states.get(state as usize).copied().unwrap_or(GAP);
            let category = categories.get(category as usize).copied().unwrap_or(0);
            if at + i < self.from.len() {
                self.from[at + i] = from;
                self.state[at + i] = state;
                self.category[at + i] = category;
            } else {
                self.from.push(from);
                self.state.push(state);
                self.category.push(category);
            }
        }
        self.at[s] = u32::try_from(at).unwrap_or(u32::MAX);
        self.len[s] = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    }

    /// Rewrites the arena with only the entries in use.
    fn compact(&mut self) {
        let used = self.from.len() - self.garbage;
        let (mut from, mut state, mut category) = (
            Vec::with_capacity(used),
            Vec::with_capacity(used),
            Vec::with_capacity(used),
        );
        for s in 0..self.present.len() {
            let (at, len) = (self.at[s] as usize, self.len[s] as usize);
            let start = from.len();
            from.extend_from_slice(&self.from[at..at + len]);
            state.extend_from_slice(&self.state[at..at + len]);
            category.extend_from_slice(&self.category[at..at + len]);
            self.at[s] = u32::try_from(start).unwrap_or(u32::MAX);
        }
        self.from = from;
        self.state = state;
        self.category = category;
        self.garbage = 0;
    }

    /// The slot of item `id`, when it exists.
    pub fn slot_of(&self, id: i64) -> Option<usize> {
        slot(id).filter(|&s| s < self.present.len() && self.present[s])
    }

    /// Slots held, present or not (see [`Self::entries`]).
    pub fn slots(&self) -> usize {
        self.present.len()
    }

    /// The entries of slot `s` in order: starts, states and categories
    /// ([`GAP`] for none); each ends where the next starts, the last is
    /// open. Empty for a slot with no item.
    pub fn entries(&self, s: usize) -> (&[i64], &[u16], &[u8]) {
        let (at, len) = (self.at[s] as usize, self.len[s] as usize);
        (
            &self.from[at..at + len],
            &self.state[at..at + len],
            &self.category[at..at + len],
        )
    }

    /// What progress makes of the category of item slot `s` at `at`, and
    /// its unit code; `None` when it was in no state.
    fn state_at(&self, s: usize, at: i64) -> Option<(u8, u32)> {
        let (from, state, category) = self.entries(s);
        // Entries starting at one instant: the last is the state then
        // (the others are empty).
        let i = from.partition_point(|&f| f <= at).checked_sub(1)?;
        (state[i] != GAP).then(|| {
            let kind = self.kinds.get(category[i] as usize).copied().unwrap_or(0);
            (kind, self.owners.unit[s])
        })
    }

    /// The leaves below `roots` (an item without children is its own leaf),
    /// each counted once, by category at `at`; leaves in no state then
    /// (not yet created) and canceled ones are not counted. Open units are
    /// told by their ids in `units`.
    pub fn leaves(&self, roots: &[i64], at: i64, units: &Codes<i64>) -> LeafCounts {
        let mut out = LeafCounts::default();
        let mut seen = vec![0u64; self.present.len() / 64 + 1];
        let mut open = HashSet::new();
        let mut stack: Vec<usize> = roots.iter().filter_map(|&id| self.slot_of(id)).collect();
        while let Some(s) = stack.pop() {
            let (word, bit) = (s / 64, 1u64 << (s % 64));
            if seen[word] & bit != 0 {
                continue;
            }
            seen[word] |= bit;
            let mut c = id_of(self.first_child[s]);
            if c == 0 {
                match self.state_at(s, at) {
                    Some((DONE, _)) => out.done += 1,
                    Some((NEW, unit)) => {
                        out.not_started += 1;
                        open.insert(unit);
                    }
                    Some((IN_PROGRESS, unit)) => {
                        out.in_progress += 1;
                        open.insert(unit);
                    }
                    _ => {}
                }
                continue;
            }
            while c != 0 {
                stack.push(c);
                c = id_of(self.next_sibling[c]);
            }
        }
        out.open_units = open
            .into_iter()
            .filter_map(|code| units.value(code).copied())
            .collect();
        out.open_units.sort_unstable();
        out
    }

    /// Whether item `id` has no children.
    pub fn is_leaf(&self, id: i64) -> bool {
        slot(id)
            .and_then(|s| self.first_child.get(s))
            .is_none_or(|&c| c == 0)
    }

    /// Bytes the tree takes.
    pub fn bytes(&self) -> usize {
        let o = &self.owners;
        self.present.capacity()
            + (self.parent.capacity()
                + self.first_child.capacity()
                + self.next_sibling.capacity()
                + self.at.capacity()
                + self.len.capacity()
                + o.unit.capacity()
                + o.portfolio.capacity()
                + o.program.capacity()
                + o.team.capacity()
                + o.level.capacity()
                + o.item_type.capacity()
                + o.flow_type.capacity())
                * 4
            + self.from.capacity() * 8
            + self.state.capacity() * 2
            + self.category.capacity()
    }

    /// Items held.
    pub fn items(&self) -> usize {
        self.present.iter().filter(|p| **p).count()
    }

    /// Entries held (visits, and gaps between them).
    pub fn held_entries(&self) -> usize {
        self.from.len() - self.garbage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A visit: from, to, state, category.
    type Visit<'a> = (i64, i64, &'a str, &'a str);

    /// Rows of `items` with their visits, every item owned by unit 10 + id.
    fn rows(items: &[(i64, Option<i64>)], visits: &[(i64, &[Visit<'_>])]) -> TreeRows {
        let mut out = TreeRows {
            items: items.to_vec(),
            ..TreeRows::default()
        };
        for &(id, list) in visits {
            let mut b = EntryBuilder::default();
            for &(from, to, state, category) in list {
                let state = out.states.code(&state.to_owned());
                let category = out.categories.code(&category.to_owned());
                b.visit(from, to, state, category).unwrap();
            }
            out.entries.insert(id, b.finish());
            out.owners.insert(
                id,
                OwnerRow {
                    unit: 10 + id,
                    level: "TEAM".into(),
                    item_type: "STORY".into(),
                    flow_type: "FEATURE".into(),
                    ..OwnerRow::default()
                },
            );
        }
        out
    }

    #[test]
    fn visits_become_entries_and_gaps_show() {
        // Backlog 0..10, Ready 10..20, an empty visit at 20, Doing 20..30,
        // a gap 30..40, Done open from 40.
        let mut b = EntryBuilder::default();
        for (from, to, s) in [
            (0, 10, 1),
            (10, 20, 2),
            (20, 20, 3),
            (20, 30, 4),
            (40, OPEN, 5),
        ] {
            b.visit(from, to, s, s).unwrap();
        }
        assert_eq!(
            b.finish(),
            vec![
                (0, 1, 1),
                (10, 2, 2),
                (20, 3, 3),
                (20, 4, 4),
                (30, 0, 0),
                (40, 5, 5)
            ]
        );
        let mut b = EntryBuilder::default();
        b.visit(0, 10, 1, 1).unwrap();
        assert!(b.visit(5, 15, 2, 2).is_err());
        assert!(EntryBuilder::default().visit(5, 4, 1, 1).is_err());
        // A closed last visit ends in a gap.
        let mut b = EntryBuilder::default();
        b.visit(0, 10, 1, 1).unwrap();
        assert_eq!(b.finish(), vec![(0, 1, 1), (10, 0, 0)]);
    }

    #[test]
    fn leaves_are_counted_once_at_an_instant() {
        // 1 ─ 2 ─ {4, 5}; 1 ─ 3 (a leaf); 6 alone.
        let mut t = Tree::default();
        let mut d = Dicts::default();
        let open = OPEN;
        t.apply(
            &rows(
                &[
                    (1, None),
                    (2, Some(1)),
                    (3, Some(1)),
                    (4, Some(2)),
                    (5, Some(2)),
                    (6, None),
                ],
                &[
                    (3, &[(0, 50, "Backlog", "NEW"), (50, open, "Done", "DONE")]),
                    (
                        4,
                        &[
                            (0, 20, "Backlog", "NEW"),
                            (20, 20, "Done", "DONE"),
                            (20, open, "Doing", "ACTIVE"),
                        ],
                    ),
                    (5, &[(30, open, "Dropped", "CANCELED")]),
                    (6, &[(0, open, "Backlog", "NEW")]),
                ],
            ),
            &[],
            &mut d,
        )
        .unwrap();
        let at = |t: &Tree, d: &Dicts, roots: &[i64], at: i64| {
            let l = t.leaves(roots, at, &d.units);
            (l.done, l.in_progress, l.not_started, l.open_units)
        };
        assert_eq!(at(&t, &d, &[1], 10), (0, 0, 2, vec![13, 14]));
        // At 20 item 4 is in Doing: the empty Done visit does not count.
        assert_eq!(at(&t, &d, &[1], 20), (0, 1, 1, vec![13, 14]));
        assert_eq!(at(&t, &d, &[1], 60), (1, 1, 0, vec![14]));
        // Overlapping roots count a leaf once.
        assert_eq!(at(&t, &d, &[1, 2, 4, 6], 60), (1, 1, 1, vec![14, 16]));
        // Before anything existed.
        assert_eq!(at(&t, &d, &[1], -1), (0, 0, 0, vec![]));

        // 4 moves under 3: 3 is no longer a leaf, 2 becomes one (with no
        // state: not counted).
        t.apply(
            &rows(&[(4, Some(3))], &[(4, &[(0, open, "Done", "DONE")])]),
            &[],
            &mut d,
        )
        .unwrap();
        assert_eq!(at(&t, &d, &[1], 60), (1, 0, 0, vec![]));
        // 4 is deleted: 3 is a leaf again.
        t.apply(&TreeRows::default(), &[4], &mut d).unwrap();
        assert_eq!(at(&t, &d, &[1], 60), (1, 0, 0, vec![]));
        assert_eq!(at(&t, &d, &[3], 10), (0, 0, 1, vec![13]));
        assert_eq!(t.items(), 5);
        assert_eq!(t.owners.unit[4], 0, "a deleted item owns nothing");
        assert_eq!(t.held_entries(), 4);
    }

    #[test]
    fn rewritten_histories_reuse_or_move_their_entries() {
        let mut t = Tree::default();
        let mut d = Dicts::default();
        let open = OPEN;
        for round in 0..200_000i64 {
            let n = 1 + (round % 3);
            let visits: Vec<_> = (0..n)
                .map(|i| {
                    let to = if i + 1 == n { open } else { i * 10 + 10 };
                    (i * 10, to, "Backlog", "NEW")
                })
                .collect();
            let id = round % 5 + 1;
            t.apply(&rows(&[(id, None)], &[(id, &visits)]), &[], &mut d)
                .unwrap();
        }
        assert!(t.from.len() < 1 << 18, "the arena is compacted");
        assert_eq!(t.leaves(&[1, 2, 3, 4, 5], 0, &d.units).not_started, 5);
    }
}
