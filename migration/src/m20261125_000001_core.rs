//! The core model: the unit tree and its closure index, workflows, users,
//! memberships, API keys, revoked tokens, work items, external references and
//! the append-only transition history.

use sea_orm_migration::{prelude::*, schema::*};

use crate::helpers::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Unit {
    Table,
    Id,
    Key,
    Name,
    Kind,
    ParentId,
    Depth,
    NextItemNumber,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UnitClosure {
    Table,
    AncestorId,
    DescendantId,
    Depth,
}

#[derive(DeriveIden)]
enum Workflow {
    Table,
    Id,
    UnitId,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WorkflowState {
    Table,
    Id,
    WorkflowId,
    Name,
    Category,
    Position,
    WipLimit,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    Active,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Membership {
    Table,
    Id,
    UserId,
    UnitId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKey {
    Table,
    Id,
    Name,
    Prefix,
    SecretHash,
    UnitId,
    CreatedBy,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RevokedToken {
    Table,
    Jti,
    UserId,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum WorkItem {
    Table,
    Id,
    Key,
    Title,
    Description,
    ItemType,
    FlowType,
    State,
    StateCategory,
    UnitId,
    ParentId,
    AssigneeId,
    Estimate,
    BusinessValue,
    Rank,
    FoundIn,
    Severity,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ExternalRef {
    Table,
    Id,
    WorkItemId,
    Source,
    ExternalId,
    Url,
}

#[derive(DeriveIden)]
enum Transition {
    Table,
    Id,
    WorkItemId,
    FromState,
    ToState,
    ToCategory,
    At,
    ActorId,
    Source,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Unit::Table)
                    .col(big_pk_auto(Unit::Id))
                    .col(string_len_uniq(Unit::Key, 64))
                    .col(string(Unit::Name))
                    .col(string_len(Unit::Kind, 16))
                    .col(big_integer_null(Unit::ParentId))
                    .col(integer(Unit::Depth))
                    .col(big_integer(Unit::NextItemNumber).default(1))
                    .col(timestamp_with_time_zone(Unit::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_unit_parent",
                        (Unit::Table, Unit::ParentId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_unit_parent", Unit::Table, &["parent_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UnitClosure::Table)
                    .col(big_integer(UnitClosure::AncestorId))
                    .col(big_integer(UnitClosure::DescendantId))
                    .col(integer(UnitClosure::Depth))
                    .primary_key(
                        Index::create()
                            .col(UnitClosure::AncestorId)
                            .col(UnitClosure::DescendantId),
                    )
                    .foreign_key(&mut fk(
                        "fk_closure_ancestor",
                        (UnitClosure::Table, UnitClosure::AncestorId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_closure_descendant",
                        (UnitClosure::Table, UnitClosure::DescendantId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_unit_closure_descendant",
                UnitClosure::Table,
                &["descendant_id", "ancestor_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Workflow::Table)
                    .col(big_pk_auto(Workflow::Id))
                    .col(big_integer_uniq(Workflow::UnitId))
                    .col(string(Workflow::Name))
                    .col(timestamp_with_time_zone(Workflow::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_workflow_unit",
                        (Workflow::Table, Workflow::UnitId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WorkflowState::Table)
                    .col(big_pk_auto(WorkflowState::Id))
                    .col(big_integer(WorkflowState::WorkflowId))
                    .col(string_len(WorkflowState::Name, 64))
                    .col(string_len(WorkflowState::Category, 16))
                    .col(integer(WorkflowState::Position))
                    .col(integer_null(WorkflowState::WipLimit))
                    .foreign_key(&mut fk(
                        "fk_workflow_state_workflow",
                        (WorkflowState::Table, WorkflowState::WorkflowId),
                        (Workflow::Table, Workflow::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_workflow_state_name",
                    WorkflowState::Table,
                    &["workflow_id", "name"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(User::Table)
                    .col(big_pk_auto(User::Id))
                    .col(string_len_uniq(User::Email, 320))
                    .col(string(User::Name))
                    .col(string(User::PasswordHash))
                    .col(boolean(User::Active).default(true))
                    .col(timestamp_with_time_zone(User::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Membership::Table)
                    .col(big_pk_auto(Membership::Id))
                    .col(big_integer(Membership::UserId))
                    .col(big_integer(Membership::UnitId))
                    .col(string_len(Membership::Role, 32))
                    .col(timestamp_with_time_zone(Membership::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_membership_user",
                        (Membership::Table, Membership::UserId),
                        (User::Table, User::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_membership_unit",
                        (Membership::Table, Membership::UnitId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_membership",
                    Membership::Table,
                    &["user_id", "unit_id", "role"],
                )
                .unique()
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKey::Table)
                    .col(big_pk_auto(ApiKey::Id))
                    .col(string(ApiKey::Name))
                    .col(string_len(ApiKey::Prefix, 16))
                    .col(string_len_uniq(ApiKey::SecretHash, 64))
                    .col(big_integer_null(ApiKey::UnitId))
                    .col(big_integer(ApiKey::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKey::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKey::RevokedAt))
                    .foreign_key(&mut fk(
                        "fk_api_key_unit",
                        (ApiKey::Table, ApiKey::UnitId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_api_key_creator",
                        (ApiKey::Table, ApiKey::CreatedBy),
                        (User::Table, User::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RevokedToken::Table)
                    .col(string_len(RevokedToken::Jti, 64).primary_key())
                    .col(big_integer(RevokedToken::UserId))
                    .col(timestamp_with_time_zone(RevokedToken::ExpiresAt))
                    .col(timestamp_with_time_zone(RevokedToken::RevokedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WorkItem::Table)
                    .col(big_pk_auto(WorkItem::Id))
                    .col(string_len_uniq(WorkItem::Key, 64))
                    .col(string_len(WorkItem::Title, 500))
                    .col(text_null(WorkItem::Description))
                    .col(string_len(WorkItem::ItemType, 16))
                    .col(string_len(WorkItem::FlowType, 16))
                    .col(string_len(WorkItem::State, 64))
                    .col(string_len(WorkItem::StateCategory, 16))
                    .col(big_integer(WorkItem::UnitId))
                    .col(big_integer_null(WorkItem::ParentId))
                    .col(big_integer_null(WorkItem::AssigneeId))
                    .col(double_null(WorkItem::Estimate))
                    .col(double_null(WorkItem::BusinessValue))
                    .col(string_len(WorkItem::Rank, 64))
                    .col(string_len_null(WorkItem::FoundIn, 16))
                    .col(string_len_null(WorkItem::Severity, 32))
                    .col(timestamp_with_time_zone(WorkItem::CreatedAt))
                    .col(timestamp_with_time_zone(WorkItem::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_work_item_unit",
                        (WorkItem::Table, WorkItem::UnitId),
                        (Unit::Table, Unit::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_work_item_parent",
                        (WorkItem::Table, WorkItem::ParentId),
                        (WorkItem::Table, WorkItem::Id),
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut fk(
                        "fk_work_item_assignee",
                        (WorkItem::Table, WorkItem::AssigneeId),
                        (User::Table, User::Id),
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_work_item_unit",
                WorkItem::Table,
                &["unit_id", "id"],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_work_item_parent",
                WorkItem::Table,
                &["parent_id"],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_work_item_board",
                WorkItem::Table,
                &["unit_id", "state", "rank"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ExternalRef::Table)
                    .col(big_pk_auto(ExternalRef::Id))
                    .col(big_integer(ExternalRef::WorkItemId))
                    .col(string_len(ExternalRef::Source, 32))
                    .col(string_len(ExternalRef::ExternalId, 255))
                    .col(string_null(ExternalRef::Url))
                    .foreign_key(&mut fk(
                        "fk_external_ref_item",
                        (ExternalRef::Table, ExternalRef::WorkItemId),
                        (WorkItem::Table, WorkItem::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_external_ref",
                    ExternalRef::Table,
                    &["source", "external_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_external_ref_item",
                ExternalRef::Table,
                &["work_item_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Transition::Table)
                    .col(big_pk_auto(Transition::Id))
                    .col(big_integer(Transition::WorkItemId))
                    .col(string_len_null(Transition::FromState, 64))
                    .col(string_len(Transition::ToState, 64))
                    .col(string_len(Transition::ToCategory, 16))
                    .col(timestamp_with_time_zone(Transition::At))
                    .col(big_integer_null(Transition::ActorId))
                    .col(string_len_null(Transition::Source, 32))
                    .foreign_key(&mut fk(
                        "fk_transition_item",
                        (Transition::Table, Transition::WorkItemId),
                        (WorkItem::Table, WorkItem::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_transition_actor",
                        (Transition::Table, Transition::ActorId),
                        (User::Table, User::Id),
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_transition_item_at",
                Transition::Table,
                &["work_item_id", "at"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Transition::Table.into_iden(),
            ExternalRef::Table.into_iden(),
            WorkItem::Table.into_iden(),
            RevokedToken::Table.into_iden(),
            ApiKey::Table.into_iden(),
            Membership::Table.into_iden(),
            User::Table.into_iden(),
            WorkflowState::Table.into_iden(),
            Workflow::Table.into_iden(),
            UnitClosure::Table.into_iden(),
            Unit::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
