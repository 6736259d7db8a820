//! The access model (DESIGN §2): the one place that decides who may read and
//! write what. Services call it for every operation; list reads get their
//! scope as a SQL condition so filtering happens inside the database.

use std::collections::HashSet;
use std::sync::Arc;

use entity::{unit, unit_closure, work_item};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition};

use crate::auth::Viewer;
use crate::domain::{Role, UnitKind};
use crate::error::{ApiError, ApiResult};

/// A unit as the policy sees it: its id, kind and its ancestors.
#[derive(Clone, Debug)]
pub struct UnitPath {
    pub id: i64,
    pub kind: UnitKind,
    /// Strict ancestors, farthest first.
    pub ancestors: Vec<i64>,
}

impl UnitPath {
    /// Whether `root` is this unit or one of its ancestors.
    fn is_under(&self, root: i64) -> bool {
        self.id == root || self.ancestors.contains(&root)
    }
}

/// What one request's caller may do, derived from their memberships.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    viewer: Option<Arc<Viewer>>,
    admin: bool,
    /// Roots whose whole subtree's items are readable (team member, managers).
    item_roots: Vec<i64>,
    /// Units whose own items are readable: the line above the item roots.
    item_line: HashSet<i64>,
    /// Roots whose non-team units' items are readable (executives).
    exec_roots: Vec<i64>,
    /// Roots whose subtree's aggregates are readable.
    aggregate_roots: Vec<i64>,
    /// Units whose aggregates are readable: the line above non-executive roots.
    aggregate_line: HashSet<i64>,
    /// Teams whose items a team member may write.
    write_teams: Vec<i64>,
    /// Roots under which a manager may write items.
    write_roots: Vec<i64>,
    /// Units under which a manager may create units: (unit, role).
    structure_roots: Vec<(i64, Role)>,
}

impl Policy {
    /// The policy of a caller who sent no token.
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn for_viewer(viewer: Viewer) -> Self {
        let mut p = Policy::default();
        for g in &viewer.grants {
            match g.role {
                Role::Admin => p.admin = true,
                Role::Executive => {
                    p.exec_roots.push(g.unit_id);
                    p.aggregate_roots.push(g.unit_id);
                }
                Role::TeamMember => {
                    p.item_roots.push(g.unit_id);
                    p.item_line.extend(&g.ancestors);
                    p.aggregate_roots.push(g.unit_id);
                    p.aggregate_line.extend(&g.ancestors);
                    p.write_teams.push(g.unit_id);
                }
                Role::ProgramManager | Role::PortfolioManager => {
                    p.item_roots.push(g.unit_id);
                    p.item_line.extend(&g.ancestors);
                    p.aggregate_roots.push(g.unit_id);
                    p.aggregate_line.extend(&g.ancestors);
                    p.write_roots.push(g.unit_id);
                    p.structure_roots.push((g.unit_id, g.role));
                }
            }
        }
        p.viewer = Some(Arc::new(viewer));
        p
    }

    /// The caller, or `UNAUTHENTICATED`.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when no valid token came with the request.
    pub fn viewer(&self) -> ApiResult<&Viewer> {
        self.viewer.as_deref().ok_or(ApiError::Unauthenticated)
    }

    pub fn is_admin(&self) -> bool {
        self.admin && self.viewer.is_some()
    }

    /// # Errors
    /// `UNAUTHENTICATED` or `FORBIDDEN` unless the caller is an admin.
    pub fn require_admin(&self) -> ApiResult<()> {
        self.viewer()?;
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("only an admin may do this"))
        }
    }

    /// The SQL condition selecting the work items this caller may read, on
    /// `work_item.unit_id`. Add it to every query that returns items.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for an anonymous caller.
    pub fn item_condition(&self) -> ApiResult<Condition> {
        self.viewer()?;
        let unit_col = Expr::col((work_item::Entity, work_item::Column::UnitId));
        if self.admin {
            return Ok(Condition::all());
        }
        let mut cond = Condition::any();
        if !self.item_roots.is_empty() {
            let subtree = Query::select()
                .column(unit_closure::Column::DescendantId)
                .from(unit_closure::Entity)
                .and_where(unit_closure::Column::AncestorId.is_in(self.item_roots.clone()))
                .to_owned();
            cond = cond.add(unit_col.clone().in_subquery(subtree));
        }
        if !self.item_line.is_empty() {
            cond = cond.add(unit_col.clone().is_in(self.item_line.iter().copied()));
        }
        if !self.exec_roots.is_empty() {
            let upper_levels = Query::select()
                .column((unit_closure::Entity, unit_closure::Column::DescendantId))
                .from(unit_closure::Entity)
                .inner_join(
                    unit::Entity,
                    Expr::col((unit::Entity, unit::Column::Id))
                        .equals((unit_closure::Entity, unit_closure::Column::DescendantId)),
                )
                .and_where(
                    Expr::col((unit_closure::Entity, unit_closure::Column::AncestorId))
                        .is_in(self.exec_roots.clone()),
                )
                .and_where(
                    Expr::col((unit::Entity, unit::Column::Kind)).ne(UnitKind::Team.as_str()),
                )
                .to_owned();
            cond = cond.add(unit_col.in_subquery(upper_levels));
        }
        if cond.is_empty() {
            // No membership: nothing is readable.
            return Ok(Condition::all().add(Expr::val(1).eq(0)));
        }
        Ok(cond)
    }

    /// Whether the caller may read the items owned by `unit`.
    pub fn can_read_items_of(&self, unit: &UnitPath) -> bool {
        if self.viewer.is_none() {
            return false;
        }
        self.admin
            || self.item_roots.iter().any(|r| unit.is_under(*r))
            || self.item_line.contains(&unit.id)
            || (unit.kind != UnitKind::Team && self.exec_roots.iter().any(|r| unit.is_under(*r)))
    }

    /// Whether the caller may read aggregates (metrics, counts) of `unit`.
    pub fn can_read_aggregates_of(&self, unit: &UnitPath) -> bool {
        if self.viewer.is_none() {
            return false;
        }
        self.admin
            || self.aggregate_roots.iter().any(|r| unit.is_under(*r))
            || self.aggregate_line.contains(&unit.id)
    }

    /// # Errors
    /// `UNAUTHENTICATED`, or `FORBIDDEN` outside the caller's aggregate scope.
    pub fn require_aggregates_of(&self, unit: &UnitPath) -> ApiResult<()> {
        self.viewer()?;
        if self.can_read_aggregates_of(unit) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "you may not read aggregates of this unit",
            ))
        }
    }

    /// Whether the caller may create, update and move items owned by `unit`.
    pub fn can_write_items_of(&self, unit: &UnitPath) -> bool {
        if self.viewer.is_none() {
            return false;
        }
        self.admin
            || self.write_teams.contains(&unit.id)
            || self.write_roots.iter().any(|r| unit.is_under(*r))
    }

    /// Whether the caller may create a unit of `kind` under `parent`:
    /// admins anywhere, portfolio managers programs and teams inside their
    /// portfolio, program managers teams under their program.
    pub fn can_create_unit_under(&self, parent: &UnitPath, kind: UnitKind) -> bool {
        if self.viewer.is_none() {
            return false;
        }
        if self.admin {
            return true;
        }
        self.structure_roots.iter().any(|(root, role)| {
            parent.is_under(*root)
                && match role {
                    Role::PortfolioManager => matches!(kind, UnitKind::Program | UnitKind::Team),
                    Role::ProgramManager => kind == UnitKind::Team,
                    _ => false,
                }
        })
    }
}
