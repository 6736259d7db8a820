//! Webhook adapters: verify a vendor's signature and translate its native
//! payload into common-data-model events (DESIGN §4), which then take the
//! same path as `POST /ingest`. Unmapped repositories, statuses or
//! environments are rejected with a reason in the ingest log, never guessed.

pub mod github;
pub mod gitlab;
pub mod jira;

use entity::{change, external_ref};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde_json::Value;

use crate::service::ingest::Event;

/// The string at a path of keys, if there is one.
pub(crate) fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |acc, k| acc.get(k))?.as_str()
}

/// An item key from a repository or project path and a number: the last
/// path segment, upper-cased, then the number (`acme/cards-api`, 42 →
/// `CARDS-API-42`).
pub(crate) fn item_key(path: &str, number: i64) -> String {
    let name: String = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{name}-{number}")
}

/// Issues a pull or merge request says it closes, by the closing keywords
/// GitHub and GitLab share (`Fixes #12`, `closes: #3`, `Resolves acme/api#7`),
/// as `path#number` references; `path` is the request's own repository or
/// project unless the reference names another.
pub(crate) fn closing_refs(text: &str, path: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "close",
        "closes",
        "closed",
        "fix",
        "fixes",
        "fixed",
        "resolve",
        "resolves",
        "resolved",
        "implement",
        "implements",
    ];
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let mut refs = Vec::new();
    for pair in words.windows(2) {
        let keyword = pair[0].trim_end_matches(':').to_ascii_lowercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            continue;
        }
        let target = pair[1].trim_end_matches(['.', ')', ';']);
        let Some((repo, number)) = target.rsplit_once('#') else {
            continue;
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let repo = if repo.is_empty() { path } else { repo };
        let r = format!("{repo}#{number}");
        if !refs.contains(&r) {
            refs.push(r);
        }
    }
    refs
}

/// The references among `refs` that name items already known from `source`:
/// a request that closes an issue Gemba never received still lands, without
/// that link.
pub(crate) async fn known_items(
    db: &impl ConnectionTrait,
    source: &str,
    refs: Vec<String>,
) -> Result<Vec<String>, DbErr> {
    if refs.is_empty() {
        return Ok(refs);
    }
    let known: Vec<String> = external_ref::Entity::find()
        .select_only()
        .column(external_ref::Column::ExternalId)
        .filter(external_ref::Column::Source.eq(source))
        .filter(external_ref::Column::ExternalId.is_in(refs.clone()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(refs.into_iter().filter(|r| known.contains(r)).collect())
}

/// The changes of `repository` whose merge commit is `sha` (a full or an
/// abbreviated commit id): what a deployment of that commit ships, as far as
/// Gemba can tell without the repository's history.
pub(crate) async fn changes_at(
    db: &impl ConnectionTrait,
    source: &str,
    repository: &str,
    sha: Option<&str>,
) -> Result<Vec<String>, DbErr> {
    let Some(sha) = sha
        .map(str::to_ascii_lowercase)
        .filter(|s| s.len() >= 4 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return Ok(Vec::new());
    };
    change::Entity::find()
        .select_only()
        .column(change::Column::ExternalId)
        .filter(change::Column::Source.eq(source))
        .filter(change::Column::Repository.eq(repository))
        .filter(change::Column::MergeSha.like(format!("{sha}%")))
        .into_tuple()
        .all(db)
        .await
}

/// What a payload translates to.
#[derive(Debug)]
pub enum Translation {
    /// Events to apply, in order.
    Events(Vec<Event>),
    /// A delivery the adapter deliberately ignores (pings, other actions).
    Ignored(String),
    /// A delivery that cannot be translated; the reason goes to the ingest log.
    Rejected(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_references() {
        assert_eq!(
            closing_refs(
                "Vault client. Fixes #42, closes: acme/api#7 and resolves #42.",
                "acme/cards"
            ),
            vec!["acme/cards#42", "acme/api#7"]
        );
        assert!(closing_refs("see #42; fixes the build", "acme/cards").is_empty());
        assert!(closing_refs("Fixes #", "acme/cards").is_empty());
    }
}
