//! `poll_polls`: one row per poll.

use sea_orm::entity::prelude::*;

/// A poll.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "poll_polls")]
pub struct Model {
    /// The poll's id (also in its tag, `poll:<id>`).
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The question.
    pub question: String,
    /// The options, a JSON array of strings in order (a vote stores an index into it).
    pub options: String,
    /// Username of the creator.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A poll has votes.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The votes cast in this poll.
    #[sea_orm(has_many = "super::vote::Entity")]
    Votes,
}

impl Related<super::vote::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Votes.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
