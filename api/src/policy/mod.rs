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
    pub fn is_under(&self, root: i64) -> bool {
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
    /// Whether cost-like fields resolve (executives, portfolio managers, admins).
    sensitive: bool,
    /// An integration calling with an API key: it may ingest, nothing else.
    api_key: Option<KeyGrant>,
}

/// What an API key may do.
#[derive(Clone, Copy, Debug)]
pub struct KeyGrant {
    pub key_id: i64,
    /// When set, the key writes only inside this unit's subtree.
    pub unit_root: Option<i64>,
}

/// Where an ingesting caller may write.
#[derive(Clone, Copy, Debug)]
pub struct IngestScope {
    /// The key the events came with (none for an admin's token).
    pub key_id: Option<i64>,
    /// `None`: anywhere; `Some(u)`: only inside `u`'s subtree.
    pub unit_root: Option<i64>,
}

impl IngestScope {
    /// Whether events may write to `unit`.
    pub fn allows(&self, unit: &UnitPath) -> bool {
        self.unit_root.is_none_or(|r| unit.is_under(r))
    }
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
                Role::Admin => {
                    p.admin = true;
                    p.sensitive = true;
                }
                Role::Executive => {
                    p.sensitive = true;
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
                    p.sensitive |= g.role == Role::PortfolioManager;
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

    /// The policy of an integration authenticated by an API key.
    pub fn for_api_key(grant: KeyGrant) -> Self {
        Self {
            api_key: Some(grant),
            ..Self::default()
        }
    }

    /// Where the caller may ingest events: admins anywhere, API keys within
    /// their unit (if limited).
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for anonymous callers, `FORBIDDEN` for users who are
    /// not admins.
    pub fn ingest_scope(&self) -> ApiResult<IngestScope> {
        if let Some(k) = self.api_key {
            return Ok(IngestScope {
                key_id: Some(k.key_id),
                unit_root: k.unit_root,
            });
        }
        self.require_admin()?;
        Ok(IngestScope {
            key_id: None,
            unit_root: None,
        })
    }

    /// Whose cost budget the caller's operations spend: its session token or
    /// its API key; `None` for an anonymous caller (budgeted by address).
    pub fn caller(&self) -> Option<crate::graphql::budget::Caller> {
        use crate::graphql::budget::Caller;
        if let Some(k) = self.api_key {
            return Some(Caller::ApiKey(k.key_id));
        }
        self.viewer
            .as_ref()
            .map(|v| Caller::Token(v.token.jti.clone()))
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
        self.unit_condition(Expr::col((work_item::Entity, work_item::Column::UnitId)))
    }

    /// The same rule for anything owned by a unit the way items are
    /// (changes, deployments, releases, incidents): `unit_col` is the
    /// owner column of the queried table.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for an anonymous caller.
    pub fn unit_condition(&self, unit_col: Expr) -> ApiResult<Condition> {
        self.viewer()?;
        if self.admin {
            return Ok(Condition::all());
        }
        let mut cond = Condition::any();
        if !self.item_roots.is_empty() {
            let mut subtree = Query::select();
            subtree
                .column(unit_closure::Column::DescendantId)
                .from(unit_closure::Entity)
                .and_where(unit_closure::Column::AncestorId.is_in(self.item_roots.clone()));
            cond = cond.add(unit_col.clone().in_subquery(subtree));
        }
        if !self.item_line.is_empty() {
            cond = cond.add(unit_col.clone().is_in(self.item_line.iter().copied()));
        }
        if !self.exec_roots.is_empty() {
            let mut upper_levels = Query::select();
            upper_levels
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
                );
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

    /// The sensitive-field rule (DESIGN §2, rule 3): investment and anything
    /// cost-like resolves only for executives, portfolio managers and admins;
    /// for others the field is `null` with `FORBIDDEN` on that field alone.
    ///
    /// # Errors
    /// `UNAUTHENTICATED`, or `FORBIDDEN` for other roles.
    pub fn require_sensitive(&self) -> ApiResult<()> {
        self.viewer()?;
        if self.sensitive {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only executives, portfolio managers and admins may read this field",
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

    /// Whether the caller may change the board of `unit` (WIP limits, WIP
    /// policy): admins, and program and portfolio managers in scope.
    pub fn can_configure_board_of(&self, unit: &UnitPath) -> bool {
        if self.viewer.is_none() {
            return false;
        }
        self.admin || self.write_roots.iter().any(|r| unit.is_under(*r))
    }

    /// Whether the caller may read the objectives of `unit` (DESIGN §1.6):
    /// outcomes are shown beside the aggregates, so wherever those are
    /// readable (a team sees its own and its ancestors' objectives).
    pub fn can_read_objectives_of(&self, unit: &UnitPath) -> bool {
        self.can_read_aggregates_of(unit)
    }

    /// Whether the caller may create and change objectives of `unit`:
    /// admins, executives in scope, and portfolio managers for their own
    /// portfolio (DESIGN §2).
    pub fn can_write_objectives_of(&self, unit: &UnitPath) -> bool {
        if self.viewer.is_none() {
            return false;
        }
        self.admin
            || self.exec_roots.iter().any(|r| unit.is_under(*r))
            || self
                .structure_roots
                .iter()
                .any(|(root, role)| *role == Role::PortfolioManager && *root == unit.id)
    }

    /// Whether the caller may read the value streams of `unit` (DESIGN
    /// §1.4): like objectives, wherever the unit's aggregates are readable;
    /// elsewhere a stream does not exist for the caller (rule 1).
    pub fn can_read_value_streams_of(&self, unit: &UnitPath) -> bool {
        self.can_read_aggregates_of(unit)
    }

    /// [`Self::can_read_value_streams_of`] as an SQL condition on the owner
    /// column `unit_col` (the aggregate rule, applied inside the query), so
    /// lookups and lists of value streams never fetch what they may not
    /// return.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for an anonymous caller.
    pub fn value_stream_condition(&self, unit_col: Expr) -> ApiResult<Condition> {
        self.viewer()?;
        if self.admin {
            return Ok(Condition::all());
        }
        let mut cond = Condition::any();
        if !self.aggregate_roots.is_empty() {
            let mut subtree = Query::select();
            subtree
                .column(unit_closure::Column::DescendantId)
                .from(unit_closure::Entity)
                .and_where(unit_closure::Column::AncestorId.is_in(self.aggregate_roots.clone()));
            cond = cond.add(unit_col.clone().in_subquery(subtree));
        }
        if !self.aggregate_line.is_empty() {
            cond = cond.add(unit_col.is_in(self.aggregate_line.iter().copied()));
        }
        if cond.is_empty() {
            return Ok(Condition::all().add(Expr::val(1).eq(0)));
        }
        Ok(cond)
    }

    /// Whether the caller may create and change value streams of `unit`:
    /// admins, and portfolio managers for their own portfolio (DESIGN §2:
    /// "value streams and objectives of the portfolio"). Executives may
    /// not: their only writes are objectives.
    pub fn can_write_value_streams_of(&self, unit: &UnitPath) -> bool {
        if self.viewer.is_none() {
            return false;
        }
        self.admin
            || self
                .structure_roots
                .iter()
                .any(|(root, role)| *role == Role::PortfolioManager && *root == unit.id)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Grant, TokenInfo};

    // org(1) → payments(2) → checkout(3) → atlas(4), borealis(5);
    // payments → wallet(6) → delta(7); org → lending(8) → origination(9) → fjord(10).
    fn path(id: i64) -> UnitPath {
        let (kind, ancestors) = match id {
            1 => (UnitKind::Organization, vec![]),
            2 | 8 => (UnitKind::Portfolio, vec![1]),
            3 | 6 => (UnitKind::Program, vec![1, 2]),
            9 => (UnitKind::Program, vec![1, 8]),
            4 | 5 => (UnitKind::Team, vec![1, 2, 3]),
            7 => (UnitKind::Team, vec![1, 2, 6]),
            10 => (UnitKind::Team, vec![1, 8, 9]),
            _ => unreachable!(),
        };
        UnitPath {
            id,
            kind,
            ancestors,
        }
    }

    fn policy(role: Role, unit: i64) -> Policy {
        let p = path(unit);
        Policy::for_viewer(Viewer {
            user: entity::user::Model {
                id: 1,
                email: "a@b".into(),
                name: "A".into(),
                password_hash: String::new(),
                active: true,
                created_at: chrono::Utc::now(),
            },
            grants: vec![Grant {
                membership_id: 1,
                role,
                unit_id: unit,
                unit_kind: p.kind,
                ancestors: p.ancestors,
            }],
            token: TokenInfo {
                user_id: 1,
                jti: "j".into(),
                expires_at: chrono::Utc::now(),
            },
        })
    }

    fn readable(p: &Policy, f: impl Fn(&Policy, &UnitPath) -> bool) -> Vec<i64> {
        (1..=10).filter(|id| f(p, &path(*id))).collect()
    }

    #[test]
    fn aggregate_rule() {
        let team = policy(Role::TeamMember, 4);
        assert_eq!(
            readable(&team, Policy::can_read_aggregates_of),
            vec![1, 2, 3, 4]
        );
        assert!(
            team.require_aggregates_of(&path(5)).is_err(),
            "sibling team"
        );
        let program = policy(Role::ProgramManager, 3);
        assert_eq!(
            readable(&program, Policy::can_read_aggregates_of),
            vec![1, 2, 3, 4, 5]
        );
        let exec = policy(Role::Executive, 8);
        assert_eq!(
            readable(&exec, Policy::can_read_aggregates_of),
            vec![8, 9, 10]
        );
        let anon = Policy::anonymous();
        assert!(readable(&anon, Policy::can_read_aggregates_of).is_empty());
    }

    #[test]
    fn item_rule_and_executive_floor() {
        let team = policy(Role::TeamMember, 4);
        assert_eq!(readable(&team, Policy::can_read_items_of), vec![1, 2, 3, 4]);
        let portfolio = policy(Role::PortfolioManager, 2);
        assert_eq!(
            readable(&portfolio, Policy::can_read_items_of),
            vec![1, 2, 3, 4, 5, 6, 7]
        );
        let exec = policy(Role::Executive, 1);
        assert_eq!(
            readable(&exec, Policy::can_read_items_of),
            vec![1, 2, 3, 6, 8, 9]
        );
    }

    #[test]
    fn write_rule() {
        let team = policy(Role::TeamMember, 4);
        assert_eq!(readable(&team, Policy::can_write_items_of), vec![4]);
        let program = policy(Role::ProgramManager, 3);
        assert_eq!(
            readable(&program, Policy::can_write_items_of),
            vec![3, 4, 5]
        );
        let exec = policy(Role::Executive, 1);
        assert!(readable(&exec, Policy::can_write_items_of).is_empty());
        assert!(program.can_create_unit_under(&path(3), UnitKind::Team));
        assert!(!program.can_create_unit_under(&path(6), UnitKind::Team));
        assert!(
            !policy(Role::PortfolioManager, 2).can_create_unit_under(&path(8), UnitKind::Program)
        );
    }

    #[test]
    fn value_stream_rule() {
        let portfolio = policy(Role::PortfolioManager, 2);
        assert_eq!(
            readable(&portfolio, Policy::can_write_value_streams_of),
            vec![2]
        );
        assert_eq!(
            readable(&portfolio, Policy::can_read_value_streams_of),
            vec![1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!(
            readable(&policy(Role::Admin, 1), Policy::can_write_value_streams_of),
            (1..=10).collect::<Vec<_>>()
        );
        for (role, unit) in [
            (Role::Executive, 1),
            (Role::Executive, 2),
            (Role::ProgramManager, 3),
            (Role::TeamMember, 4),
        ] {
            let p = policy(role, unit);
            assert!(
                readable(&p, Policy::can_write_value_streams_of).is_empty(),
                "{role:?}"
            );
        }
        let team = policy(Role::TeamMember, 4);
        assert_eq!(
            readable(&team, Policy::can_read_value_streams_of),
            vec![1, 2, 3, 4]
        );
        assert!(
            Policy::anonymous()
                .value_stream_condition(Expr::col(unit::Column::Id))
                .is_err()
        );
    }

    #[test]
    fn sensitive_field_rule() {
        assert!(policy(Role::Admin, 1).require_sensitive().is_ok());
        assert!(policy(Role::Executive, 2).require_sensitive().is_ok());
        assert!(
            policy(Role::PortfolioManager, 2)
                .require_sensitive()
                .is_ok()
        );
        let err = policy(Role::ProgramManager, 3)
            .require_sensitive()
            .unwrap_err();
        assert_eq!(err.code().as_str(), "FORBIDDEN");
        assert!(policy(Role::TeamMember, 4).require_sensitive().is_err());
        assert_eq!(
            Policy::anonymous()
                .require_sensitive()
                .unwrap_err()
                .code()
                .as_str(),
            "UNAUTHENTICATED"
        );
    }
}
