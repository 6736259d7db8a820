//! The event format of DESIGN §4: the envelope every event shares, the
//! per-type `data` fields checked for shape before any lookup, and the
//! [`Event`] the webhook adapters build in that format.

use chrono::{DateTime, Utc};
use entity::{change, deployment};
use sea_orm::{DbErr, Set};
use serde_json::{Map, Value};

use crate::domain::{DefectOrigin, WorkItemType, validate_item_key};
use crate::error::ApiError;
use crate::policy::UnitPath;

/// Why an event was not applied.
pub(super) enum Fail {
    /// The event is wrong: the reason goes back to the sender.
    Reject(String),
    /// Something failed on our side: nothing was written; the event may be resent.
    Internal(DbErr),
}

impl From<DbErr> for Fail {
    fn from(e: DbErr) -> Self {
        Fail::Internal(e)
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Internal(err) => Fail::Internal(DbErr::Custom(err.to_string())),
            // Keeps its meaning, so that the request answers 503.
            ApiError::Unavailable(_) => Fail::Internal(DbErr::ConnectionAcquire(
                sea_orm::error::ConnAcquireErr::ConnectionClosed,
            )),
            other => Fail::Reject(other.message()),
        }
    }
}

pub(super) fn reject<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Reject(msg.into()))
}

/// One event of a batch, as received.
pub enum Raw {
    /// An NDJSON line, not parsed yet.
    Line(String),
    /// An element of a JSON array.
    Value(Value),
    /// An event already checked and taken apart ([`Raw::prepared`]), so
    /// that a reader thread does it rather than the batch's applier.
    Prepared(Prepared),
}

/// An event's envelope, or the result that rejects it for want of one.
pub struct Prepared(pub(super) Result<Envelope, super::EventResult>);

impl Raw {
    /// The event of `line` checked and taken apart as a batch would.
    pub fn prepared(line: usize, raw: Raw) -> Raw {
        Raw::Prepared(Prepared(super::batch::parse(line, raw)))
    }
}

/// The event types of DESIGN §4, by the name their `type` field carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    UnitUpserted,
    WorkItemUpserted,
    WorkItemTransitioned,
    ChangeUpserted,
    DeploymentRecorded,
    ReleaseRecorded,
    IncidentOpened,
    IncidentResolved,
    KeyResultMeasured,
    ObjectiveUpserted,
}

impl EventType {
    /// The name an event's `type` field carries.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnitUpserted => "unit.upserted",
            Self::WorkItemUpserted => "work_item.upserted",
            Self::WorkItemTransitioned => "work_item.transitioned",
            Self::ChangeUpserted => "change.upserted",
            Self::DeploymentRecorded => "deployment.recorded",
            Self::ReleaseRecorded => "release.recorded",
            Self::IncidentOpened => "incident.opened",
            Self::IncidentResolved => "incident.resolved",
            Self::KeyResultMeasured => "key_result.measured",
            Self::ObjectiveUpserted => "objective.upserted",
        }
    }
}

/// An event an integration builds (the webhook adapters): the envelope of
/// DESIGN §4 around its `data`. It is applied as [`Raw::Value`] of
/// [`Event::into_value`], so it is parsed and checked exactly like an event
/// sent to `POST /ingest`; `data` keeps the vendor's values as they came, for
/// those checks to judge.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub kind: EventType,
    pub source: String,
    pub data: Value,
}

impl Event {
    pub fn new(kind: EventType, id: impl Into<String>, source: &str, data: Value) -> Self {
        Self {
            id: id.into(),
            kind,
            source: source.to_owned(),
            data,
        }
    }

    /// The event in the format `POST /ingest` reads.
    pub fn into_value(self) -> Value {
        serde_json::json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "source": self.source,
            "data": self.data,
        })
    }
}

/// The parsed envelope of an event.
#[derive(Clone)]
pub(super) struct Envelope {
    pub(super) id: String,
    pub(super) kind: String,
    pub(super) source: String,
    pub(super) data: Map<String, Value>,
}

pub(super) fn envelope(raw: Value) -> Result<Envelope, (Option<String>, String)> {
    let Value::Object(mut obj) = raw else {
        return Err((None, "an event must be a JSON object".into()));
    };
    let id = match obj.remove("id") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => s,
        _ => {
            return Err((
                None,
                "`id` must be a non-empty string of at most 255 bytes".into(),
            ));
        }
    };
    let kind = match obj.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err((Some(id), "`type` must be a string".into())),
    };
    let source = match obj.remove("source") {
        Some(Value::String(s))
            if (1..=32).contains(&s.len())
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }) =>
        {
            s
        }
        _ => {
            return Err((
                Some(id),
                "`source` must be 1 to 32 characters of a-z, 0-9, '-' and '_'".into(),
            ));
        }
    };
    let data = match obj.remove("data") {
        Some(Value::Object(m)) => m,
        _ => return Err((Some(id), "`data` must be an object".into())),
    };
    Ok(Envelope {
        id,
        kind,
        source,
        data,
    })
}

pub(super) fn text<'v>(data: &'v Map<String, Value>, name: &str) -> Result<&'v str, Fail> {
    match data.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        _ => reject(format!(
            "`data.{name}` is required and must be a non-empty string"
        )),
    }
}

pub(super) fn opt_text<'v>(
    data: &'v Map<String, Value>,
    name: &str,
) -> Result<Option<&'v str>, Fail> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        _ => reject(format!("`data.{name}` must be a string")),
    }
}

pub(super) fn opt_number(data: &Map<String, Value>, name: &str) -> Result<Option<f64>, Fail> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => reject(format!("`data.{name}` must be a non-negative number")),
        },
        _ => reject(format!("`data.{name}` must be a number")),
    }
}

pub(super) fn parse_time(name: &str, s: &str) -> Result<DateTime<Utc>, Fail> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| reject(format!("`data.{name}` is not an RFC 3339 timestamp: {s:?}")))
}

pub(super) fn time(data: &Map<String, Value>, name: &str) -> Result<DateTime<Utc>, Fail> {
    parse_time(name, text(data, name)?)
}

pub(super) fn opt_time(
    data: &Map<String, Value>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, Fail> {
    opt_text(data, name)?
        .map(|s| parse_time(name, s))
        .transpose()
}

pub(super) fn list<'v>(data: &'v Map<String, Value>, name: &str) -> Result<Vec<&'v str>, Fail> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                _ => reject(format!("`data.{name}` must be a list of strings")),
            })
            .collect(),
        _ => reject(format!("`data.{name}` must be a list of strings")),
    }
}

pub(super) fn parse_enum<T>(
    name: &str,
    value: &str,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<T, Fail>
where
    T: Copy,
{
    all.iter()
        .copied()
        .find(|v| as_str(*v) == value)
        .map_or_else(
            || {
                let names: Vec<&str> = all.iter().map(|v| as_str(*v)).collect();
                reject(format!(
                    "`data.{name}` must be one of {}, not {value:?}",
                    names.join(", ")
                ))
            },
            Ok,
        )
}

/// The fields of a `work_item.upserted` event, checked for shape.
pub(super) struct ItemFields<'d> {
    pub(super) ext: &'d str,
    pub(super) key: &'d str,
    pub(super) unit: &'d str,
    pub(super) item_type: WorkItemType,
    pub(super) title: String,
    pub(super) state: &'d str,
    pub(super) created_at: DateTime<Utc>,
    pub(super) found_in: Option<DefectOrigin>,
    pub(super) severity: Option<String>,
    pub(super) estimate: Option<f64>,
    pub(super) business_value: Option<f64>,
    pub(super) url: Option<String>,
    pub(super) assignee: Option<&'d str>,
    pub(super) parent: Option<&'d str>,
    pub(super) description: Option<&'d str>,
    pub(super) updated_at: Option<DateTime<Utc>>,
}

impl<'d> ItemFields<'d> {
    pub(super) fn parse(d: &'d Map<String, Value>) -> Result<Self, Fail> {
        let ext = text(d, "external_id")?;
        let key = text(d, "key")?;
        validate_item_key(key)?;
        let unit = text(d, "unit")?;
        let item_type = parse_enum(
            "type",
            text(d, "type")?,
            WorkItemType::ALL,
            WorkItemType::as_str,
        )?;
        let title = text(d, "title")?.trim().to_owned();
        if title.chars().count() > 500 {
            return reject("`data.title` must have at most 500 characters");
        }
        let state = text(d, "state")?;
        let created_at = time(d, "created_at")?;
        let found_in = opt_text(d, "found_in")?
            .map(|f| parse_enum("found_in", f, DefectOrigin::ALL, DefectOrigin::as_str))
            .transpose()?;
        if found_in.is_some() && item_type != WorkItemType::Defect {
            return reject("`data.found_in` applies to defects only");
        }
        Ok(Self {
            ext,
            key,
            unit,
            item_type,
            title,
            state,
            created_at,
            found_in,
            severity: opt_text(d, "severity")?.map(str::to_owned),
            estimate: opt_number(d, "estimate")?,
            business_value: opt_number(d, "business_value")?,
            url: opt_text(d, "url")?.map(str::to_owned),
            assignee: opt_text(d, "assignee")?,
            parent: opt_text(d, "parent")?,
            description: opt_text(d, "description")?,
            updated_at: opt_time(d, "updated_at")?,
        })
    }

    /// Whether the owning unit's kind may own this type of item.
    pub(super) fn check_owner(&self, path: &UnitPath) -> Result<(), Fail> {
        if self.item_type.owner_kinds().contains(&path.kind) {
            Ok(())
        } else {
            reject(format!(
                "a {} cannot be owned by a {} unit",
                self.item_type.as_str(),
                path.kind.as_str()
            ))
        }
    }
}

/// The fields of a `change.upserted` event, checked for shape.
pub(super) struct ChangeFields<'d> {
    pub(super) ext: &'d str,
    pub(super) unit: &'d str,
    pub(super) repository: &'d str,
    pub(super) title: Option<&'d str>,
    pub(super) url: Option<&'d str>,
    pub(super) first_commit_at: Option<DateTime<Utc>>,
    pub(super) opened_at: Option<DateTime<Utc>>,
    pub(super) merged_at: DateTime<Utc>,
    pub(super) sha: Option<String>,
    pub(super) work_items: Vec<&'d str>,
}

impl<'d> ChangeFields<'d> {
    pub(super) fn parse(d: &'d Map<String, Value>) -> Result<Self, Fail> {
        let ext = text(d, "external_id")?;
        let unit = text(d, "unit")?;
        let repository = text(d, "repository")?;
        let merged_at = time(d, "merged_at")?;
        let first_commit_at = opt_time(d, "first_commit_at")?;
        let opened_at = opt_time(d, "opened_at")?;
        if first_commit_at.is_some_and(|f| f > merged_at)
            || opened_at.is_some_and(|o| o > merged_at)
        {
            return reject("a change cannot be committed or opened after it was merged");
        }
        let sha = opt_text(d, "sha")?.map(str::to_ascii_lowercase);
        if sha.as_ref().is_some_and(|s| {
            !(4..=64).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_hexdigit())
        }) {
            return reject("`data.sha` must be a commit id: 4 to 64 hexadecimal digits");
        }
        Ok(Self {
            ext,
            unit,
            repository,
            sha,
            title: opt_text(d, "title")?,
            url: opt_text(d, "url")?,
            first_commit_at,
            opened_at,
            merged_at,
            work_items: list(d, "work_items")?,
        })
    }

    pub(super) fn model(&self, unit_id: i64, source: &str) -> change::ActiveModel {
        change::ActiveModel {
            unit_id: Set(unit_id),
            source: Set(source.to_owned()),
            external_id: Set(self.ext.to_owned()),
            repository: Set(self.repository.to_owned()),
            title: Set(self.title.map(str::to_owned)),
            url: Set(self.url.map(str::to_owned)),
            first_commit_at: Set(self.first_commit_at),
            opened_at: Set(self.opened_at),
            merged_at: Set(self.merged_at),
            merge_sha: Set(self.sha.clone()),
            ..Default::default()
        }
    }
}

/// The fields of a `deployment.recorded` event, checked for shape.
pub(super) struct DeploymentFields<'d> {
    pub(super) ext: &'d str,
    pub(super) unit: &'d str,
    pub(super) environment: &'d str,
    pub(super) status: &'d str,
    pub(super) finished_at: DateTime<Utc>,
    pub(super) changes: Vec<&'d str>,
}

impl<'d> DeploymentFields<'d> {
    pub(super) fn parse(d: &'d Map<String, Value>) -> Result<Self, Fail> {
        let ext = text(d, "external_id")?;
        let unit = text(d, "unit")?;
        let environment = text(d, "environment")?;
        if !environment
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            || environment.len() > 32
        {
            return reject(
                "`data.environment` must be an upper-case name such as PRODUCTION or STAGING",
            );
        }
        let status = text(d, "status")?;
        if status != "SUCCESS" && status != "FAILURE" {
            return reject(format!(
                "`data.status` must be SUCCESS or FAILURE, not {status:?}"
            ));
        }
        Ok(Self {
            ext,
            unit,
            environment,
            status,
            finished_at: time(d, "finished_at")?,
            changes: list(d, "changes")?,
        })
    }

    pub(super) fn model(&self, unit_id: i64, source: &str) -> deployment::ActiveModel {
        deployment::ActiveModel {
            unit_id: Set(unit_id),
            source: Set(source.to_owned()),
            external_id: Set(self.ext.to_owned()),
            environment: Set(self.environment.to_owned()),
            status: Set(self.status.to_owned()),
            finished_at: Set(self.finished_at),
            ..Default::default()
        }
    }
}

/// The fields of a `work_item.transitioned` event, checked for shape.
pub(super) struct TransitionFields<'d> {
    pub(super) ext: &'d str,
    pub(super) to_state: &'d str,
    pub(super) at: DateTime<Utc>,
}

impl<'d> TransitionFields<'d> {
    pub(super) fn parse(d: &'d Map<String, Value>) -> Result<Self, Fail> {
        Ok(Self {
            ext: text(d, "external_id")?,
            to_state: text(d, "to_state")?,
            at: time(d, "at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_event_reads_back_as_sent() {
        let data = serde_json::json!({ "external_id": "42", "name": "v1.2" });
        let event = Event::new(EventType::ReleaseRecorded, "github-d-0", "github", data);
        let Ok(env) = envelope(event.into_value()) else {
            panic!("a built event is a valid envelope");
        };
        assert_eq!(env.id, "github-d-0");
        assert_eq!(env.kind, "release.recorded");
        assert_eq!(env.source, "github");
        assert_eq!(env.data.get("name"), Some(&Value::from("v1.2")));
    }
}
