//! GitLab: Issue, Merge Request, Deployment and Release hooks, authenticated
//! by the `X-Gitlab-Token` header (compared in constant time).

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{Translation, changes_at, closing_refs, item_key, known_items, str_at};
use crate::domain::MappingKind;
use crate::error::ApiResult;
use crate::service::ingest::{Event, EventType};
use crate::service::integrations::lookup;

pub const SOURCE: &str = "gitlab";

/// Compares the token with the configured secret in constant time.
pub fn verify(secret: &str, token: Option<&str>) -> bool {
    token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(secret.as_bytes())))
}

/// GitLab writes times as `2026-02-01 09:00:00 UTC` in some hooks and as
/// RFC 3339 in others; the common model takes RFC 3339.
fn rfc3339(v: &Value) -> Value {
    let Some(s) = v.as_str() else {
        return Value::Null;
    };
    if let Some(rest) = s.strip_suffix(" UTC") {
        return json!(format!("{}Z", rest.replacen(' ', "T", 1)));
    }
    json!(s)
}

/// Translates one hook. `delivery` identifies the delivery (GitLab's
/// `X-Gitlab-Event-UUID`), the base of the events' idempotency ids.
///
/// # Errors
/// Database errors while reading mappings.
pub async fn translate(
    db: &impl ConnectionTrait,
    delivery: &str,
    payload: &Value,
) -> ApiResult<Translation> {
    let kind = str_at(payload, &["object_kind"]).unwrap_or_default();
    let Some(project) = str_at(payload, &["project", "path_with_namespace"]) else {
        return Ok(Translation::Rejected("the payload names no project".into()));
    };
    let Some(unit) = lookup(db, SOURCE, MappingKind::Unit, project).await? else {
        return Ok(Translation::Rejected(format!(
            "unmapped project {project:?}"
        )));
    };
    let id = format!("gitlab-{delivery}-0");
    let attrs = &payload["object_attributes"];
    match kind {
        "issue" => {
            let Some(iid) = attrs["iid"].as_i64() else {
                return Ok(Translation::Rejected("the issue has no iid".into()));
            };
            let status = str_at(attrs, &["state"]).unwrap_or("opened");
            let Some(state) = lookup(db, SOURCE, MappingKind::State, status).await? else {
                return Ok(Translation::Rejected(format!("unmapped status {status:?}")));
            };
            let mut item_type = "STORY".to_owned();
            for label in payload["labels"].as_array().into_iter().flatten() {
                if let Some(name) = label["title"].as_str()
                    && let Some(t) = lookup(db, SOURCE, MappingKind::ItemType, name).await?
                {
                    item_type = t;
                    break;
                }
            }
            Ok(Translation::Events(vec![Event::new(
                EventType::WorkItemUpserted,
                id,
                SOURCE,
                json!({
                    "external_id": format!("{project}#{iid}"),
                    "key": item_key(project, iid),
                    "unit": unit,
                    "type": item_type,
                    "title": attrs["title"],
                    "description": attrs["description"],
                    "state": state,
                    "created_at": rfc3339(&attrs["created_at"]),
                    "updated_at": rfc3339(&attrs["updated_at"]),
                    "url": attrs["url"],
                }),
            )]))
        }
        "merge_request" => {
            if str_at(attrs, &["state"]) != Some("merged") {
                return Ok(Translation::Ignored("merge request not merged".into()));
            }
            let merged_at = if attrs["merged_at"].is_null() {
                &attrs["updated_at"]
            } else {
                &attrs["merged_at"]
            };
            let text = format!(
                "{} {}",
                attrs["title"].as_str().unwrap_or_default(),
                attrs["description"].as_str().unwrap_or_default()
            );
            let closes = known_items(db, SOURCE, closing_refs(&text, project)).await?;
            Ok(Translation::Events(vec![Event::new(
                EventType::ChangeUpserted,
                id,
                SOURCE,
                json!({
                    "work_items": closes,
                    "sha": attrs["merge_commit_sha"],
                    "external_id": format!("{project}!{}", attrs["iid"]),
                    "unit": unit,
                    "repository": project,
                    "title": attrs["title"],
                    "url": attrs["url"],
                    "opened_at": rfc3339(&attrs["created_at"]),
                    "merged_at": rfc3339(merged_at),
                }),
            )]))
        }
        "deployment" => {
            let status = match str_at(payload, &["status"]) {
                Some("success") => "SUCCESS",
                Some("failed") => "FAILURE",
                other => {
                    return Ok(Translation::Ignored(format!(
                        "deployment {}",
                        other.unwrap_or("without status")
                    )));
                }
            };
            let env = str_at(payload, &["environment"]).unwrap_or_default();
            let Some(environment) = lookup(db, SOURCE, MappingKind::Environment, env).await? else {
                return Ok(Translation::Rejected(format!(
                    "unmapped environment {env:?}"
                )));
            };
            let changes = changes_at(db, SOURCE, project, str_at(payload, &["short_sha"])).await?;
            Ok(Translation::Events(vec![Event::new(
                EventType::DeploymentRecorded,
                id,
                SOURCE,
                json!({
                    "changes": changes,
                    "external_id": payload["deployment_id"].to_string(),
                    "unit": unit,
                    "environment": environment,
                    "status": status,
                    "finished_at": rfc3339(&payload["status_changed_at"]),
                }),
            )]))
        }
        "release" => {
            let action = str_at(payload, &["action"]).unwrap_or_default();
            if action != "create" && action != "update" {
                return Ok(Translation::Ignored(format!("release {action}")));
            }
            let name = payload["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(payload["tag"].as_str());
            Ok(Translation::Events(vec![Event::new(
                EventType::ReleaseRecorded,
                id,
                SOURCE,
                json!({
                    "external_id": payload["id"].to_string(),
                    "unit": unit,
                    "name": name,
                    "released_at": rfc3339(&payload["released_at"]),
                }),
            )]))
        }
        other => Ok(Translation::Ignored(format!("hook {other} is not used"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_times() {
        assert!(verify("s3cret-token-123456", Some("s3cret-token-123456")));
        assert!(!verify("s3cret-token-123456", Some("s3cret-token-123457")));
        assert!(!verify("s3cret-token-123456", None));
        assert_eq!(
            rfc3339(&json!("2026-02-01 09:00:00 UTC")),
            json!("2026-02-01T09:00:00Z")
        );
        assert_eq!(
            rfc3339(&json!("2026-02-01T09:00:00Z")),
            json!("2026-02-01T09:00:00Z")
        );
    }
}
