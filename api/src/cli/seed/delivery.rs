//! The demo's delivery records (DESIGN §1.5): per team one repository's
//! pull requests, its deployments to staging and production, the incidents
//! some production deployments caused, and the releases that delivered its
//! work, over the same 90 days as the work items.
//!
//! Each team follows a delivery profile, so the DORA levels (DESIGN §3.5)
//! spread between teams: some deploy several times a day and restore within
//! the hour, some deploy once a month and fail often. A story, defect or
//! debt item that completed has the pull request that did it, merged just
//! before it was done; the first production deployment after the merge
//! ships it. Filler pull requests (chores) keep every deployment shipping
//! something.
//!
//! Planning is pure (see [`plan`]); [`store`] writes the rows the ingest
//! path writes and then rewrites the delivery facts with the function it
//! calls.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use entity::{
    change, change_work_item, deployment, deployment_change, incident, release, release_work_item,
};
use rand::Rng;
use rand::rngs::StdRng;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};

use super::{CHUNK, DONE, HOUR, Plan, SOURCE, Tree, between, seconds};
use crate::domain::WorkItemType;
use crate::service::facts::delivery::{PRODUCTION, SUCCESS};

const STAGING: &str = "STAGING";
const FAILURE: &str = "FAILURE";

/// How a team delivers. Ranges are uniform.
#[derive(Clone, Copy, Debug)]
struct Profile {
    /// Days between production deployments.
    gap_days: (f64, f64),
    /// Hours from the first commit to opening the pull request.
    coding_hours: (f64, f64),
    /// Hours from opening to merging.
    review_hours: (f64, f64),
    /// Share of successful production deployments that cause an incident.
    failure: f64,
    /// Hours from an incident's opening to its resolution.
    restore_hours: (f64, f64),
}

/// Several deployments a day, changes live within the day, restored
/// within the hour.
const ELITE: Profile = Profile {
    gap_days: (0.4, 1.3),
    coding_hours: (1.0, 6.0),
    review_hours: (0.5, 4.0),
    failure: 0.04,
    restore_hours: (0.2, 0.9),
};
/// Twice a week; changes live within days; restored within the day.
const HIGH: Profile = Profile {
    gap_days: (2.0, 6.0),
    coding_hours: (4.0, 30.0),
    review_hours: (2.0, 20.0),
    failure: 0.09,
    restore_hours: (1.5, 16.0),
};
/// Every week or two; changes live within weeks; restored within days.
const MEDIUM: Profile = Profile {
    gap_days: (8.0, 15.0),
    coding_hours: (24.0, 120.0),
    review_hours: (24.0, 72.0),
    failure: 0.13,
    restore_hours: (26.0, 60.0),
};
/// Less than monthly; changes wait for the big release; half of the
/// deployments hurt.
const LOW: Profile = Profile {
    gap_days: (35.0, 45.0),
    coding_hours: (120.0, 300.0),
    review_hours: (72.0, 200.0),
    failure: 0.5,
    restore_hours: (30.0, 60.0),
};
/// Per team, in [`super::TEAMS`] order.
const PROFILES: &[Profile] = &[
    ELITE, HIGH, MEDIUM, ELITE, LOW, HIGH, MEDIUM, HIGH, LOW, MEDIUM,
];

/// Titles of pull requests that no work item asked for.
const CHORES: &[&str] = &[
    "Bump dependencies",
    "Tidy up request logging",
    "Tune the connection pool",
    "Fix a flaky integration test",
    "Update feature flag defaults",
    "Speed up the CI pipeline",
    "Improve dashboard queries",
    "Rotate service certificates",
];

/// Days between a team's releases.
const RELEASE_GAP_DAYS: (f64, f64) = (12.0, 16.0);

/// What [`store`] wrote.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub changes: usize,
    pub deployments: usize,
    pub incidents: usize,
    pub releases: usize,
}

struct NewChange {
    unit_id: i64,
    ext: String,
    repository: String,
    title: String,
    url: String,
    first_commit: DateTime<Utc>,
    opened: DateTime<Utc>,
    merged: DateTime<Utc>,
    sha: String,
    /// Work item ids.
    items: Vec<i64>,
}

struct NewDeployment {
    unit_id: i64,
    ext: String,
    environment: &'static str,
    status: &'static str,
    finished: DateTime<Utc>,
    /// Indices into [`Delivery::changes`].
    changes: Vec<usize>,
}

struct NewIncident {
    unit_id: i64,
    ext: String,
    severity: &'static str,
    opened: DateTime<Utc>,
    resolved: Option<DateTime<Utc>>,
    /// Index into [`Delivery::deployments`] of the deployment it names.
    deployment: Option<usize>,
}

struct NewRelease {
    unit_id: i64,
    ext: String,
    name: String,
    released: DateTime<Utc>,
    /// Work item ids.
    items: Vec<i64>,
}

/// Every delivery record of the demo, in insertion order.
#[derive(Default)]
pub(super) struct Delivery {
    changes: Vec<NewChange>,
    deployments: Vec<NewDeployment>,
    incidents: Vec<NewIncident>,
    releases: Vec<NewRelease>,
}

fn hours(rng: &mut StdRng, (lo, hi): (f64, f64)) -> TimeDelta {
    seconds(rng.gen_range(lo * HOUR..hi * HOUR))
}

fn sha(rng: &mut StdRng) -> String {
    (0..40)
        .filter_map(|_| char::from_digit(rng.gen_range(0..16), 16))
        .collect()
}

/// Plans the delivery of every team. `ids` are the stored ids of
/// [`Plan::items`], by index.
pub(super) fn plan(
    rng: &mut StdRng,
    now: DateTime<Utc>,
    tree: &Tree,
    items: &Plan,
    ids: &[i64],
) -> Delivery {
    let mut out = Delivery::default();
    let mut released: HashSet<usize> = HashSet::new();
    let teams = tree
        .portfolios
        .iter()
        .flat_map(|p| &p.programs)
        .flat_map(|g| &g.teams);
    let start = now - TimeDelta::days(89);
    for (ti, team) in teams.enumerate() {
        let profile = PROFILES.get(ti % PROFILES.len()).copied().unwrap_or(HIGH);
        let short = team.unit.key.trim_start_matches("team-").to_owned();
        let repository = format!("acme-bank/{short}-service");
        let unit_id = team.unit.id;

        // Production deployments, spread over the window.
        let mut prod_times = Vec::new();
        let mut t = start + hours(rng, (0.0, profile.gap_days.1 * 24.0));
        while t < now - TimeDelta::minutes(30) {
            prod_times.push(t);
            t += hours(rng, (profile.gap_days.0 * 24.0, profile.gap_days.1 * 24.0));
        }

        // Pull requests: one per completed story, defect or debt item
        // (sometimes two), merged shortly before the item was done.
        let first_change = out.changes.len();
        let mut number = 100usize;
        let mut push_change = |out: &mut Delivery,
                               rng: &mut StdRng,
                               title: String,
                               merged: DateTime<Utc>,
                               not_before: Option<DateTime<Utc>>,
                               items: Vec<i64>| {
            let opened = merged - hours(rng, profile.review_hours);
            let mut first_commit = opened - hours(rng, profile.coding_hours);
            if let Some(lo) = not_before {
                first_commit = first_commit.max(lo).min(opened);
            }
            number += 1;
            out.changes.push(NewChange {
                unit_id,
                ext: format!("{short}-pr-{number}"),
                repository: repository.clone(),
                title,
                url: format!("https://git.acme-bank.example/{repository}/pull/{number}"),
                first_commit,
                opened,
                merged,
                sha: sha(rng),
                items,
            });
        };
        for (i, item) in items.items.iter().enumerate() {
            if item.unit_id != unit_id
                || !matches!(
                    item.item_type,
                    WorkItemType::Story | WorkItemType::Defect | WorkItemType::Debt
                )
            {
                continue;
            }
            let (state, done) = item.last();
            let Some(&id) = ids.get(i) else { continue };
            if state != DONE {
                continue;
            }
            let started = item.started_at().unwrap_or(item.created_at);
            let merged = between(
                rng,
                (done - TimeDelta::hours(3)).max(started + TimeDelta::minutes(1)),
                done - TimeDelta::minutes(10),
            );
            if rng.gen_bool(0.3) && merged - started > TimeDelta::hours(2) {
                let earlier = between(rng, started + TimeDelta::minutes(30), merged);
                push_change(
                    &mut out,
                    rng,
                    format!("{} (part 1)", item.title),
                    earlier,
                    Some(item.created_at),
                    vec![id],
                );
            }
            push_change(
                &mut out,
                rng,
                item.title.clone(),
                merged,
                Some(item.created_at),
                vec![id],
            );
        }
        // Chores, so that every deployment ships something.
        let mut chore = 0usize;
        for (k, &t) in prod_times.iter().enumerate() {
            let prev = k
                .checked_sub(1)
                .and_then(|p| prod_times.get(p))
                .copied()
                .unwrap_or(t - TimeDelta::days(1));
            let shipped = out.changes[first_change..]
                .iter()
                .any(|c| c.merged > prev && c.merged + TimeDelta::minutes(5) < t);
            if !shipped {
                let merged = between(
                    rng,
                    prev + TimeDelta::minutes(10),
                    t - TimeDelta::minutes(20),
                );
                let title = super::text(CHORES, chore + ti).to_owned();
                chore += 1;
                push_change(&mut out, rng, title, merged, None, vec![]);
            }
        }

        // Deployments: each production deployment ships what was merged
        // since the one before, after a staging deployment of the same
        // changes (now and then a failed one first).
        let mut successes = Vec::new();
        let mut deploy_number = 0usize;
        let mut prev = None;
        for &t in &prod_times {
            let changes: Vec<usize> = (first_change..out.changes.len())
                .filter(|&c| {
                    out.changes.get(c).is_some_and(|c| {
                        c.merged + TimeDelta::minutes(5) < t && prev.is_none_or(|p| c.merged >= p)
                    })
                })
                .collect();
            prev = Some(t - TimeDelta::minutes(5));
            let last_merge = changes
                .iter()
                .filter_map(|&c| out.changes.get(c).map(|c| c.merged))
                .max()
                .unwrap_or(t - TimeDelta::hours(4));
            let staged = (t - hours(rng, (0.5, 3.0))).max(last_merge + TimeDelta::minutes(2));
            let mut deploy = |out: &mut Delivery, env, status, finished| {
                deploy_number += 1;
                out.deployments.push(NewDeployment {
                    unit_id,
                    ext: format!("{short}-deploy-{deploy_number}"),
                    environment: env,
                    status,
                    finished,
                    changes: changes.clone(),
                });
                out.deployments.len() - 1
            };
            if rng.gen_bool(0.12) && staged - last_merge > TimeDelta::minutes(3) {
                let failed = between(rng, last_merge + TimeDelta::minutes(1), staged);
                deploy(&mut out, STAGING, FAILURE, failed);
            }
            deploy(&mut out, STAGING, SUCCESS, staged);
            if rng.gen_bool(0.05) {
                let failed = between(rng, staged + TimeDelta::minutes(1), t);
                deploy(&mut out, PRODUCTION, FAILURE, failed);
            }
            successes.push((deploy(&mut out, PRODUCTION, SUCCESS, t), t));
        }

        // Incidents: the profile's share of the production deployments,
        // opened within hours of one; most name it, the others leave it to
        // be inferred (they open before the next deployment).
        let wanted = (profile.failure * successes.len() as f64).round() as usize;
        let chosen =
            rand::seq::index::sample(rng, successes.len(), wanted.min(successes.len())).into_vec();
        let mut chosen = chosen;
        chosen.sort_unstable();
        for (n, k) in chosen.into_iter().enumerate() {
            let Some(&(dep, t)) = successes.get(k) else {
                continue;
            };
            let next = successes
                .get(k + 1)
                .map_or(now, |(_, next)| *next)
                .min(now - TimeDelta::minutes(20));
            let opened = (t + hours(rng, (0.25, 4.0))).min(next - TimeDelta::minutes(1));
            if opened <= t {
                continue;
            }
            let resolved = opened + hours(rng, profile.restore_hours);
            let severity = super::pick(
                rng,
                &[("critical", 15), ("major", 45), ("minor", 40)],
                "major",
            );
            out.incidents.push(NewIncident {
                unit_id,
                ext: format!("{short}-inc-{}", n + 1),
                severity,
                opened,
                resolved: (resolved < now - TimeDelta::minutes(5)).then_some(resolved),
                deployment: (n % 3 != 2).then_some(dep),
            });
        }

        // Releases: every two weeks or so, the items done since the last
        // one and the features that were completed by then.
        let mut t = start + hours(rng, (5.0 * 24.0, RELEASE_GAP_DAYS.1 * 24.0));
        let mut last = start - TimeDelta::days(1);
        let mut minor = 0usize;
        while t < now - TimeDelta::hours(1) {
            let mut delivered = Vec::new();
            for (i, item) in items.items.iter().enumerate() {
                let (state, done) = item.last();
                if item.unit_id != unit_id || state != DONE || done <= last || done > t {
                    continue;
                }
                if let Some(&id) = ids.get(i) {
                    delivered.push(id);
                }
                let Some(f) = item.parent else { continue };
                let Some(feature) = items.get(f) else {
                    continue;
                };
                let (f_state, f_done) = feature.last();
                if feature.item_type == WorkItemType::Feature
                    && f_state == DONE
                    && f_done <= t
                    && released.insert(f)
                    && let Some(&fid) = ids.get(f)
                {
                    delivered.push(fid);
                }
            }
            if !delivered.is_empty() {
                minor += 1;
                out.releases.push(NewRelease {
                    unit_id,
                    ext: format!("{short}-rel-{minor}"),
                    name: format!("{} 2.{minor}", super::capitalise(&short)),
                    released: t,
                    items: delivered,
                });
            }
            last = t;
            t += hours(rng, (RELEASE_GAP_DAYS.0 * 24.0, RELEASE_GAP_DAYS.1 * 24.0));
        }
    }
    out
}

/// Ids of the rows with `source` = the seed's, by external id.
async fn stored_ids<E, F>(
    txn: &DatabaseTransaction,
    source: E::Column,
    key: F,
) -> anyhow::Result<HashMap<String, i64>>
where
    E: EntityTrait,
    F: Fn(&E::Model) -> (String, i64),
{
    Ok(E::find()
        .filter(source.eq(SOURCE))
        .all(txn)
        .await?
        .iter()
        .map(key)
        .collect())
}

fn id_of(ids: &HashMap<String, i64>, ext: &str) -> anyhow::Result<i64> {
    ids.get(ext)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("{ext} was not stored"))
}

/// Writes the planned records and their links, then the delivery facts.
pub(super) async fn store(txn: &DatabaseTransaction, d: &Delivery) -> anyhow::Result<Counts> {
    for chunk in d.changes.chunks(CHUNK) {
        change::Entity::insert_many(chunk.iter().map(|c| change::ActiveModel {
            unit_id: Set(c.unit_id),
            source: Set(SOURCE.to_owned()),
            external_id: Set(c.ext.clone()),
            repository: Set(c.repository.clone()),
            title: Set(Some(c.title.clone())),
            url: Set(Some(c.url.clone())),
            first_commit_at: Set(Some(c.first_commit)),
            opened_at: Set(Some(c.opened)),
            merged_at: Set(c.merged),
            merge_sha: Set(Some(c.sha.clone())),
            first_deployment_id: Set(None),
            ..Default::default()
        }))
        .exec_without_returning(txn)
        .await?;
    }
    let changes = stored_ids::<change::Entity, _>(txn, change::Column::Source, |m| {
        (m.external_id.clone(), m.id)
    })
    .await?;
    let mut links = Vec::new();
    for c in &d.changes {
        let id = id_of(&changes, &c.ext)?;
        links.extend(c.items.iter().map(|&w| change_work_item::ActiveModel {
            change_id: Set(id),
            work_item_id: Set(w),
        }));
    }
    insert_links(txn, links).await?;

    for chunk in d.deployments.chunks(CHUNK) {
        deployment::Entity::insert_many(chunk.iter().map(|x| deployment::ActiveModel {
            unit_id: Set(x.unit_id),
            source: Set(SOURCE.to_owned()),
            external_id: Set(x.ext.clone()),
            environment: Set(x.environment.to_owned()),
            status: Set(x.status.to_owned()),
            finished_at: Set(x.finished),
            ..Default::default()
        }))
        .exec_without_returning(txn)
        .await?;
    }
    let deployments = stored_ids::<deployment::Entity, _>(txn, deployment::Column::Source, |m| {
        (m.external_id.clone(), m.id)
    })
    .await?;
    let mut deployment_ids = Vec::with_capacity(d.deployments.len());
    let mut links = Vec::new();
    for x in &d.deployments {
        let id = id_of(&deployments, &x.ext)?;
        deployment_ids.push(id);
        for &c in &x.changes {
            let ext = d.changes.get(c).map(|c| c.ext.as_str()).unwrap_or_default();
            links.push(deployment_change::ActiveModel {
                deployment_id: Set(id),
                change_id: Set(id_of(&changes, ext)?),
            });
        }
    }
    insert_links(txn, links).await?;

    for chunk in d.incidents.chunks(CHUNK) {
        incident::Entity::insert_many(chunk.iter().map(|i| incident::ActiveModel {
            unit_id: Set(i.unit_id),
            source: Set(SOURCE.to_owned()),
            external_id: Set(i.ext.clone()),
            severity: Set(i.severity.to_owned()),
            opened_at: Set(i.opened),
            resolved_at: Set(i.resolved),
            deployment_id: Set(i.deployment.and_then(|k| deployment_ids.get(k).copied())),
            cause_deployment_id: Set(None),
            ..Default::default()
        }))
        .exec_without_returning(txn)
        .await?;
    }

    for chunk in d.releases.chunks(CHUNK) {
        release::Entity::insert_many(chunk.iter().map(|r| release::ActiveModel {
            unit_id: Set(r.unit_id),
            source: Set(SOURCE.to_owned()),
            external_id: Set(r.ext.clone()),
            name: Set(r.name.clone()),
            released_at: Set(r.released),
            ..Default::default()
        }))
        .exec_without_returning(txn)
        .await?;
    }
    let releases = stored_ids::<release::Entity, _>(txn, release::Column::Source, |m| {
        (m.external_id.clone(), m.id)
    })
    .await?;
    let mut links = Vec::new();
    for r in &d.releases {
        let id = id_of(&releases, &r.ext)?;
        links.extend(r.items.iter().map(|&w| release_work_item::ActiveModel {
            release_id: Set(id),
            work_item_id: Set(w),
        }));
    }
    insert_links(txn, links).await?;

    // The facts the ingest path keeps: each change's first production
    // deployment, each incident's cause.
    crate::service::facts::delivery::rebuild_all(txn).await?;
    Ok(Counts {
        changes: d.changes.len(),
        deployments: d.deployments.len(),
        incidents: d.incidents.len(),
        releases: d.releases.len(),
    })
}

/// Inserts link rows in chunks.
async fn insert_links<A>(txn: &DatabaseTransaction, rows: Vec<A>) -> anyhow::Result<()>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter();
    loop {
        let chunk: Vec<A> = rows.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        A::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::cli::seed::{EXTRAS_SEED, RNG_SEED, plan_items};

    #[test]
    fn delivery_follows_the_work_and_stays_in_the_past() {
        let now = Utc::now();
        let tree = super::super::tests::tree();
        let items = plan_items(&mut StdRng::seed_from_u64(RNG_SEED), now, &tree);
        let ids: Vec<i64> = (1..=items.items.len() as i64).collect();
        let d = plan(
            &mut StdRng::seed_from_u64(EXTRAS_SEED),
            now,
            &tree,
            &items,
            &ids,
        );
        let mut exts = HashSet::new();
        for c in &d.changes {
            assert!(exts.insert(c.ext.clone()), "duplicate {}", c.ext);
            assert!(
                c.first_commit <= c.opened && c.opened <= c.merged,
                "{}",
                c.ext
            );
            assert!(c.merged < now, "{}", c.ext);
        }
        let mut shipped = HashSet::new();
        for x in &d.deployments {
            assert!(exts.insert(x.ext.clone()), "duplicate {}", x.ext);
            assert!(x.finished < now && x.finished > now - TimeDelta::days(90));
            if x.environment == PRODUCTION && x.status == SUCCESS {
                assert!(!x.changes.is_empty(), "{} ships nothing", x.ext);
            }
            for &c in &x.changes {
                assert!(
                    d.changes[c].merged < x.finished,
                    "{} before its merge",
                    x.ext
                );
                assert_eq!(d.changes[c].unit_id, x.unit_id);
                if x.environment == PRODUCTION && x.status == SUCCESS {
                    assert!(shipped.insert(c), "{} shipped twice", d.changes[c].ext);
                }
            }
        }
        assert!(d.incidents.len() >= 10, "{} incidents", d.incidents.len());
        for i in &d.incidents {
            assert!(i.opened < now && i.resolved.is_none_or(|r| i.opened < r && r < now));
            if let Some(k) = i.deployment {
                assert!(d.deployments[k].finished < i.opened, "{}", i.ext);
            }
        }
        assert!(!d.releases.is_empty());
        for r in &d.releases {
            assert!(!r.items.is_empty() && r.released < now, "{}", r.ext);
        }
        // Every completed story of a team has the pull request that did it.
        let linked: HashSet<i64> = d.changes.iter().flat_map(|c| c.items.clone()).collect();
        for (item, id) in items.items.iter().zip(&ids) {
            if item.item_type == WorkItemType::Story && item.last().0 == DONE {
                assert!(linked.contains(id), "{} has no pull request", item.key);
            }
        }
    }
}
