//! The work item tree and each item's state category over time, so that
//! delivery progress (DESIGN §3.7) walks the leaves below an item in
//! memory instead of a recursive query and a state lookup per leaf.
//!
//! Items are indexed by id (ids are dense: the tables number them), each
//! with its parent and its children as a linked list. An item's history is
//! a run of *spans*, each starting where the previous one ends, read from
//! its `flow_state` visits: consecutive visits in the same category and
//! unit make one span, and a gap between visits (none is written today) is
//! a span in which the item is in no state. The last span is open. Spans
//! live in one arena; an item whose history grew is written again at its
//! end, and the arena is compacted when half of it is garbage.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbErr, QueryResult};

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

/// A span's category code; [`GAP`] is "in no state".
const GAP: u8 = 0;
const NEW: u8 = 1;
const IN_PROGRESS: u8 = 2;
const DONE: u8 = 3;
const CANCELED: u8 = 4;

fn category_code(category: &str) -> u8 {
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

/// The tree and the spans of every item.
#[derive(Debug, Default)]
pub struct Tree {
    /// Per id: whether a work item has that id.
    present: Vec<bool>,
    /// Per id: parent, first child and next sibling ids; 0 for none.
    parent: Vec<u32>,
    first_child: Vec<u32>,
    next_sibling: Vec<u32>,
    /// Per id: where its spans are in the arena, and how many.
    at: Vec<u32>,
    len: Vec<u16>,
    /// The arena: a span's start, its unit and its category.
    from: Vec<i64>,
    unit: Vec<i64>,
    category: Vec<u8>,
    /// Arena slots no item uses.
    garbage: usize,
}

/// The tree rows of some items, read from the database.
#[derive(Debug, Default)]
pub struct TreeRows {
    /// `(id, parent)` of the items that exist.
    items: Vec<(i64, Option<i64>)>,
    /// Spans of each item, in order.
    spans: HashMap<i64, Vec<Span>>,
}

/// A span: its start, its unit and its category code.
type Span = (i64, i64, u8);

/// One item's visits turned into spans.
#[derive(Default)]
struct SpanBuilder {
    spans: Vec<Span>,
    /// Where the last visit ended.
    end: Option<i64>,
}

impl SpanBuilder {
    /// Adds a visit `[from, to)`; `Err` when it overlaps the previous one
    /// (the SQL path would count the item twice: leave it to SQL).
    fn visit(&mut self, from: i64, to: i64, unit: i64, category: u8) -> Result<(), DbErr> {
        if from >= to {
            return Ok(());
        }
        if let Some(end) = self.end {
            if from < end {
                return Err(DbErr::Custom("overlapping state visits".into()));
            }
            if from > end {
                self.spans.push((end, 0, GAP));
            }
        }
        match self.spans.last() {
            Some(&(_, u, c)) if u == unit && c == category && self.end == Some(from) => {}
            _ => self.spans.push((from, unit, category)),
        }
        self.end = Some(to);
        Ok(())
    }

    fn finish(mut self) -> Vec<Span> {
        if let Some(end) = self.end
            && end < OPEN
        {
            self.spans.push((end, 0, GAP));
        }
        self.spans
    }
}

const VISIT_COLUMNS: &str = "work_item_id, unit_id, category, from_ms, to_ms";

/// Reads visit rows (ordered by item and start) into spans per item.
fn spans_of(rows: &[QueryResult]) -> Result<HashMap<i64, Vec<Span>>, DbErr> {
    let mut out = HashMap::new();
    let mut current: Option<(i64, SpanBuilder)> = None;
    for row in rows {
        let item: i64 = row.try_get_by_index(0)?;
        let unit: i64 = row.try_get_by_index(1)?;
        let category: String = row.try_get_by_index(2)?;
        let from: i64 = row.try_get_by_index(3)?;
        let to: i64 = row.try_get_by_index(4)?;
        if current.as_ref().is_none_or(|(id, _)| *id != item)
            && let Some((id, b)) = current.replace((item, SpanBuilder::default()))
        {
            out.insert(id, b.finish());
        }
        if let Some((_, b)) = current.as_mut() {
            b.visit(from, to, unit, category_code(&category))?;
        }
    }
    if let Some((id, b)) = current {
        out.insert(id, b.finish());
    }
    Ok(out)
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
    pub async fn load(db: &impl ConnectionTrait) -> Result<Option<Self>, DbErr> {
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
            let mut items = Sql::new(backend);
            let (a, b) = (items.bind(lo), items.bind(hi));
            items.push(&format!(
                "SELECT id, parent_id FROM work_item WHERE id > {a} AND id <= {b}"
            ));
            let mut rows = TreeRows::default();
            for row in db.query_all_raw(items.statement()).await? {
                rows.items
                    .push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
            }
            let mut visits = Sql::new(backend);
            let (a, b) = (visits.bind(lo), visits.bind(hi));
            visits.push(&format!(
                "SELECT {VISIT_COLUMNS} FROM flow_state \
                 WHERE work_item_id > {a} AND work_item_id <= {b} \
                 ORDER BY work_item_id, from_ms, to_ms"
            ));
            match spans_of(&db.query_all_raw(visits.statement()).await?) {
                Ok(spans) => rows.spans = spans,
                Err(e) => {
                    tracing::warn!(error = %e, "the tree is not held");
                    return Ok(None);
                }
            }
            tree.apply(&rows, &[]);
            lo = hi;
        }
        tree.from.shrink_to_fit();
        tree.unit.shrink_to_fit();
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
            let mut sql = Sql::new(db.get_database_backend());
            let marks: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
            sql.push(&format!(
                "SELECT id, parent_id FROM work_item WHERE id IN ({})",
                marks.join(", ")
            ));
            for row in db.query_all_raw(sql.statement()).await? {
                out.items
                    .push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
            }
            let mut sql = Sql::new(db.get_database_backend());
            let marks: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
            sql.push(&format!(
                "SELECT {VISIT_COLUMNS} FROM flow_state WHERE work_item_id IN ({}) \
                 ORDER BY work_item_id, from_ms, to_ms",
                marks.join(", ")
            ));
            match spans_of(&db.query_all_raw(sql.statement()).await?) {
                Ok(spans) => out.spans.extend(spans),
                Err(e) => {
                    tracing::warn!(error = %e, "the tree is no longer held");
                    return Ok(None);
                }
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
    }

    /// Puts `rows` in place: the items it names exist as read, and those of
    /// `gone` that it does not name no longer exist.
    pub fn apply(&mut self, rows: &TreeRows, gone: &[i64]) {
        let named: HashSet<i64> = rows.items.iter().map(|(id, _)| *id).collect();
        for &id in gone {
            if !named.contains(&id)
                && let Some(s) = slot(id)
                && s < self.present.len()
                && self.present[s]
            {
                self.detach(s);
                self.present[s] = false;
                self.write_spans(s, &[]);
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
            let spans = rows.spans.get(&id).map_or(&[][..], Vec::as_slice);
            self.write_spans(s, spans);
        }
        if self.garbage > self.from.len() / 2 && self.garbage > 1 << 16 {
            self.compact();
        }
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

    fn write_spans(&mut self, s: usize, spans: &[Span]) {
        let old = usize::from(self.len[s]);
        let spans = &spans[..spans.len().min(usize::from(u16::MAX))];
        let at = if spans.len() <= old {
            self.garbage += old - spans.len();
            self.at[s] as usize
        } else {
            self.garbage += old;
            self.from.len()
        };
        for (i, &(from, unit, category)) in spans.iter().enumerate() {
            if at + i < self.from.len() {
                self.from[at + i] = from;
                self.unit[at + i] = unit;
                self.category[at + i] = category;
            } else {
                self.from.push(from);
                self.unit.push(unit);
                self.category.push(category);
            }
        }
        self.at[s] = u32::try_from(at).unwrap_or(u32::MAX);
        self.len[s] = u16::try_from(spans.len()).unwrap_or(u16::MAX);
    }

    /// Rewrites the arena with only the spans in use.
    fn compact(&mut self) {
        let used = self.from.len() - self.garbage;
        let (mut from, mut unit, mut category) = (
            Vec::with_capacity(used),
            Vec::with_capacity(used),
            Vec::with_capacity(used),
        );
        for s in 0..self.present.len() {
            let (at, len) = (self.at[s] as usize, usize::from(self.len[s]));
            let start = from.len();
            from.extend_from_slice(&self.from[at..at + len]);
            unit.extend_from_slice(&self.unit[at..at + len]);
            category.extend_from_slice(&self.category[at..at + len]);
            self.at[s] = u32::try_from(start).unwrap_or(u32::MAX);
        }
        self.from = from;
        self.unit = unit;
        self.category = category;
        self.garbage = 0;
    }

    /// The category and unit of item slot `s` at `at`, `None` when it was
    /// in no state.
    fn state_at(&self, s: usize, at: i64) -> Option<(u8, i64)> {
        let start = self.at[s] as usize;
        let spans = &self.from[start..start + usize::from(self.len[s])];
        let i = spans.partition_point(|&f| f <= at).checked_sub(1)?;
        let c = self.category[start + i];
        (c != GAP).then(|| (c, self.unit[start + i]))
    }

    /// The leaves below `roots` (an item without children is its own leaf),
    /// each counted once, by category at `at`; leaves in no state then
    /// (not yet created) and canceled ones are not counted.
    pub fn leaves(&self, roots: &[i64], at: i64) -> LeafCounts {
        let mut out = LeafCounts::default();
        let mut seen = vec![0u64; self.present.len() / 64 + 1];
        let mut open = HashSet::new();
        let mut stack: Vec<usize> = roots
            .iter()
            .filter_map(|&id| slot(id))
            .filter(|&s| s < self.present.len() && self.present[s])
            .collect();
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
        out.open_units = open.into_iter().collect();
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
        self.present.capacity()
            + (self.parent.capacity()
                + self.first_child.capacity()
                + self.next_sibling.capacity()
                + self.at.capacity())
                * 4
            + self.len.capacity() * 2
            + (self.from.capacity() + self.unit.capacity()) * 8
            + self.category.capacity()
    }

    /// Items held.
    pub fn items(&self) -> usize {
        self.present.iter().filter(|p| **p).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(items: &[(i64, Option<i64>)], spans: &[(i64, Vec<Span>)]) -> TreeRows {
        TreeRows {
            items: items.to_vec(),
            spans: spans.iter().cloned().collect(),
        }
    }

    fn built(visits: &[(i64, i64, i64, u8)]) -> Vec<Span> {
        let mut b = SpanBuilder::default();
        for &(from, to, unit, c) in visits {
            b.visit(from, to, unit, c).unwrap();
        }
        b.finish()
    }

    #[test]
    fn visits_merge_into_spans_and_gaps_show() {
        // NEW 0..10, NEW 10..20 (same unit) merge; IN_PROGRESS from 20;
        // an empty visit is skipped; a gap 30..40; DONE open from 40.
        let spans = built(&[
            (0, 10, 7, NEW),
            (10, 20, 7, NEW),
            (20, 20, 7, CANCELED),
            (20, 30, 7, IN_PROGRESS),
            (40, OPEN, 7, DONE),
        ]);
        assert_eq!(
            spans,
            vec![
                (0, 7, NEW),
                (20, 7, IN_PROGRESS),
                (30, 0, GAP),
                (40, 7, DONE)
            ]
        );
        let mut b = SpanBuilder::default();
        b.visit(0, 10, 1, NEW).unwrap();
        assert!(b.visit(5, 15, 1, DONE).is_err());
    }

    #[test]
    fn leaves_are_counted_once_at_an_instant() {
        // 1 ─ 2 ─ {4, 5}; 1 ─ 3 (a leaf); 6 alone.
        let mut t = Tree::default();
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
                    (3, built(&[(0, 50, 10, NEW), (50, open, 10, DONE)])),
                    (4, built(&[(0, 20, 11, NEW), (20, open, 11, IN_PROGRESS)])),
                    (5, built(&[(30, open, 12, CANCELED)])),
                    (6, built(&[(0, open, 13, NEW)])),
                ],
            ),
            &[],
        );
        fn at(t: &Tree, roots: &[i64], at: i64) -> (u64, u64, u64, Vec<i64>) {
            let l = t.leaves(roots, at);
            (l.done, l.in_progress, l.not_started, l.open_units)
        }
        assert_eq!(at(&t, &[1], 10), (0, 0, 2, vec![10, 11]));
        assert_eq!(at(&t, &[1], 60), (1, 1, 0, vec![11]));
        // Overlapping roots count a leaf once.
        assert_eq!(at(&t, &[1, 2, 4, 6], 60), (1, 1, 1, vec![11, 13]));
        // Before anything existed.
        assert_eq!(at(&t, &[1], -1), (0, 0, 0, vec![]));

        // 4 moves under 3: 3 is no longer a leaf, 2 becomes one (with no
        // state: not counted).
        t.apply(
            &rows(&[(4, Some(3))], &[(4, built(&[(0, open, 11, DONE)]))]),
            &[],
        );
        assert_eq!(at(&t, &[1], 60), (1, 0, 0, vec![]));
        // 4 is deleted: 3 is a leaf again.
        t.apply(&TreeRows::default(), &[4]);
        assert_eq!(at(&t, &[1], 60), (1, 0, 0, vec![]));
        assert_eq!(at(&t, &[3], 10), (0, 0, 1, vec![10]));
        assert_eq!(t.items(), 5);
    }

    #[test]
    fn rewritten_histories_reuse_or_move_their_spans() {
        let mut t = Tree::default();
        let open = OPEN;
        for round in 0..200_000i64 {
            let n = 1 + (round % 3);
            let visits: Vec<_> = (0..n)
                .map(|i| (i * 10, if i + 1 == n { open } else { i * 10 + 10 }, 1, NEW))
                .collect();
            t.apply(
                &rows(&[(round % 5 + 1, None)], &[(round % 5 + 1, built(&visits))]),
                &[],
            );
        }
        assert!(t.from.len() < 1 << 18, "the arena is compacted");
        assert_eq!(t.leaves(&[1, 2, 3, 4, 5], 0).not_started, 5);
    }
}
