//! GitHub: `issues`, `pull_request`, `deployment_status` and `release`
//! deliveries, signed with `X-Hub-Signature-256` (HMAC-SHA256 of the body).

use hmac::{Hmac, Mac};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Translation, changes_at, closing_refs, item_key, known_items, str_at};
use crate::domain::MappingKind;
use crate::error::ApiResult;
use crate::service::ingest::{Event, EventType};
use crate::service::integrations::lookup;

pub const SOURCE: &str = "github";

/// Verifies `X-Hub-Signature-256: sha256=<hex>` in constant time.
pub fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Translates one delivery. `delivery` is `X-GitHub-Delivery`, the base of
/// the events' idempotency ids.
///
/// # Errors
/// Database errors while reading mappings.
pub async fn translate(
    db: &impl ConnectionTrait,
    event: &str,
    delivery: &str,
    payload: &Value,
) -> ApiResult<Translation> {
    if event == "ping" {
        return Ok(Translation::Ignored("ping".into()));
    }
    let Some(repo) = str_at(payload, &["repository", "full_name"]) else {
        return Ok(Translation::Rejected(
            "the payload names no repository".into(),
        ));
    };
    let Some(unit) = lookup(db, SOURCE, MappingKind::Unit, repo).await? else {
        return Ok(Translation::Rejected(format!(
            "unmapped repository {repo:?}"
        )));
    };
    let action = str_at(payload, &["action"]).unwrap_or_default();
    let id = |n: usize| format!("github-{delivery}-{n}");
    match event {
        "issues" => {
            let issue = &payload["issue"];
            let Some(number) = issue["number"].as_i64() else {
                return Ok(Translation::Rejected("the issue has no number".into()));
            };
            let status = str_at(issue, &["state"]).unwrap_or("open");
            let Some(state) = lookup(db, SOURCE, MappingKind::State, status).await? else {
                return Ok(Translation::Rejected(format!("unmapped status {status:?}")));
            };
            let mut item_type = "STORY".to_owned();
            for label in issue["labels"].as_array().into_iter().flatten() {
                if let Some(name) = label["name"].as_str()
                    && let Some(t) = lookup(db, SOURCE, MappingKind::ItemType, name).await?
                {
                    item_type = t;
                    break;
                }
            }
            let mut data = json!({
                "external_id": format!("{repo}#{number}"),
                "key": item_key(repo, number),
                "unit": unit,
                "type": item_type,
                "title": issue["title"],
                "state": state,
                "created_at": issue["created_at"],
                "updated_at": issue["updated_at"],
                "url": issue["html_url"],
            });
            if let Some(body) = issue["body"].as_str() {
                data["description"] = json!(body);
            }
            Ok(Translation::Events(vec![Event::new(
                EventType::WorkItemUpserted,
                id(0),
                SOURCE,
                data,
            )]))
        }
        "pull_request" => {
            let pr = &payload["pull_request"];
            if action != "closed" || pr["merged"].as_bool() != Some(true) {
                return Ok(Translation::Ignored(format!(
                    "pull request {action}, not merged"
                )));
            }
            let text = format!(
                "{} {}",
                pr["title"].as_str().unwrap_or_default(),
                pr["body"].as_str().unwrap_or_default()
            );
            let closes = known_items(db, SOURCE, closing_refs(&text, repo)).await?;
            Ok(Translation::Events(vec![Event::new(
                EventType::ChangeUpserted,
                id(0),
                SOURCE,
                json!({
                    "work_items": closes,
                    "sha": pr["merge_commit_sha"],
                    "external_id": format!("{repo}!{}", pr["number"]),
                    "unit": unit,
                    "repository": repo,
                    "title": pr["title"],
                    "url": pr["html_url"],
                    "opened_at": pr["created_at"],
                    "merged_at": pr["merged_at"],
                }),
            )]))
        }
        "deployment_status" => {
            let status = str_at(payload, &["deployment_status", "state"]).unwrap_or_default();
            let status = match status {
                "success" => "SUCCESS",
                "failure" | "error" => "FAILURE",
                other => return Ok(Translation::Ignored(format!("deployment {other}"))),
            };
            let env = str_at(payload, &["deployment", "environment"]).unwrap_or_default();
            let Some(environment) = lookup(db, SOURCE, MappingKind::Environment, env).await? else {
                return Ok(Translation::Rejected(format!(
                    "unmapped environment {env:?}"
                )));
            };
            let changes =
                changes_at(db, SOURCE, repo, str_at(payload, &["deployment", "sha"])).await?;
            Ok(Translation::Events(vec![Event::new(
                EventType::DeploymentRecorded,
                id(0),
                SOURCE,
                json!({
                    "changes": changes,
                    "external_id": payload["deployment"]["id"].to_string(),
                    "unit": unit,
                    "environment": environment,
                    "status": status,
                    "finished_at": payload["deployment_status"]["updated_at"],
                }),
            )]))
        }
        "release" => {
            if action != "published" {
                return Ok(Translation::Ignored(format!("release {action}")));
            }
            let r = &payload["release"];
            let name = r["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(r["tag_name"].as_str());
            Ok(Translation::Events(vec![Event::new(
                EventType::ReleaseRecorded,
                id(0),
                SOURCE,
                json!({
                    "external_id": r["id"].to_string(),
                    "unit": unit,
                    "name": name,
                    "released_at": r["published_at"],
                }),
            )]))
        }
        other => Ok(Translation::Ignored(format!("event {other} is not used"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"It's a Secret to Everybody").unwrap();
        mac.update(b"Hello, World!");
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // GitHub's documented example signature for this secret and body.
        assert_eq!(
            sig,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let header = format!("sha256={sig}");
        assert!(verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            Some(&header)
        ));
        assert!(!verify(
            "It's a Secret to Everybody",
            b"Hello, World?",
            Some(&header)
        ));
        assert!(!verify("another secret", b"Hello, World!", Some(&header)));
        assert!(!verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            None
        ));
        assert!(!verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            Some("sha256=zz")
        ));
    }

    #[test]
    fn keys_from_repositories() {
        assert_eq!(item_key("acme/cards-api", 42), "CARDS-API-42");
    }
}
