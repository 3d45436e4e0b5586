//! `poll_votes`: one row per vote; a unique index on (`poll_id`, `user_id`) makes the
//! database itself refuse a second vote, even when two arrive at once.

use sea_orm::entity::prelude::*;

/// A vote.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "poll_votes")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The poll voted in.
    pub poll_id: i64,
    /// The voter.
    pub user_id: i64,
    /// The chosen option's position.
    pub option_index: i32,
    /// Unix seconds.
    pub created_at: i64,
}

/// A vote belongs to a poll.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The poll.
    #[sea_orm(
        belongs_to = "super::poll::Entity",
        from = "Column::PollId",
        to = "super::poll::Column::Id",
        on_delete = "Cascade"
    )]
    Poll,
}

impl Related<super::poll::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Poll.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
