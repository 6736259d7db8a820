//! The delivery facts (DESIGN §3.5) in memory: successful production
//! deployments, changes at their first such deployment, incidents and
//! releases, each kept by its row id, so that delivery metrics are one pass
//! over each instead of four grouped statements.
//!
//! The numbers are those of the SQL path
//! ([`crate::service::metrics::delivery`]): instants become milliseconds
//! the way its statements turn them (truncated on PostgreSQL; rounded to
//! the nearest on SQLite, as its date functions do), durations are their
//! differences, means are exact sums over counts, percentiles are found by
//! selection.
//!
//! A written deployment can change other rows' delivery facts (the first
//! deployment of the changes it ships or shipped, the cause of its unit's
//! incidents, `service::facts::delivery`), so it reads those again too:
//! the ones the database links to it now and the ones memory linked to it
//! before.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult};

use super::columns::Codes;
use super::compute::distribution;
use crate::service::facts::delivery::{PRODUCTION, SUCCESS};
use crate::service::metrics::delivery::{Breakdown, Counted};
use crate::service::sql::Sql;

/// `delivery_change` kinds (`service::facts::delivery::kind_code`).
pub const DEPLOYMENT: i32 = 1;
pub const CHANGE: i32 = 2;
pub const INCIDENT: i32 = 3;
pub const RELEASE: i32 = 4;

/// Rows read per statement while loading.
const PAGE: i64 = 50_000;
/// Ids per statement while refreshing.
const IDS: usize = 1000;
const DAY_MS: i64 = 86_400_000;

/// A successful production deployment.
#[derive(Clone, Copy, Debug)]
struct Deployment {
    unit: u32,
    finished: i64,
}

/// A change with a first successful production deployment, with that
/// deployment's unit and instant (read again whenever the deployment is).
#[derive(Clone, Copy, Debug)]
struct Change {
    first_deployment: i64,
    unit: u32,
    deployed: i64,
    first_commit: Option<i64>,
    opened: Option<i64>,
    merged: i64,
}

#[derive(Clone, Copy, Debug)]
struct Incident {
    unit: u32,
    opened: i64,
    resolved: Option<i64>,
    cause: Option<i64>,
}

#[derive(Clone, Copy, Debug)]
struct Release {
    unit: u32,
    released: i64,
    items: u32,
}

/// Rows by id, in no order: removing one swaps the last into its place.
#[derive(Debug)]
struct Rows<T> {
    ids: Vec<i64>,
    rows: Vec<T>,
    at: HashMap<i64, usize>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            rows: Vec::new(),
            at: HashMap::new(),
        }
    }
}

impl<T> Rows<T> {
    fn remove(&mut self, id: i64) {
        let Some(i) = self.at.remove(&id) else { return };
        self.ids.swap_remove(i);
        self.rows.swap_remove(i);
        if let Some(&moved) = self.ids.get(i) {
            self.at.insert(moved, i);
        }
    }

    fn put(&mut self, id: i64, row: T) {
        if let Some(&i) = self.at.get(&id) {
            self.rows[i] = row;
            return;
        }
        self.at.insert(id, self.rows.len());
        self.ids.push(id);
        self.rows.push(row);
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn bytes(&self) -> usize {
        // The index: a key, a value and a control byte per entry, roughly.
        self.ids.capacity() * 8
            + self.rows.capacity() * std::mem::size_of::<T>()
            + self.at.capacity() * 17
    }
}

/// Every delivery fact of the organisation.
#[derive(Debug, Default)]
pub struct DeliveryFacts {
    units: Codes<i64>,
    deployments: Rows<Deployment>,
    changes: Rows<Change>,
    incidents: Rows<Incident>,
    releases: Rows<Release>,
}

/// Delivery rows read again: for each kind, the ids asked for (a row not
/// found is gone) and the rows found, each with its id and its unit's id
/// (coded when put in place).
#[derive(Debug, Default)]
pub struct DeliveryRows {
    asked: [Vec<i64>; 4],
    deployments: Vec<(i64, i64, Deployment)>,
    changes: Vec<(i64, i64, Change)>,
    incidents: Vec<(i64, i64, Incident)>,
    releases: Vec<(i64, i64, Release)>,
}

/// An instant as the SQL path's millisecond arithmetic sees it.
fn instant_ms(t: DateTime<Utc>, backend: DbBackend) -> i64 {
    if backend == DbBackend::Sqlite {
        // SQLite's date functions keep whole milliseconds, rounded.
        (t.timestamp_micros() + 500).div_euclid(1000)
    } else {
        t.timestamp_millis()
    }
}

fn ms_at(row: &QueryResult, i: usize, backend: DbBackend) -> Result<i64, DbErr> {
    Ok(instant_ms(row.try_get_by_index(i)?, backend))
}

fn opt_ms_at(row: &QueryResult, i: usize, backend: DbBackend) -> Result<Option<i64>, DbErr> {
    Ok(row
        .try_get_by_index::<Option<DateTime<Utc>>>(i)?
        .map(|t| instant_ms(t, backend)))
}

/// The statements reading each kind's rows, `{cond}` standing for the
/// condition on its id.
fn select(kind: i32) -> &'static str {
    match kind {
        DEPLOYMENT => {
            "SELECT id, unit_id, finished_at FROM deployment \
             WHERE {cond} AND environment = {env} AND status = {ok}"
        }
        CHANGE => {
            "SELECT c.id, c.first_deployment_id, d.unit_id, d.finished_at, \
             c.first_commit_at, c.opened_at, c.merged_at \
             FROM change c JOIN deployment d ON d.id = c.first_deployment_id \
             WHERE {cond} AND d.environment = {env} AND d.status = {ok}"
        }
        INCIDENT => {
            "SELECT id, unit_id, opened_at, resolved_at, cause_deployment_id FROM incident \
             WHERE {cond}"
        }
        _ => {
            "SELECT r.id, r.unit_id, r.released_at, \
             (SELECT COUNT(*) FROM release_work_item w WHERE w.release_id = r.id) \
             FROM release r WHERE {cond}"
        }
    }
}

fn table_id(kind: i32) -> &'static str {
    match kind {
        CHANGE => "c.id",
        RELEASE => "r.id",
        _ => "id",
    }
}

impl DeliveryRows {
    fn read(&mut self, kind: i32, rows: &[QueryResult], backend: DbBackend) -> Result<(), DbErr> {
        for row in rows {
            let id: i64 = row.try_get_by_index(0)?;
            match kind {
                DEPLOYMENT => self.deployments.push((
                    id,
                    row.try_get_by_index(1)?,
                    Deployment {
                        unit: 0,
                        finished: ms_at(row, 2, backend)?,
                    },
                )),
                CHANGE => self.changes.push((
                    id,
                    row.try_get_by_index(2)?,
                    Change {
                        first_deployment: row.try_get_by_index(1)?,
                        unit: 0,
                        deployed: ms_at(row, 3, backend)?,
                        first_commit: opt_ms_at(row, 4, backend)?,
                        opened: opt_ms_at(row, 5, backend)?,
                        merged: ms_at(row, 6, backend)?,
                    },
                )),
                INCIDENT => self.incidents.push((
                    id,
                    row.try_get_by_index(1)?,
                    Incident {
                        unit: 0,
                        opened: ms_at(row, 2, backend)?,
                        resolved: opt_ms_at(row, 3, backend)?,
                        cause: row.try_get_by_index(4)?,
                    },
                )),
                _ => self.releases.push((
                    id,
                    row.try_get_by_index(1)?,
                    Release {
                        unit: 0,
                        released: ms_at(row, 2, backend)?,
                        items: u32::try_from(row.try_get_by_index::<i64>(3)?).unwrap_or(u32::MAX),
                    },
                )),
            }
        }
        Ok(())
    }

    /// Reads the rows of `ids` of `kind`.
    async fn read_ids(
        &mut self,
        db: &impl ConnectionTrait,
        kind: i32,
        ids: &[i64],
    ) -> Result<(), DbErr> {
        let backend = db.get_database_backend();
        for chunk in ids.chunks(IDS) {
            let mut sql = Sql::new(backend);
            let marks: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
            let cond = format!("{} IN ({})", table_id(kind), marks.join(", "));
            let text = fill(&mut sql, select(kind), &cond);
            sql.push(&text);
            self.read(kind, &db.query_all_raw(sql.statement()).await?, backend)?;
        }
        Ok(())
    }
}

/// `template` with its condition and the deployment filter bound.
fn fill(sql: &mut Sql, template: &str, cond: &str) -> String {
    let mut text = template.replace("{cond}", cond);
    if text.contains("{env}") {
        let env = sql.bind(PRODUCTION);
        let ok = sql.bind(SUCCESS);
        text = text.replace("{env}", &env).replace("{ok}", &ok);
    }
    text
}

/// Ids a query returns in its first column.
async fn ids_of(db: &impl ConnectionTrait, sql: Sql) -> Result<Vec<i64>, DbErr> {
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0))
        .collect()
}

impl DeliveryFacts {
    /// Every row, a page at a time by id.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn load(db: &impl ConnectionTrait) -> Result<Self, DbErr> {
        let backend = db.get_database_backend();
        let mut rows = DeliveryRows::default();
        for kind in [DEPLOYMENT, CHANGE, INCIDENT, RELEASE] {
            let mut after = 0i64;
            loop {
                let mut sql = Sql::new(backend);
                let from = sql.bind(after);
                let limit = sql.bind(PAGE);
                let id = table_id(kind);
                let text = fill(&mut sql, select(kind), &format!("{id} > {from}"));
                sql.push(&format!("{text} ORDER BY {id} LIMIT {limit}"));
                let page = db.query_all_raw(sql.statement()).await?;
                let Some(last) = page.last() else { break };
                after = last.try_get_by_index(0)?;
                rows.read(kind, &page, backend)?;
                if page.len() < PAGE as usize {
                    break;
                }
            }
        }
        let mut facts = Self::default();
        facts.replace(&rows);
        Ok(facts)
    }

    /// What memory links to the deployments among `keys`: the changes
    /// whose first deployment and the incidents whose cause is one of
    /// them, as keys to read again.
    pub fn held_related(&self, keys: &[(i32, i64)]) -> Vec<(i32, i64)> {
        let deployed: HashSet<i64> = keys
            .iter()
            .filter(|(k, _)| *k == DEPLOYMENT)
            .map(|(_, id)| *id)
            .collect();
        if deployed.is_empty() {
            return Vec::new();
        }
        let changes = self
            .changes
            .ids
            .iter()
            .zip(&self.changes.rows)
            .filter(|(_, c)| deployed.contains(&c.first_deployment))
            .map(|(id, _)| (CHANGE, *id));
        let incidents = self
            .incidents
            .ids
            .iter()
            .zip(&self.incidents.rows)
            .filter(|(_, i)| i.cause.is_some_and(|d| deployed.contains(&d)))
            .map(|(id, _)| (INCIDENT, *id));
        changes.chain(incidents).collect()
    }

    /// Reads again the rows of `keys` (`(kind, id)`) and of `held` (from
    /// [`Self::held_related`]), and for each deployment the changes and
    /// incidents the database links to it now.
    ///
    /// # Errors
    /// Database errors only.
    pub async fn fetch(
        db: &impl ConnectionTrait,
        keys: &[(i32, i64)],
        held: &[(i32, i64)],
    ) -> Result<DeliveryRows, DbErr> {
        let backend = db.get_database_backend();
        let mut asked: [Vec<i64>; 4] = Default::default();
        for &(kind, id) in keys.iter().chain(held) {
            if let Some(list) = usize::try_from(kind - 1)
                .ok()
                .and_then(|k| asked.get_mut(k))
            {
                list.push(id);
            }
        }
        let deployed = asked[0].clone();
        for chunk in deployed.chunks(IDS) {
            let mut sql = Sql::new(backend);
            let a: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
            let b: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
            sql.push(&format!(
                "SELECT change_id FROM deployment_change WHERE deployment_id IN ({}) \
                 UNION SELECT id FROM change WHERE first_deployment_id IN ({})",
                a.join(", "),
                b.join(", ")
            ));
            asked[1].extend(ids_of(db, sql).await?);
            let mut sql = Sql::new(backend);
            let a: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
            let b: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
            sql.push(&format!(
                "SELECT id FROM incident WHERE unit_id IN \
                   (SELECT unit_id FROM deployment WHERE id IN ({})) \
                 UNION SELECT id FROM incident WHERE cause_deployment_id IN ({})",
                a.join(", "),
                b.join(", ")
            ));
            asked[2].extend(ids_of(db, sql).await?);
        }
        let mut rows = DeliveryRows::default();
        for (k, list) in asked.iter_mut().enumerate() {
            list.sort_unstable();
            list.dedup();
            let kind = i32::try_from(k + 1).unwrap_or(RELEASE);
            rows.read_ids(db, kind, list).await?;
        }
        rows.asked = asked;
        Ok(rows)
    }

    /// Puts `rows` in place of the rows asked for.
    pub fn replace(&mut self, rows: &DeliveryRows) {
        for id in &rows.asked[0] {
            self.deployments.remove(*id);
        }
        for id in &rows.asked[1] {
            self.changes.remove(*id);
        }
        for id in &rows.asked[2] {
            self.incidents.remove(*id);
        }
        for id in &rows.asked[3] {
            self.releases.remove(*id);
        }
        for &(id, unit, d) in &rows.deployments {
            let unit = self.units.code(&unit);
            self.deployments.put(id, Deployment { unit, ..d });
        }
        for &(id, unit, c) in &rows.changes {
            let unit = self.units.code(&unit);
            self.changes.put(id, Change { unit, ..c });
        }
        for &(id, unit, i) in &rows.incidents {
            let unit = self.units.code(&unit);
            self.incidents.put(id, Incident { unit, ..i });
        }
        for &(id, unit, r) in &rows.releases {
            let unit = self.units.code(&unit);
            self.releases.put(id, Release { unit, ..r });
        }
    }

    /// The unit ids coded, the one coded 1 first.
    pub fn units(&self) -> &[i64] {
        self.units.values()
    }

    /// The code of unit `id`, `None` when no row is of it.
    pub fn unit_code(&self, id: i64) -> Option<usize> {
        self.units.get(&id).map(|c| c as usize)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.deployments.bytes()
            + self.changes.bytes()
            + self.incidents.bytes()
            + self.releases.bytes()
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.deployments.len() + self.changes.len() + self.incidents.len() + self.releases.len()
    }

    /// What the delivery metrics count for each of `groups` groups over
    /// `[from, to)` (epoch ms): `member[code]` lists the groups the unit
    /// coded `code` counts for (its own, or an ancestor's).
    pub fn count(
        &self,
        member: &[Vec<usize>],
        groups: usize,
        (from, to): (i64, i64),
    ) -> Vec<Counted> {
        let of = |unit: u32| member.get(unit as usize).map_or(&[][..], Vec::as_slice);
        let mut out: Vec<Acc> = (0..groups).map(|_| Acc::default()).collect();
        // The units of the incidents each deployment caused, for the
        // incidents that count for some group.
        let mut caused: HashMap<i64, Vec<u32>> = HashMap::new();
        for i in &self.incidents.rows {
            if let Some(d) = i.cause
                && !of(i.unit).is_empty()
            {
                caused.entry(d).or_default().push(i.unit);
            }
        }
        for (id, d) in self.deployments.ids.iter().zip(&self.deployments.rows) {
            let groups = of(d.unit);
            if groups.is_empty() || d.finished < from || d.finished >= to {
                continue;
            }
            for &g in groups {
                let a = &mut out[g];
                a.deployments += 1;
                a.days.push(d.finished.div_euclid(DAY_MS));
                let hit = caused
                    .get(id)
                    .is_some_and(|units| units.iter().any(|&u| of(u).contains(&g)));
                if hit {
                    a.caused += 1;
                }
            }
        }
        for c in &self.changes.rows {
            let groups = of(c.unit);
            if groups.is_empty() || c.deployed < from || c.deployed >= to {
                continue;
            }
            let lead = c.deployed - c.first_commit.unwrap_or(c.merged);
            let coding = c.opened.zip(c.first_commit).map(|(o, f)| o - f);
            let review = c.opened.map(|o| c.merged - o);
            let deploy = c.deployed - c.merged;
            for &g in groups {
                let a = &mut out[g];
                a.lead.push(lead);
                a.lead_sum += i128::from(lead);
                a.coding.add(coding);
                a.review.add(review);
                a.deploy.add(Some(deploy));
            }
        }
        for i in &self.incidents.rows {
            let Some(resolved) = i.resolved.filter(|r| *r >= from && *r < to) else {
                continue;
            };
            let restore = resolved - i.opened;
            for &g in of(i.unit) {
                out[g].restore.push(restore);
                out[g].restore_sum += i128::from(restore);
            }
        }
        for r in &self.releases.rows {
            if r.released < from || r.released >= to {
                continue;
            }
            for &g in of(r.unit) {
                out[g].releases += 1;
                out[g].delivered += r.items as usize;
            }
        }
        out.into_iter().map(Acc::finish).collect()
    }
}

/// An exact mean of milliseconds, in seconds.
#[derive(Default)]
struct Mean {
    sum: i128,
    n: usize,
}

impl Mean {
    fn add(&mut self, v: Option<i64>) {
        if let Some(v) = v {
            self.sum += i128::from(v);
            self.n += 1;
        }
    }

    /// As `CAST(SUM(ms) AS DOUBLE PRECISION) / 1000 / COUNT(ms)`.
    fn seconds(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / 1000.0 / self.n as f64)
    }
}

/// What one group gathers.
#[derive(Default)]
struct Acc {
    deployments: usize,
    days: Vec<i64>,
    caused: usize,
    lead: Vec<i64>,
    lead_sum: i128,
    coding: Mean,
    review: Mean,
    deploy: Mean,
    restore: Vec<i64>,
    restore_sum: i128,
    releases: usize,
    delivered: usize,
}

impl Acc {
    fn finish(mut self) -> Counted {
        self.days.sort_unstable();
        self.days.dedup();
        Counted {
            deployments: self.deployments,
            days: self.days.len(),
            caused: self.caused,
            lead: distribution(self.lead, self.lead_sum),
            breakdown: Breakdown {
                coding: self.coding.seconds(),
                review: self.review.seconds(),
                deploy: self.deploy.seconds(),
            },
            restore: distribution(self.restore, self.restore_sum),
            releases: self.releases,
            delivered: self.delivered,
        }
    }
}
