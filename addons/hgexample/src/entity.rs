//! The addon's own table: a log of pushes made through its HTTP endpoint.

use sea_orm::entity::prelude::*;

/// One push made through `POST /api/addons/hgexample/push`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hgexample_push_log")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Who sent it.
    pub sender: String,
    /// The receiving user.
    pub user_id: i64,
    /// The pushed event.
    pub event: String,
    /// How many connections it reached.
    pub delivered: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
