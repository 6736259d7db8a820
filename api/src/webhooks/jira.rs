//! Jira: `jira:issue_created`, `jira:issue_updated` (its changelog's status
//! changes become transitions) and `jira:issue_deleted`, signed with the
//! webhook's shared secret (`X-Hub-Signature: sha256=<HMAC-SHA256>`).

use chrono::DateTime;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use super::{Translation, str_at};
use crate::domain::MappingKind;
use crate::error::ApiResult;
use crate::service::ingest::{Event, EventType};
use crate::service::integrations::lookup;

pub const SOURCE: &str = "jira";

/// The status an `issue_deleted` delivery moves to: map it to a canceled
/// state (`setIntegrationMapping(kind: STATE, external: "(deleted)")`).
pub const DELETED_STATUS: &str = "(deleted)";

/// Jira writes `2026-01-05T10:00:00.000+0000`; the common model reads RFC 3339.
fn rfc3339(v: &Value) -> Value {
    let Some(s) = v.as_str() else {
        return Value::Null;
    };
    match DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        Ok(t) => json!(t.to_rfc3339()),
        Err(_) => json!(s),
    }
}

/// The delivery's time (`timestamp`, milliseconds since the epoch).
fn delivered_at(payload: &Value) -> Option<String> {
    let ms = payload["timestamp"].as_i64()?;
    DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

async fn state_of(db: &impl ConnectionTrait, status: &str) -> ApiResult<Option<String>> {
    lookup(db, SOURCE, MappingKind::State, status).await
}

/// Translates one delivery. `delivery` is `X-Atlassian-Webhook-Identifier`
/// (or a stand-in built from the payload), the base of the events' ids.
///
/// # Errors
/// Database errors while reading mappings.
pub async fn translate(
    db: &impl ConnectionTrait,
    delivery: &str,
    payload: &Value,
) -> ApiResult<Translation> {
    let event = str_at(payload, &["webhookEvent"]).unwrap_or_default();
    let issue = &payload["issue"];
    let Some(issue_id) = str_at(issue, &["id"]) else {
        return Ok(Translation::Rejected("the payload has no issue".into()));
    };
    let fields = &issue["fields"];
    let Some(project) = str_at(fields, &["project", "key"]) else {
        return Ok(Translation::Rejected("the issue names no project".into()));
    };
    let Some(unit) = lookup(db, SOURCE, MappingKind::Unit, project).await? else {
        return Ok(Translation::Rejected(format!(
            "unmapped project {project:?}"
        )));
    };
    let id = |n: usize| format!("jira-{delivery}-{n}");
    if event == "jira:issue_deleted" {
        let Some(state) = state_of(db, DELETED_STATUS).await? else {
            return Ok(Translation::Rejected(format!(
                "unmapped status {DELETED_STATUS:?}"
            )));
        };
        let Some(at) = delivered_at(payload) else {
            return Ok(Translation::Rejected(
                "the delivery has no timestamp".into(),
            ));
        };
        return Ok(Translation::Events(vec![Event::new(
            EventType::WorkItemTransitioned,
            id(0),
            SOURCE,
            json!({ "external_id": issue_id, "to_state": state, "at": at }),
        )]));
    }
    if event != "jira:issue_created" && event != "jira:issue_updated" {
        return Ok(Translation::Ignored(format!("event {event} is not used")));
    }
    let issue_type = str_at(fields, &["issuetype", "name"]).unwrap_or_default();
    let Some(item_type) = lookup(db, SOURCE, MappingKind::ItemType, issue_type).await? else {
        return Ok(Translation::Rejected(format!(
            "unmapped issue type {issue_type:?}"
        )));
    };
    let status = str_at(fields, &["status", "name"]).unwrap_or_default();
    let Some(state) = state_of(db, status).await? else {
        return Ok(Translation::Rejected(format!("unmapped status {status:?}")));
    };
    let mut events = Vec::new();
    // Status changes of an update become transitions at the delivery's time,
    // applied before the upsert so it finds the item already in its state.
    if event == "jira:issue_updated" {
        for item in payload["changelog"]["items"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if item["field"].as_str() != Some("status") {
                continue;
            }
            let to = item["toString"].as_str().unwrap_or_default();
            let Some(to_state) = state_of(db, to).await? else {
                return Ok(Translation::Rejected(format!("unmapped status {to:?}")));
            };
            let Some(at) = delivered_at(payload) else {
                return Ok(Translation::Rejected(
                    "the delivery has no timestamp".into(),
                ));
            };
            events.push(Event::new(
                EventType::WorkItemTransitioned,
                id(events.len() + 1),
                SOURCE,
                json!({ "external_id": issue_id, "to_state": to_state, "at": at }),
            ));
        }
    }
    let mut data = json!({
        "external_id": issue_id,
        "key": issue["key"],
        "unit": unit,
        "type": item_type,
        "title": fields["summary"],
        "state": state,
        "created_at": rfc3339(&fields["created"]),
        "updated_at": rfc3339(&fields["updated"]),
        "url": issue["self"],
    });
    if let Some(parent) = str_at(fields, &["parent", "id"]) {
        data["parent"] = json!(parent);
    }
    if let Some(desc) = fields["description"].as_str() {
        data["description"] = json!(desc);
    }
    events.push(Event::new(EventType::WorkItemUpserted, id(0), SOURCE, data));
    Ok(Translation::Events(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_times() {
        assert_eq!(
            rfc3339(&json!("2026-01-05T10:00:00.000+0000")),
            json!("2026-01-05T10:00:00+00:00")
        );
        assert_eq!(
            delivered_at(&json!({ "timestamp": 1767607200000_i64 })).as_deref(),
            Some("2026-01-05T10:00:00+00:00")
        );
    }
}
