//! The vocabulary of the domain (DESIGN §1): unit kinds, roles, work item
//! types, flow types and flow-state categories, with their stored names.

use async_graphql::Enum;

use crate::error::ApiError;

/// Declares an enum stored as its `SCREAMING_SNAKE_CASE` name.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a stored value; unknown text is a data error.
            pub fn parse(text: &str) -> Result<Self, ApiError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(ApiError::internal(anyhow::anyhow!(
                        concat!("unknown ", stringify!($name), " {:?} in storage"), other
                    ))),
                }
            }
        }
    };
}

stored_enum! {
    /// Level of a unit in the organisation tree.
    UnitKind {
        /// The root of the tree: one per deployment.
        Organization => "ORGANIZATION",
        /// A portfolio, directly under the organisation: the level that owns
        /// epics.
        Portfolio => "PORTFOLIO",
        /// A program, under a portfolio: the level that owns features.
        Program => "PROGRAM",
        /// A team, under a program: the level that owns stories and tasks.
        Team => "TEAM",
    }
}

impl UnitKind {
    /// The kind a child of this kind must have.
    pub fn child_kind(self) -> Option<UnitKind> {
        match self {
            Self::Organization => Some(Self::Portfolio),
            Self::Portfolio => Some(Self::Program),
            Self::Program => Some(Self::Team),
            Self::Team => None,
        }
    }
}

stored_enum! {
    /// What a membership allows (DESIGN §2). Each role is granted on a unit
    /// of its own level; its scope is that unit and every unit beneath it.
    Role {
        /// Granted on a team: reads and writes the team's items, reads the
        /// items of its ancestor units, and reads aggregates of the team and
        /// its ancestors.
        TeamMember => "TEAM_MEMBER",
        /// Granted on a program: reads and writes every item beneath it,
        /// configures its boards and creates teams under it. Also reads the
        /// items and aggregates of its ancestor units.
        ProgramManager => "PROGRAM_MANAGER",
        /// Granted on a portfolio: reads and writes every item beneath it,
        /// creates programs and teams, and manages its value streams and
        /// objectives. May read cost-like fields.
        PortfolioManager => "PORTFOLIO_MANAGER",
        /// Granted on the organisation or a portfolio: reads every aggregate
        /// beneath it, but items only of portfolios and programs (epics,
        /// features). Manages objectives there and may read cost-like fields.
        Executive => "EXECUTIVE",
        /// Granted on the organisation: reads and changes everything,
        /// including users, memberships, API keys and the unit tree.
        Admin => "ADMIN",
    }
}

impl Role {
    /// Whether this role may be granted on a unit of `kind`.
    pub fn allowed_on(self, kind: UnitKind) -> bool {
        matches!(
            (self, kind),
            (Self::TeamMember, UnitKind::Team)
                | (Self::ProgramManager, UnitKind::Program)
                | (Self::PortfolioManager, UnitKind::Portfolio)
                | (
                    Self::Executive,
                    UnitKind::Organization | UnitKind::Portfolio
                )
                | (Self::Admin, UnitKind::Organization)
        )
    }
}

stored_enum! {
    /// The kind of a work item. It decides which unit level may own the item
    /// and its default `FlowType`.
    WorkItemType {
        /// A large initiative owned by a portfolio, broken down into features.
        Epic => "EPIC",
        /// A piece of customer value owned by a program, usually under an
        /// epic and broken down into stories.
        Feature => "FEATURE",
        /// A unit of work owned by a team, usually under a feature.
        Story => "STORY",
        /// A small piece of work owned by a team, usually under a story or a
        /// defect.
        Task => "TASK",
        /// A bug, owned by a team, program or portfolio; `foundIn` says where it
        /// was found. Its flow type is `DEFECT`.
        Defect => "DEFECT",
        /// A risk to be mitigated, owned by a team, program or portfolio. Its
        /// flow type is `RISK`.
        Risk => "RISK",
        /// Technical debt to be paid down, owned by a team, program or
        /// portfolio. Its flow type is `DEBT`.
        Debt => "DEBT",
    }
}

impl WorkItemType {
    /// Flow Framework type derived from the item type.
    pub fn default_flow_type(self) -> FlowType {
        match self {
            Self::Epic | Self::Feature | Self::Story | Self::Task => FlowType::Feature,
            Self::Defect => FlowType::Defect,
            Self::Risk => FlowType::Risk,
            Self::Debt => FlowType::Debt,
        }
    }

    /// Unit kinds that may own an item of this type (DESIGN §1.3's normal levels;
    /// defects, risks and debt may also be raised at program or portfolio level).
    pub fn owner_kinds(self) -> &'static [UnitKind] {
        match self {
            Self::Epic => &[UnitKind::Portfolio],
            Self::Feature => &[UnitKind::Program],
            Self::Story | Self::Task => &[UnitKind::Team],
            Self::Defect | Self::Risk | Self::Debt => {
                &[UnitKind::Team, UnitKind::Program, UnitKind::Portfolio]
            }
        }
    }

    /// Item types that may be the parent of an item of this type.
    pub fn parent_types(self) -> &'static [WorkItemType] {
        match self {
            Self::Epic => &[],
            Self::Feature => &[Self::Epic],
            Self::Story => &[Self::Feature],
            Self::Task => &[Self::Story, Self::Defect],
            Self::Defect | Self::Risk | Self::Debt => &[Self::Epic, Self::Feature],
        }
    }

    /// Checks that an item of `parent_type` owned by `parent_unit` may parent
    /// an item of this type owned by unit `unit_id`, whose strict ancestors
    /// are `unit_ancestors`.
    ///
    /// # Errors
    /// `BAD_USER_INPUT` for a parent of the wrong type or of an unrelated
    /// unit; an internal error for an unknown stored `parent_type`.
    pub fn check_parent(
        self,
        parent_type: &str,
        parent_unit: i64,
        unit_id: i64,
        unit_ancestors: &[i64],
    ) -> Result<(), ApiError> {
        let item_type = self;
        let parent_type = WorkItemType::parse(parent_type)?;
        if !item_type.parent_types().contains(&parent_type) {
            let allowed: Vec<&str> = item_type
                .parent_types()
                .iter()
                .map(|t| t.as_str())
                .collect();
            return Err(ApiError::bad_input(if allowed.is_empty() {
                format!("a {} has no parent item", item_type.as_str())
            } else {
                format!(
                    "the parent of a {} must be a {}, not a {}",
                    item_type.as_str(),
                    allowed.join(" or "),
                    parent_type.as_str()
                )
            }));
        }
        if parent_unit != unit_id && !unit_ancestors.contains(&parent_unit) {
            return Err(ApiError::bad_input(
                "the parent item must be owned by the same unit or one of its ancestors",
            ));
        }
        Ok(())
    }
}

stored_enum! {
    /// Flow Framework item type, used to split flow metrics. Epics, features,
    /// stories and tasks are `FEATURE` by default; the others map one to one.
    FlowType {
        /// New business value for customers.
        Feature => "FEATURE",
        /// Fixes of quality problems.
        Defect => "DEFECT",
        /// Work that reduces risk (security, compliance, ...).
        Risk => "RISK",
        /// Work that pays down technical debt.
        Debt => "DEBT",
    }
}

stored_enum! {
    /// Flow-state category of a workflow state (DESIGN §1.2). Flow metrics
    /// read categories, never state names.
    StateCategory {
        /// Accepted into a backlog but not started; not work in progress.
        New => "NEW",
        /// Someone is working on it: work in progress and value-adding time.
        Active => "ACTIVE",
        /// Started but waiting (review queue, blocked, hand-off): work in
        /// progress, non-value-adding time.
        Waiting => "WAITING",
        /// Delivered: counts as completed.
        Done => "DONE",
        /// Dropped: neither work in progress nor completed.
        Canceled => "CANCELED",
    }
}

stored_enum! {
    /// Where a defect was found.
    DefectOrigin {
        /// Found by the developers while building.
        Development => "DEVELOPMENT",
        /// Found in testing, before release.
        Testing => "TESTING",
        /// Found in production: an escaped defect for the quality metrics.
        Production => "PRODUCTION",
    }
}

stored_enum! {
    /// What an integration mapping translates.
    MappingKind {
        /// Repository or project → unit key.
        Unit => "UNIT",
        /// Label or issue type → work item type.
        ItemType => "ITEM_TYPE",
        /// Native status → workflow state name.
        State => "STATE",
        /// Native environment → `PRODUCTION`, `STAGING`, ...
        Environment => "ENVIRONMENT",
    }
}

stored_enum! {
    /// What a value stream delivers (DESIGN §1.4).
    ValueStreamKind {
        /// The flow of value to the end customer ("customer orders a card").
        Operational => "OPERATIONAL",
        /// The flow of changes into the systems that support operational
        /// streams.
        Development => "DEVELOPMENT",
    }
}

stored_enum! {
    /// The period a value stream's run-rate cost is expressed per.
    CostPeriod {
        /// Cost per month.
        Month => "MONTH",
        /// Cost per quarter.
        Quarter => "QUARTER",
        /// Cost per year.
        Year => "YEAR",
    }
}

/// The organisation's default workflow (DESIGN §1.2).
pub const DEFAULT_WORKFLOW: &[(&str, StateCategory)] = &[
    ("Backlog", StateCategory::New),
    ("In Progress", StateCategory::Active),
    ("In Review", StateCategory::Waiting),
    ("Blocked", StateCategory::Waiting),
    ("Testing", StateCategory::Active),
    ("Done", StateCategory::Done),
    ("Canceled", StateCategory::Canceled),
];

/// Unit keys: lowercase `[a-z0-9-]{2,64}`.
pub fn validate_unit_key(key: &str) -> Result<(), ApiError> {
    let ok = (2..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_input(
            "unit key must be 2 to 64 characters of a-z, 0-9 and '-'",
        ))
    }
}

/// Work item keys: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` (Jira's `PAY-12`, GitHub's `repo-42`).
pub fn validate_item_key(key: &str) -> Result<(), ApiError> {
    let bytes = key.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_input(
            "work item key must be 1 to 64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_keys() {
        assert!(validate_unit_key("team-atlas").is_ok());
        assert!(validate_unit_key("a").is_err());
        assert!(validate_unit_key("Team").is_err());
        assert!(validate_unit_key("team_atlas").is_err());
        assert!(validate_unit_key(&"a".repeat(65)).is_err());
    }

    #[test]
    fn item_keys() {
        assert!(validate_item_key("PAY-12").is_ok());
        assert!(validate_item_key("-PAY").is_err());
        assert!(validate_item_key("PAY 12").is_err());
        assert!(validate_item_key("").is_err());
    }

    #[test]
    fn role_levels() {
        assert!(Role::TeamMember.allowed_on(UnitKind::Team));
        assert!(!Role::TeamMember.allowed_on(UnitKind::Program));
        assert!(Role::Executive.allowed_on(UnitKind::Portfolio));
        assert!(!Role::Admin.allowed_on(UnitKind::Portfolio));
    }
}

stored_enum! {
    /// What a board does with a move that takes a column over its WIP limit.
    WipPolicy {
        /// The move happens; the response says the limit is exceeded.
        Warn => "WARN",
        /// The move is refused with `CONFLICT`; nothing is written.
        Block => "BLOCK",
    }
}
