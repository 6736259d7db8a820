//! Delivery facts (DESIGN §3.5): each change's first production deployment
//! and each incident's causing deployment, rewritten in the transaction
//! that wrote the deployments and incidents they derive from.

use sea_orm::{ConnectionTrait, DbBackend};

use crate::events::{ChangeKind, DomainEvent};
use crate::service::pg::{bigints, statement};
use crate::service::sql::Sql;

pub(crate) const PRODUCTION: &str = "PRODUCTION";
pub(crate) const SUCCESS: &str = "SUCCESS";

/// Sets `change.first_deployment_id` of the changes `which` selects (a
/// condition on `change`) from their links.
fn first_deployment_update(sql: &mut Sql, which: &str) -> String {
    let env = sql.bind(PRODUCTION);
    let ok = sql.bind(SUCCESS);
    format!(
        "UPDATE change SET first_deployment_id = (SELECT d.id FROM deployment_change dc \
           JOIN deployment d ON d.id = dc.deployment_id \
           WHERE dc.change_id = change.id AND d.environment = {env} AND d.status = {ok} \
           ORDER BY d.finished_at, d.id LIMIT 1) \
         WHERE {which}"
    )
}

/// Sets `incident.cause_deployment_id` of the incidents `which` selects (a
/// condition on `incident`).
fn cause_update(sql: &mut Sql, which: &str) -> String {
    let env = sql.bind(PRODUCTION);
    let ok = sql.bind(SUCCESS);
    format!(
        "UPDATE incident SET cause_deployment_id = COALESCE(deployment_id, \
           (SELECT d.id FROM deployment d WHERE d.unit_id = incident.unit_id \
             AND d.environment = {env} AND d.status = {ok} AND d.finished_at < incident.opened_at \
             ORDER BY d.finished_at DESC, d.id DESC LIMIT 1)) \
         WHERE {which}"
    )
}

fn id_list(sql: &mut Sql, ids: &[i64]) -> String {
    let marks: Vec<String> = ids.iter().map(|id| sql.bind(*id)).collect();
    marks.join(", ")
}

/// Ids per statement.
const REFRESH_IDS: usize = 500;

/// Rewrites the delivery facts that the deployments and incidents written
/// by `events` may have changed: the first deployment of the changes a
/// written deployment ships or shipped, and the cause of a written incident
/// and of the incidents of a written deployment's unit opened after it or
/// attributed to it before (a deployment may change its unit, status or
/// changes when re-recorded). Writing a change cannot change its first
/// deployment: only deployments link changes.
///
/// # Errors
/// Database errors only.
pub async fn refresh_touched(
    db: &impl ConnectionTrait,
    events: &[DomainEvent],
) -> Result<(), sea_orm::DbErr> {
    let of = |kind: ChangeKind| -> Vec<i64> {
        let mut ids: Vec<i64> = events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.entity_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let backend = db.get_database_backend();
    for ids in of(ChangeKind::DeploymentRecorded).chunks(REFRESH_IDS) {
        // One statement per condition, each on an index: an OR of them
        // scans the whole table.
        let changes = [
            "id IN (SELECT change_id FROM deployment_change WHERE deployment_id IN ({list}))",
            "first_deployment_id IN ({list})",
        ];
        for which in changes {
            let mut sql = Sql::new(backend);
            let list = id_list(&mut sql, ids);
            let text = first_deployment_update(&mut sql, &which.replace("{list}", &list));
            sql.push(&text);
            db.execute_raw(sql.statement()).await?;
        }
        let incidents = [
            "deployment_id IS NULL AND id IN (SELECT i.id FROM incident i \
             JOIN deployment d ON d.unit_id = i.unit_id AND i.opened_at > d.finished_at \
             WHERE d.id IN ({list}))",
            "deployment_id IS NULL AND cause_deployment_id IN ({list})",
        ];
        for which in incidents {
            let mut sql = Sql::new(backend);
            let list = id_list(&mut sql, ids);
            let text = cause_update(&mut sql, &which.replace("{list}", &list));
            sql.push(&text);
            db.execute_raw(sql.statement()).await?;
        }
    }
    let mut incidents = of(ChangeKind::IncidentOpened);
    incidents.extend(of(ChangeKind::IncidentResolved));
    incidents.sort_unstable();
    incidents.dedup();
    for ids in incidents.chunks(REFRESH_IDS) {
        let mut sql = Sql::new(backend);
        let list = id_list(&mut sql, ids);
        let text = cause_update(&mut sql, &format!("id IN ({list})"));
        sql.push(&text);
        db.execute_raw(sql.statement()).await?;
    }
    mark_changed(db, events).await
}

/// The `delivery_change` kind of an event's entity, `None` for events of
/// no delivery entity.
pub fn kind_code(kind: ChangeKind) -> Option<i32> {
    match kind {
        ChangeKind::DeploymentRecorded => Some(1),
        ChangeKind::ChangeUpserted => Some(2),
        ChangeKind::IncidentOpened | ChangeKind::IncidentResolved => Some(3),
        ChangeKind::ReleaseRecorded => Some(4),
        _ => None,
    }
}

/// Records in `delivery_change`, on PostgreSQL, that the running
/// transaction wrote the delivery entities of `events`: replicas holding
/// the delivery facts in memory find them there when the notification did
/// not reach them ([`crate::service::analytics`]). In key order, so that
/// two transactions lock the rows in the same order.
async fn mark_changed(
    db: &impl ConnectionTrait,
    events: &[DomainEvent],
) -> Result<(), sea_orm::DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut keys: Vec<(i32, i64)> = events
        .iter()
        .filter_map(|e| Some((kind_code(e.kind)?, e.entity_id)))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    let sql = r#"INSERT INTO "delivery_change" ("kind", "entity_id", "xid")
SELECT k::integer, id, pg_current_xact_id()::text::bigint
FROM UNNEST($1::bigint[], $2::bigint[]) AS x(k, id)
ORDER BY k, id
ON CONFLICT ("kind", "entity_id") DO UPDATE SET "xid" = EXCLUDED."xid""#;
    db.execute_raw(statement(
        sql,
        vec![
            bigints(keys.iter().map(|(k, _)| i64::from(*k))),
            bigints(keys.iter().map(|(_, id)| *id)),
        ],
    ))
    .await?;
    Ok(())
}

/// Rewrites every change's first deployment and every incident's cause
/// (after the migration that introduced them, or after a bulk load).
///
/// # Errors
/// Database errors only.
pub async fn rebuild_all(db: &impl ConnectionTrait) -> Result<(), sea_orm::DbErr> {
    let backend = db.get_database_backend();
    for build in [first_deployment_update, cause_update] {
        let mut sql = Sql::new(backend);
        let text = build(&mut sql, "1 = 1");
        sql.push(&text);
        db.execute_raw(sql.statement()).await?;
    }
    if backend == DbBackend::Postgres {
        // Every delivery entity may have changed: replicas holding the
        // facts in memory read them all again at their next catch-up.
        let code = |kind| kind_code(kind).unwrap_or_default();
        let sql = format!(
            r#"INSERT INTO "delivery_change" ("kind", "entity_id", "xid")
SELECT k, id, pg_current_xact_id()::text::bigint FROM (
  SELECT {} AS k, "id" FROM "deployment" UNION ALL SELECT {}, "id" FROM "change"
  UNION ALL SELECT {}, "id" FROM "incident" UNION ALL SELECT {}, "id" FROM "release"
) AS x
ORDER BY k, id
ON CONFLICT ("kind", "entity_id") DO UPDATE SET "xid" = EXCLUDED."xid""#,
            code(ChangeKind::DeploymentRecorded),
            code(ChangeKind::ChangeUpserted),
            code(ChangeKind::IncidentOpened),
            code(ChangeKind::ReleaseRecorded),
        );
        db.execute_raw(statement(&sql, Vec::new())).await?;
    }
    Ok(())
}
