//! SeaORM entities of Gemba's data model (DESIGN §1).
//!
//! Entities only: no GraphQL types and no business rules live here. Enumerated
//! values (unit kinds, roles, item types, flow-state categories) are stored as
//! their `SCREAMING_SNAKE_CASE` names in text columns and parsed by the API crate.

pub mod api_key;
pub mod board;
pub mod board_wip_limit;
pub mod change;
pub mod change_work_item;
pub mod deployment;
pub mod deployment_change;
pub mod external_ref;
pub mod flow_completion;
pub mod flow_state;
pub mod flow_wip;
pub mod incident;
pub mod ingest_log;
pub mod integration;
pub mod integration_mapping;
pub mod key_result;
pub mod key_result_measurement;
pub mod membership;
pub mod objective;
pub mod objective_work_item;
pub mod release;
pub mod release_work_item;
pub mod revoked_token;
pub mod transition;
pub mod unit;
pub mod unit_closure;
pub mod user;
pub mod value_stream;
pub mod value_stream_stage;
pub mod value_stream_stage_state;
pub mod value_stream_support;
pub mod work_item;
pub mod workflow;
pub mod workflow_state;

pub use sea_orm;
