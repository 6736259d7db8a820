//! A page of work items resolved in one pass when its selection is plain.
//!
//! async-graphql resolves every field of every object as a boxed future,
//! inserts each value into its object's map (hashed twice with SipHash) and
//! keeps a path node per field. For a page of 50 items with their parent
//! and unit that was about 40 % of a request's instructions, though each of
//! those fields only copies a value the item or its unit already holds.
//!
//! When the selection of a page's items asks only such fields ([`ItemField`],
//! [`UnitField`]; the parent's own selection likewise, without a parent of
//! its own), each under its own response key, with no fragment, directive
//! or argument, [`WorkItemNodes`] builds the list's value in one pass: the
//! values the fields' resolvers return, in selection order. Parents come
//! from the item loader (a page read them with its rows), units from the
//! replica's tree snapshot. Anything else (a fragment, a field that
//! queries, a unit the snapshot does not hold or a stale snapshot, a value
//! that does not parse) takes the general path, which answers as it always
//! has, errors included.
//!
//! The schema's one extension (the cost budget) looks at validation only;
//! an extension that looked at each resolved field would not see these.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{enum_value, resolve_list};
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerResult, Value,
};
use entity::{unit, work_item};

use super::RequestCtx;
use super::ids::{self, kind};
use super::units::Unit;
use super::work_items::WorkItem;
use crate::domain::{DefectOrigin, FlowType, StateCategory, UnitKind, WorkItemType};
use crate::service::directory::Tree;

/// The items of a page (`nodes`): `[WorkItem!]!` in the schema.
#[derive(Clone, Default)]
pub struct WorkItemNodes(pub Vec<WorkItem>);

impl std::ops::Deref for WorkItemNodes {
    type Target = [WorkItem];

    fn deref(&self) -> &[WorkItem] {
        &self.0
    }
}

impl FromIterator<WorkItem> for WorkItemNodes {
    fn from_iter<I: IntoIterator<Item = WorkItem>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl OutputType for WorkItemNodes {
    fn type_name() -> Cow<'static, str> {
        <Vec<WorkItem> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<WorkItem> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<WorkItem> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        if let Some(value) = in_one_pass(ctx, &self.0).await {
            return Ok(value);
        }
        resolve_list(ctx, field, &self.0, Some(self.0.len())).await
    }
}

/// A field of `WorkItem` read from the item itself, its parent or its unit.
enum ItemField {
    Typename,
    Id,
    Key,
    Title,
    Description,
    Type,
    FlowType,
    State,
    StateCategory,
    Rank,
    Blocked,
    Estimate,
    BusinessValue,
    FoundIn,
    Severity,
    CreatedAt,
    UpdatedAt,
    Parent(Vec<(Name, ItemField)>),
    Unit(Vec<(Name, UnitField)>),
}

/// A field of `Unit` read from the unit itself.
enum UnitField {
    Typename,
    Id,
    Key,
    Name,
    Kind,
    Depth,
    CreatedAt,
}

/// The plain fields of `set` with their response keys, in order; `None`
/// when any selection is not one (see the module's documentation).
fn plain<F>(
    set: &SelectionSet,
    mut field: impl FnMut(&str, &SelectionSet) -> Option<F>,
) -> Option<Vec<(Name, F)>> {
    let mut out: Vec<(Name, F)> = Vec::with_capacity(set.items.len());
    for selection in &set.items {
        let Selection::Field(f) = &selection.node else {
            return None;
        };
        let f = &f.node;
        if !f.directives.is_empty() || !f.arguments.is_empty() {
            return None;
        }
        let key = &f.response_key().node;
        if out.iter().any(|(k, _)| k == key) {
            return None;
        }
        out.push((
            key.clone(),
            field(f.name.node.as_str(), &f.selection_set.node)?,
        ));
    }
    (!out.is_empty()).then_some(out)
}

fn item_fields(set: &SelectionSet, depth: u8) -> Option<Vec<(Name, ItemField)>> {
    plain(set, |name, sub| {
        Some(match name {
            "__typename" => ItemField::Typename,
            "id" => ItemField::Id,
            "key" => ItemField::Key,
            "title" => ItemField::Title,
            "description" => ItemField::Description,
            "type" => ItemField::Type,
            "flowType" => ItemField::FlowType,
            "state" => ItemField::State,
            "stateCategory" => ItemField::StateCategory,
            "rank" => ItemField::Rank,
            "blocked" => ItemField::Blocked,
            "estimate" => ItemField::Estimate,
            "businessValue" => ItemField::BusinessValue,
            "foundIn" => ItemField::FoundIn,
            "severity" => ItemField::Severity,
            "createdAt" => ItemField::CreatedAt,
            "updatedAt" => ItemField::UpdatedAt,
            // A parent's parent would need a second round of look-ups.
            "parent" if depth == 0 => ItemField::Parent(item_fields(sub, depth + 1)?),
            "unit" => ItemField::Unit(unit_fields(sub)?),
            _ => return None,
        })
    })
}

fn unit_fields(set: &SelectionSet) -> Option<Vec<(Name, UnitField)>> {
    plain(set, |name, _| {
        Some(match name {
            "__typename" => UnitField::Typename,
            "id" => UnitField::Id,
            "key" => UnitField::Key,
            "name" => UnitField::Name,
            "kind" => UnitField::Kind,
            "depth" => UnitField::Depth,
            "createdAt" => UnitField::CreatedAt,
            _ => return None,
        })
    })
}

/// Parents by id, as the item loader holds them (`None`: not readable).
type Parents = HashMap<i64, Option<Arc<work_item::Model>>>;

/// The list's value, or `None` for the general path.
async fn in_one_pass(ctx: &ContextSelectionSet<'_>, items: &[WorkItem]) -> Option<Value> {
    let fields = item_fields(&ctx.item.node, 0)?;
    let rc = ctx.data::<RequestCtx>().ok()?;
    // One look at the snapshot for the whole list; a unit it does not hold
    // (or no fresh snapshot) sends the list down the general path.
    let tree = rc.services.units.fresh();
    let parents = if fields
        .iter()
        .any(|(_, f)| matches!(f, ItemField::Parent(_)))
    {
        let mut ids: Vec<i64> = items.iter().filter_map(|i| i.0.parent_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            Parents::new()
        } else {
            rc.items.load_many(ids).await.ok()?
        }
    } else {
        Parents::new()
    };
    let at = Lookups {
        tree: tree.as_deref(),
        parents: &parents,
    };
    let mut list = Vec::with_capacity(items.len());
    for item in items {
        list.push(item_value(&item.0, &fields, &at)?);
    }
    rc.services.flat_lists.fetch_add(1, Ordering::Relaxed);
    Some(Value::List(list))
}

/// What an item's parent and unit are read from.
struct Lookups<'a> {
    tree: Option<&'a Tree>,
    parents: &'a Parents,
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn optional<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or(Value::Null, f)
}

fn item_value(
    item: &work_item::Model,
    fields: &[(Name, ItemField)],
    at: &Lookups<'_>,
) -> Option<Value> {
    let mut object = IndexMap::with_capacity(fields.len());
    for (key, field) in fields {
        let value = match field {
            ItemField::Typename => {
                Value::String(<WorkItem as OutputType>::type_name().into_owned())
            }
            ItemField::Id => Value::String(ids::encode(kind::WORK_ITEM, item.id).0),
            ItemField::Key => text(&item.key),
            ItemField::Title => text(&item.title),
            ItemField::Description => optional(item.description.as_deref(), text),
            ItemField::Type => enum_value(WorkItemType::parse(&item.item_type).ok()?),
            ItemField::FlowType => enum_value(FlowType::parse(&item.flow_type).ok()?),
            ItemField::State => text(&item.state),
            ItemField::StateCategory => {
                enum_value(StateCategory::parse(&item.state_category).ok()?)
            }
            ItemField::Rank => text(&item.rank),
            ItemField::Blocked => Value::Boolean(item.blocked),
            ItemField::Estimate => optional(item.estimate, |v| ScalarType::to_value(&v)),
            ItemField::BusinessValue => optional(item.business_value, |v| ScalarType::to_value(&v)),
            ItemField::FoundIn => match item.found_in.as_deref() {
                None => Value::Null,
                Some(origin) => enum_value(DefectOrigin::parse(origin).ok()?),
            },
            ItemField::Severity => optional(item.severity.as_deref(), text),
            ItemField::CreatedAt => ScalarType::to_value(&item.created_at),
            ItemField::UpdatedAt => ScalarType::to_value(&item.updated_at),
            ItemField::Parent(sub) => {
                match item
                    .parent_id
                    .and_then(|p| at.parents.get(&p))
                    .and_then(Option::as_ref)
                {
                    None => Value::Null,
                    Some(parent) => item_value(parent, sub, at)?,
                }
            }
            ItemField::Unit(sub) => unit_value(at.tree?.unit(item.unit_id)?, sub)?,
        };
        object.insert(key.clone(), value);
    }
    Some(Value::Object(object))
}

fn unit_value(unit: &unit::Model, fields: &[(Name, UnitField)]) -> Option<Value> {
    let mut object = IndexMap::with_capacity(fields.len());
    for (key, field) in fields {
        let value = match field {
            UnitField::Typename => Value::String(<Unit as OutputType>::type_name().into_owned()),
            UnitField::Id => Value::String(ids::encode(kind::UNIT, unit.id).0),
            UnitField::Key => text(&unit.key),
            UnitField::Name => text(&unit.name),
            UnitField::Kind => enum_value(UnitKind::parse(&unit.kind).ok()?),
            UnitField::Depth => Value::from(unit.depth),
            UnitField::CreatedAt => ScalarType::to_value(&unit.created_at),
        };
        object.insert(key.clone(), value);
    }
    Some(Value::Object(object))
}
