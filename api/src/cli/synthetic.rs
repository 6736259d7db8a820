//! `gemba seed synthetic`: a large organisation for measuring metrics at
//! scale (DESIGN §7): portfolios × programs × teams, a million work items
//! with about eight transitions each over two years, their flow facts, and
//! the changes, deployments and incidents behind the delivery metrics.
//!
//! Histories follow the default workflow with rework loops, blocked spells
//! and cancellations; dwell times are exponential with per-state means.
//! The generator is deterministic for a given `--seed`, and it writes rows
//! in bulk (PostgreSQL: one `UNNEST` insert per table and chunk).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, TimeDelta, Utc};
use entity::{change, deployment, deployment_change, incident, unit, work_item};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Set, TransactionTrait,
};

use crate::domain::UnitKind;
use crate::service::facts::flow::{self as facts, Item, Line, ms};
use crate::service::pg::{bigints, opt_bigints, statement, texts, times};
use crate::service::{rank, units};

/// The shape and size of the organisation.
#[derive(Clone, Debug)]
pub struct Options {
    pub portfolios: usize,
    pub programs: usize,
    pub teams: usize,
    pub items: usize,
    pub days: i64,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            portfolios: 10,
            programs: 10,
            teams: 10,
            items: 1_000_000,
            days: 730,
            seed: 42,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub units: usize,
    pub items: usize,
    pub transitions: usize,
    pub deployments: usize,
    pub changes: usize,
    pub incidents: usize,
    pub seconds: f64,
}

/// States of the default workflow with their categories.
const STATES: &[(&str, &str)] = &[
    ("Backlog", "NEW"),
    ("In Progress", "ACTIVE"),
    ("In Review", "WAITING"),
    ("Blocked", "WAITING"),
    ("Testing", "ACTIVE"),
    ("Done", "DONE"),
    ("Canceled", "CANCELED"),
];

fn category(state: &str) -> &'static str {
    STATES
        .iter()
        .find(|(s, _)| *s == state)
        .map_or("NEW", |(_, c)| c)
}

/// Mean dwell in days per state, for team-level work; epics and features
/// move about five times slower.
fn mean_days(state: &str) -> f64 {
    match state {
        "Backlog" => 12.0,
        "In Progress" => 3.0,
        "In Review" => 1.0,
        "Blocked" => 2.5,
        "Testing" => 1.5,
        _ => 1.0,
    }
}

/// Items written per transaction.
const FLUSH_ITEMS: usize = 20_000;

struct Unit {
    id: i64,
    key: String,
    line: Line,
}

/// Generates the organisation into an empty database (only the
/// organisation unit may exist).
///
/// # Errors
/// When the database already holds units below the organisation, or on a
/// database error.
pub async fn generate(db: &DatabaseConnection, opts: &Options) -> anyhow::Result<Summary> {
    let started = Instant::now();
    if opts.portfolios == 0 || opts.programs == 0 || opts.teams == 0 || opts.days <= 0 {
        bail!("the tree needs at least one unit per level and a positive number of days");
    }
    let others = unit::Entity::find()
        .filter(unit::Column::Kind.ne(UnitKind::Organization.as_str()))
        .select_only()
        .column(unit::Column::Id)
        .limit(1)
        .into_tuple::<i64>()
        .all(db)
        .await?;
    if !others.is_empty() {
        bail!("synthetic data goes into a database with no units but the organisation");
    }
    let org = units::organisation(db)
        .await
        .map_err(crate::cli::seed::api_err)?;

    // The tree.
    let txn = db.begin().await?;
    let (mut portfolios, mut programs, mut teams) = (Vec::new(), Vec::new(), Vec::new());
    for p in 0..opts.portfolios {
        let key = format!("syn-p{p:02}");
        let pu = units::insert_unit(
            &txn,
            &org,
            UnitKind::Portfolio,
            &key,
            &format!("Portfolio {p}"),
        )
        .await
        .map_err(crate::cli::seed::api_err)?;
        let pline = Line {
            level: UnitKind::Portfolio.as_str().to_owned(),
            portfolio_id: Some(pu.id),
            ..Line::default()
        };
        for g in 0..opts.programs {
            let key = format!("syn-p{p:02}-g{g:02}");
            let gu = units::insert_unit(
                &txn,
                &pu,
                UnitKind::Program,
                &key,
                &format!("Program {p}.{g}"),
            )
            .await
            .map_err(crate::cli::seed::api_err)?;
            let gline = Line {
                level: UnitKind::Program.as_str().to_owned(),
                program_id: Some(gu.id),
                ..pline.clone()
            };
            for t in 0..opts.teams {
                let key = format!("syn-p{p:02}-g{g:02}-t{t:02}");
                let tu = units::insert_unit(
                    &txn,
                    &gu,
                    UnitKind::Team,
                    &key,
                    &format!("Team {p}.{g}.{t}"),
                )
                .await
                .map_err(crate::cli::seed::api_err)?;
                teams.push(Unit {
                    id: tu.id,
                    key,
                    line: Line {
                        level: UnitKind::Team.as_str().to_owned(),
                        team_id: Some(tu.id),
                        ..gline.clone()
                    },
                });
            }
            programs.push(Unit {
                id: gu.id,
                key: gu.key.clone(),
                line: gline,
            });
        }
        portfolios.push(Unit {
            id: pu.id,
            key: pu.key.clone(),
            line: pline,
        });
    }
    txn.commit().await?;
    let unit_count = portfolios.len() + programs.len() + teams.len();

    let now = Utc::now();
    let begin = now - TimeDelta::days(opts.days);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut w = Writer::new(db).await?;

    // Epics (0.2%) per portfolio, features (2%) per program, the rest in teams.
    let epics_each = (opts.items / 500 / portfolios.len()).max(1);
    let features_each = (opts.items / 50 / programs.len()).max(1);
    let team_total = opts
        .items
        .saturating_sub(epics_each * portfolios.len() + features_each * programs.len());
    let mut epic_ids: HashMap<i64, Vec<i64>> = HashMap::new();
    for p in &portfolios {
        for _ in 0..epics_each {
            let id = w.item(&mut rng, p, "EPIC", None, begin, now, 5.0);
            epic_ids.entry(p.id).or_default().push(id);
        }
        w.flush_if_full(db).await?;
    }
    let mut feature_ids: HashMap<i64, Vec<i64>> = HashMap::new();
    for g in &programs {
        let parents = g
            .line
            .portfolio_id
            .and_then(|p| epic_ids.get(&p))
            .cloned()
            .unwrap_or_default();
        for _ in 0..features_each {
            let parent = pick(&mut rng, &parents);
            let id = w.item(&mut rng, g, "FEATURE", parent, begin, now, 4.0);
            feature_ids.entry(g.id).or_default().push(id);
        }
        w.flush_if_full(db).await?;
    }
    for (i, t) in teams.iter().enumerate() {
        // Spread the remainder over the first teams.
        let n = team_total / teams.len() + usize::from(i < team_total % teams.len());
        let parents = t
            .line
            .program_id
            .and_then(|g| feature_ids.get(&g))
            .cloned()
            .unwrap_or_default();
        for _ in 0..n {
            let roll = rng.gen_range(0..100);
            let kind = match roll {
                0..55 => "STORY",
                55..67 => "TASK",
                67..85 => "DEFECT",
                85..90 => "RISK",
                _ => "DEBT",
            };
            let parent = if kind == "STORY" {
                pick(&mut rng, &parents)
            } else {
                None
            };
            w.item(&mut rng, t, kind, parent, begin, now, 1.0);
        }
        w.delivery(&mut rng, t, begin, now);
        w.flush_if_full(db).await?;
    }
    w.flush(db).await?;
    w.finish(db, portfolios.iter().chain(&programs).chain(&teams))
        .await?;
    // The changes' first deployments and the incidents' causes, set-based.
    crate::service::facts::delivery::rebuild_all(db).await?;
    Ok(Summary {
        units: unit_count,
        items: w.items_written,
        transitions: w.transitions_written,
        deployments: w.deployments_written,
        changes: w.changes_written,
        incidents: w.incidents_written,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn pick(rng: &mut StdRng, from: &[i64]) -> Option<i64> {
    (!from.is_empty()).then(|| from[rng.gen_range(0..from.len())])
}

/// An exponential draw with the given mean.
fn exp(rng: &mut StdRng, mean: f64) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    -mean * u.ln()
}

struct NewItem {
    id: i64,
    key: String,
    item_type: &'static str,
    flow_type: &'static str,
    state: &'static str,
    unit_id: i64,
    parent_id: Option<i64>,
    rank: String,
    found_in: Option<&'static str>,
    created_at: DateTime<Utc>,
}

struct NewChange {
    id: i64,
    unit_id: i64,
    repository: String,
    first_commit_at: DateTime<Utc>,
    opened_at: DateTime<Utc>,
    merged_at: DateTime<Utc>,
}

struct NewDeployment {
    id: i64,
    unit_id: i64,
    status: &'static str,
    finished_at: DateTime<Utc>,
    changes: Vec<i64>,
}

struct NewIncident {
    unit_id: i64,
    opened_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    deployment_id: Option<i64>,
}

struct Writer {
    next_item: i64,
    next_change: i64,
    next_deployment: i64,
    items: Vec<NewItem>,
    /// `(item id, from, to, at)`.
    transitions: Vec<(i64, Option<&'static str>, &'static str, DateTime<Utc>)>,
    facts: facts::Rows,
    changes: Vec<NewChange>,
    deployments: Vec<NewDeployment>,
    incidents: Vec<NewIncident>,
    numbers: HashMap<i64, i64>,
    ranks: HashMap<(i64, &'static str), String>,
    items_written: usize,
    transitions_written: usize,
    deployments_written: usize,
    changes_written: usize,
    incidents_written: usize,
}

async fn next_id(db: &DatabaseConnection, table: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(r#"SELECT COALESCE(MAX("id"), 0) AS m FROM "{table}""#),
        ))
        .await?
        .context("no row")?;
    Ok(row.try_get::<i64>("", "m")? + 1)
}

impl Writer {
    async fn new(db: &DatabaseConnection) -> anyhow::Result<Self> {
        Ok(Self {
            next_item: next_id(db, "work_item").await?,
            next_change: next_id(db, "change").await?,
            next_deployment: next_id(db, "deployment").await?,
            items: Vec::new(),
            transitions: Vec::new(),
            facts: facts::Rows::default(),
            changes: Vec::new(),
            deployments: Vec::new(),
            incidents: Vec::new(),
            numbers: HashMap::new(),
            ranks: HashMap::new(),
            items_written: 0,
            transitions_written: 0,
            deployments_written: 0,
            changes_written: 0,
            incidents_written: 0,
        })
    }

    /// Plans one item and its history; returns its id.
    #[allow(clippy::too_many_arguments)]
    fn item(
        &mut self,
        rng: &mut StdRng,
        unit: &Unit,
        item_type: &'static str,
        parent_id: Option<i64>,
        begin: DateTime<Utc>,
        now: DateTime<Utc>,
        slowness: f64,
    ) -> i64 {
        let id = self.next_item;
        self.next_item += 1;
        let span = (now - begin).num_seconds().max(1);
        let created_at = begin + TimeDelta::seconds(rng.gen_range(0..span));
        let path = history(rng, slowness);
        let mut steps: Vec<(&'static str, DateTime<Utc>)> = Vec::with_capacity(path.len());
        let mut at = created_at;
        for (i, (state, days)) in path.iter().enumerate() {
            if at >= now {
                break;
            }
            steps.push((state, at));
            if i + 1 < path.len() {
                at += TimeDelta::seconds((days * 86_400.0) as i64 + 1);
            }
        }
        let state = steps.last().map_or("Backlog", |s| s.0);
        let n = self.numbers.entry(unit.id).or_insert(0);
        *n += 1;
        let key = format!("{}-{n}", unit.key.to_uppercase());
        let last_rank = self.ranks.get(&(unit.id, state)).map(String::as_str);
        let item_rank = rank::after(last_rank);
        self.ranks.insert((unit.id, state), item_rank.clone());
        let flow_type = match item_type {
            "DEFECT" => "DEFECT",
            "RISK" => "RISK",
            "DEBT" => "DEBT",
            _ => "FEATURE",
        };
        let found_in = (item_type == "DEFECT").then(|| match rng.gen_range(0..10) {
            0..3 => "PRODUCTION",
            3..7 => "TESTING",
            _ => "DEVELOPMENT",
        });
        let history: Vec<facts::Step<'_>> = steps
            .iter()
            .map(|(s, at)| (ms(*at), *s, category(s)))
            .collect();
        self.facts.push(
            &Item {
                id,
                unit_id: unit.id,
                item_type,
                flow_type,
                created_ms: ms(created_at),
            },
            &unit.line,
            &history,
        );
        let mut from = None;
        for (state, at) in steps {
            self.transitions.push((id, from, state, at));
            from = Some(state);
        }
        self.items.push(NewItem {
            id,
            key,
            item_type,
            flow_type,
            state,
            unit_id: unit.id,
            parent_id,
            rank: item_rank,
            found_in,
            created_at,
        });
        id
    }

    /// A team's changes, deployments (about every five days) and incidents.
    fn delivery(
        &mut self,
        rng: &mut StdRng,
        team: &Unit,
        begin: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let repository = format!("acme/{}", team.key);
        let mut at = begin + TimeDelta::seconds((exp(rng, 5.0) * 86_400.0) as i64);
        while at < now {
            let id = self.next_deployment;
            self.next_deployment += 1;
            let mut shipped = Vec::new();
            for _ in 0..rng.gen_range(1..=3) {
                let cid = self.next_change;
                self.next_change += 1;
                let merged_at = at - TimeDelta::seconds((exp(rng, 1.5) * 86_400.0) as i64);
                let opened_at = merged_at - TimeDelta::seconds((exp(rng, 1.0) * 86_400.0) as i64);
                let first_commit_at =
                    opened_at - TimeDelta::seconds((exp(rng, 2.0) * 86_400.0) as i64);
                self.changes.push(NewChange {
                    id: cid,
                    unit_id: team.id,
                    repository: repository.clone(),
                    first_commit_at,
                    opened_at,
                    merged_at,
                });
                shipped.push(cid);
            }
            let failed = rng.gen_bool(0.05);
            self.deployments.push(NewDeployment {
                id,
                unit_id: team.id,
                status: if failed { "FAILURE" } else { "SUCCESS" },
                finished_at: at,
                changes: shipped,
            });
            if !failed && rng.gen_bool(0.08) {
                let opened_at = at + TimeDelta::seconds((exp(rng, 0.5) * 86_400.0) as i64);
                if opened_at < now {
                    let resolved =
                        opened_at + TimeDelta::seconds((exp(rng, 0.3) * 86_400.0) as i64);
                    self.incidents.push(NewIncident {
                        unit_id: team.id,
                        opened_at,
                        resolved_at: (resolved < now).then_some(resolved),
                        deployment_id: rng.gen_bool(0.5).then_some(id),
                    });
                }
            }
            at += TimeDelta::seconds((exp(rng, 5.0) * 86_400.0) as i64 + 60);
        }
    }

    async fn flush_if_full(&mut self, db: &DatabaseConnection) -> anyhow::Result<()> {
        if self.items.len() >= FLUSH_ITEMS {
            self.flush(db).await?;
        }
        Ok(())
    }

    /// Writes what is planned, in one transaction.
    async fn flush(&mut self, db: &DatabaseConnection) -> anyhow::Result<()> {
        let txn = db.begin().await?;
        let pg = txn.get_database_backend() == DbBackend::Postgres;
        let items = std::mem::take(&mut self.items);
        let item_ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        for chunk in items.chunks(10_000) {
            if pg {
                let sql = r#"INSERT INTO "work_item" ("id", "key", "title", "item_type", "flow_type", "state",
  "state_category", "unit_id", "parent_id", "rank", "found_in", "created_at", "updated_at")
SELECT i, k, k, it, ft, st, sc, u, NULLIF(p, 0), r, NULLIF(fi, ''), c, c
FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
  $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::timestamptz[])
AS x(i, k, it, ft, st, sc, u, p, r, fi, c)"#;
                txn.execute_raw(statement(
                    sql,
                    vec![
                        bigints(chunk.iter().map(|i| i.id)),
                        texts(chunk.iter().map(|i| i.key.as_str())),
                        texts(chunk.iter().map(|i| i.item_type)),
                        texts(chunk.iter().map(|i| i.flow_type)),
                        texts(chunk.iter().map(|i| i.state)),
                        texts(chunk.iter().map(|i| category(i.state))),
                        bigints(chunk.iter().map(|i| i.unit_id)),
                        bigints(chunk.iter().map(|i| i.parent_id.unwrap_or(0))),
                        texts(chunk.iter().map(|i| i.rank.as_str())),
                        texts(chunk.iter().map(|i| i.found_in.unwrap_or(""))),
                        times(chunk.iter().map(|i| i.created_at)),
                    ],
                ))
                .await?;
            } else {
                for rows in chunk.chunks(1000) {
                    work_item::Entity::insert_many(rows.iter().map(|i| work_item::ActiveModel {
                        id: Set(i.id),
                        key: Set(i.key.clone()),
                        title: Set(i.key.clone()),
                        item_type: Set(i.item_type.to_owned()),
                        flow_type: Set(i.flow_type.to_owned()),
                        state: Set(i.state.to_owned()),
                        state_category: Set(category(i.state).to_owned()),
                        unit_id: Set(i.unit_id),
                        parent_id: Set(i.parent_id),
                        rank: Set(i.rank.clone()),
                        found_in: Set(i.found_in.map(str::to_owned)),
                        created_at: Set(i.created_at),
                        updated_at: Set(i.created_at),
                        ..Default::default()
                    }))
                    .exec_without_returning(&txn)
                    .await?;
                }
            }
        }
        self.items_written += items.len();
        let transitions = std::mem::take(&mut self.transitions);
        for chunk in transitions.chunks(if pg { 50_000 } else { 2_000 }) {
            if pg {
                let sql = r#"INSERT INTO "transition" ("work_item_id", "from_state", "to_state", "to_category", "at", "source")
SELECT w, NULLIF(f, ''), t, c, a, 'synthetic'
FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS x(w, f, t, c, a)"#;
                txn.execute_raw(statement(
                    sql,
                    vec![
                        bigints(chunk.iter().map(|t| t.0)),
                        texts(chunk.iter().map(|t| t.1.unwrap_or(""))),
                        texts(chunk.iter().map(|t| t.2)),
                        texts(chunk.iter().map(|t| category(t.2))),
                        times(chunk.iter().map(|t| t.3)),
                    ],
                ))
                .await?;
            } else {
                entity::transition::Entity::insert_many(chunk.iter().map(|t| {
                    entity::transition::ActiveModel {
                        work_item_id: Set(t.0),
                        from_state: Set(t.1.map(str::to_owned)),
                        to_state: Set(t.2.to_owned()),
                        to_category: Set(category(t.2).to_owned()),
                        at: Set(t.3),
                        source: Set(Some("synthetic".to_owned())),
                        ..Default::default()
                    }
                }))
                .exec_without_returning(&txn)
                .await?;
            }
        }
        self.transitions_written += transitions.len();
        self.facts.write(&txn).await?;
        // Replicas holding the facts in memory find these items at their
        // next catch-up (PostgreSQL), as they find the ingest's.
        facts::mark_changed(&txn, &item_ids).await?;
        self.write_delivery(&txn, pg).await?;
        txn.commit().await?;
        tracing::info!(
            items = self.items_written,
            transitions = self.transitions_written,
            "synthetic data written"
        );
        Ok(())
    }

    async fn write_delivery(
        &mut self,
        txn: &sea_orm::DatabaseTransaction,
        pg: bool,
    ) -> anyhow::Result<()> {
        let changes = std::mem::take(&mut self.changes);
        for chunk in changes.chunks(1000) {
            change::Entity::insert_many(chunk.iter().map(|c| change::ActiveModel {
                id: Set(c.id),
                unit_id: Set(c.unit_id),
                source: Set("synthetic".to_owned()),
                external_id: Set(format!("pr-{}", c.id)),
                repository: Set(c.repository.clone()),
                first_commit_at: Set(Some(c.first_commit_at)),
                opened_at: Set(Some(c.opened_at)),
                merged_at: Set(c.merged_at),
                ..Default::default()
            }))
            .exec_without_returning(txn)
            .await?;
        }
        self.changes_written += changes.len();
        let deployments = std::mem::take(&mut self.deployments);
        for chunk in deployments.chunks(1000) {
            deployment::Entity::insert_many(chunk.iter().map(|d| deployment::ActiveModel {
                id: Set(d.id),
                unit_id: Set(d.unit_id),
                source: Set("synthetic".to_owned()),
                external_id: Set(format!("deploy-{}", d.id)),
                environment: Set("PRODUCTION".to_owned()),
                status: Set(d.status.to_owned()),
                finished_at: Set(d.finished_at),
            }))
            .exec_without_returning(txn)
            .await?;
            let links: Vec<(i64, i64)> = chunk
                .iter()
                .flat_map(|d| d.changes.iter().map(move |c| (d.id, *c)))
                .collect();
            deployment_change::Entity::insert_many(links.iter().map(|(d, c)| {
                deployment_change::ActiveModel {
                    deployment_id: Set(*d),
                    change_id: Set(*c),
                }
            }))
            .exec_without_returning(txn)
            .await?;
        }
        self.deployments_written += deployments.len();
        let incidents = std::mem::take(&mut self.incidents);
        let base = self.incidents_written;
        if pg {
            for (c, chunk) in incidents.chunks(10_000).enumerate() {
                let sql = r#"INSERT INTO "incident" ("unit_id", "source", "external_id", "severity", "opened_at", "resolved_at", "deployment_id")
SELECT u, 'synthetic', e, 'SEV2', o, NULLIF(r, 'epoch'::timestamptz), NULLIF(d, -9223372036854775808)
FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[]) AS x(u, e, o, r, d)"#;
                txn.execute_raw(statement(
                    sql,
                    vec![
                        bigints(chunk.iter().map(|i| i.unit_id)),
                        texts(
                            (0..chunk.len())
                                .map(|n| format!("inc-{}", base + c * 10_000 + n))
                                .collect::<Vec<_>>()
                                .iter()
                                .map(String::as_str),
                        ),
                        times(chunk.iter().map(|i| i.opened_at)),
                        times(
                            chunk
                                .iter()
                                .map(|i| i.resolved_at.unwrap_or(DateTime::UNIX_EPOCH)),
                        ),
                        opt_bigints(chunk.iter().map(|i| i.deployment_id)),
                    ],
                ))
                .await?;
            }
        } else {
            for (n, chunk) in incidents.chunks(1000).enumerate() {
                incident::Entity::insert_many(chunk.iter().enumerate().map(|(k, i)| {
                    incident::ActiveModel {
                        unit_id: Set(i.unit_id),
                        source: Set("synthetic".to_owned()),
                        external_id: Set(format!("inc-{}", base + n * 1000 + k)),
                        severity: Set("SEV2".to_owned()),
                        opened_at: Set(i.opened_at),
                        resolved_at: Set(i.resolved_at),
                        deployment_id: Set(i.deployment_id),
                        ..Default::default()
                    }
                }))
                .exec_without_returning(txn)
                .await?;
            }
        }
        self.incidents_written += incidents.len();
        Ok(())
    }

    /// Item numbering continues after the generated keys, and PostgreSQL's
    /// sequences after the ids written explicitly.
    async fn finish<'u>(
        &self,
        db: &DatabaseConnection,
        all: impl Iterator<Item = &'u Unit>,
    ) -> anyhow::Result<()> {
        let txn = db.begin().await?;
        for u in all {
            if let Some(n) = self.numbers.get(&u.id) {
                unit::Entity::update_many()
                    .col_expr(unit::Column::NextItemNumber, Expr::value(*n + 1))
                    .filter(unit::Column::Id.eq(u.id))
                    .exec(&txn)
                    .await?;
            }
        }
        if txn.get_database_backend() == DbBackend::Postgres {
            for table in ["work_item", "change", "deployment"] {
                txn.execute_unprepared(&format!(
                    r#"SELECT setval(pg_get_serial_sequence('"{table}"', 'id'), (SELECT MAX("id") FROM "{table}"))"#
                ))
                .await?;
            }
            txn.execute_unprepared("ANALYZE").await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

/// A path through the default workflow with the days spent in each state
/// (the last state's dwell is unused): backlog, work with review and
/// testing, rework loops back to work, blocked spells during review, and
/// some cancellations.
fn history(rng: &mut StdRng, slowness: f64) -> Vec<(&'static str, f64)> {
    let mut path = Vec::with_capacity(10);
    let dwell = |rng: &mut StdRng, s: &'static str| (s, exp(rng, mean_days(s) * slowness));
    path.push(dwell(rng, "Backlog"));
    if rng.gen_bool(0.04) {
        path.push(dwell(rng, "Canceled"));
        return path;
    }
    let mut loops = 0;
    loop {
        path.push(dwell(rng, "In Progress"));
        path.push(dwell(rng, "In Review"));
        if rng.gen_bool(0.3) {
            path.push(dwell(rng, "Blocked"));
            path.push(dwell(rng, "In Review"));
        }
        path.push(dwell(rng, "Testing"));
        if loops < 2 && rng.gen_bool(0.45) {
            loops += 1;
            continue;
        }
        break;
    }
    if rng.gen_bool(0.03) {
        path.push(dwell(rng, "Canceled"));
    } else {
        path.push(dwell(rng, "Done"));
    }
    path
}
