//! PostgreSQL: a transition's work item checked once per statement and
//! item instead of once per row.
//!
//! `fk_transition_item` ran PostgreSQL's referential check for every
//! transition inserted: a trigger call, a look-up and a `FOR KEY SHARE`
//! lock of the item, row by row. A backfill inserts a few thousand
//! transitions of a few hundred items per statement, and the checks took
//! more time than the inserts themselves. The constraint becomes two
//! statement triggers with the same effect:
//!
//! - after an insert or update of transitions, each distinct item they
//!   name is looked up and locked `FOR KEY SHARE` (as the constraint's
//!   check locks it: a concurrent delete of the item waits for this
//!   transaction, and an item deleted first is not found); a missing item
//!   fails the statement with SQLSTATE 23503 (`foreign_key_violation`)
//!   naming `fk_transition_item`, as before;
//! - after a delete of work items, their transitions are deleted (the
//!   constraint's `ON DELETE CASCADE`).
//!
//! A work item's id is never updated (Gemba has no such write), so the
//! constraint's refusal to change a referenced id is not carried over.
//! SQLite keeps the constraint: its check is an index look-up without a
//! lock.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
ALTER TABLE "transition" DROP CONSTRAINT "fk_transition_item";

CREATE FUNCTION "transition_items_exist"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  missing bigint;
BEGIN
  SELECT count(*) - count(w.id) INTO missing
  FROM (SELECT DISTINCT "work_item_id" FROM new_rows WHERE "work_item_id" IS NOT NULL) n
  LEFT JOIN LATERAL (
    SELECT "id" FROM "work_item" WHERE "id" = n."work_item_id" FOR KEY SHARE
  ) w ON true;
  IF missing > 0 THEN
    RAISE EXCEPTION 'insert or update on table "transition" violates foreign key constraint "fk_transition_item"'
      USING ERRCODE = 'foreign_key_violation',
            DETAIL = missing || ' work item(s) named by the transitions do not exist.',
            TABLE = 'transition',
            CONSTRAINT = 'fk_transition_item';
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER "transition_items_exist_insert" AFTER INSERT ON "transition"
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "transition_items_exist"();

CREATE TRIGGER "transition_items_exist_update" AFTER UPDATE ON "transition"
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "transition_items_exist"();

CREATE FUNCTION "work_item_transitions_cascade"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "transition" t USING old_rows o WHERE t."work_item_id" = o."id";
  RETURN NULL;
END
$$;

CREATE TRIGGER "work_item_transitions_cascade" AFTER DELETE ON "work_item"
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION "work_item_transitions_cascade"();
"#;

const DOWN: &str = r#"
DROP TRIGGER "work_item_transitions_cascade" ON "work_item";
DROP FUNCTION "work_item_transitions_cascade"();
DROP TRIGGER "transition_items_exist_update" ON "transition";
DROP TRIGGER "transition_items_exist_insert" ON "transition";
DROP FUNCTION "transition_items_exist"();
ALTER TABLE "transition" ADD CONSTRAINT "fk_transition_item"
  FOREIGN KEY ("work_item_id") REFERENCES "work_item" ("id") ON DELETE CASCADE;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
