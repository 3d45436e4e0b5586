//! The addon's schema. The server records which of these ran in the addon's own table,
//! `switchboard_migrations_poll`, so they never collide with the host's or another addon's.
//!
//! Only portable sea-query statements are used, so the same steps run on SQLite, PostgreSQL
//! and MySQL/MariaDB. SQLite cannot add a foreign key to an existing table, so the key is
//! declared in `create_table`.

use sea_orm_migration::prelude::*;

/// Every migration, in order. Append new steps; never edit one that has shipped.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreatePollsAndVotes)]
}

#[derive(DeriveIden)]
enum Polls {
    #[sea_orm(iden = "poll_polls")]
    Table,
    Id,
    Question,
    Options,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Votes {
    #[sea_orm(iden = "poll_votes")]
    Table,
    Id,
    PollId,
    UserId,
    OptionIndex,
    CreatedAt,
}

/// Name of the unique index that allows one vote per user and poll.
pub const ONE_VOTE_INDEX: &str = "poll_votes_one_per_user";

/// Creates `poll_polls` and `poll_votes`.
pub struct CreatePollsAndVotes;

impl MigrationName for CreatePollsAndVotes {
    fn name(&self) -> &str {
        "m0001_create_polls_and_votes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePollsAndVotes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Polls::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Polls::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    // Sized in characters by PostgreSQL and MySQL alike, matching the limits
                    // `model` checks in characters.
                    .col(
                        ColumnDef::new(Polls::Question)
                            .string_len(crate::model::MAX_QUESTION_CHARS as u32)
                            .not_null(),
                    )
                    // Up to 10 options of 100 characters as JSON: text, not a sized string.
                    .col(ColumnDef::new(Polls::Options).text().not_null())
                    .col(ColumnDef::new(Polls::CreatedBy).string_len(128).not_null())
                    .col(ColumnDef::new(Polls::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Votes::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Votes::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Votes::PollId).big_integer().not_null())
                    .col(ColumnDef::new(Votes::UserId).big_integer().not_null())
                    .col(ColumnDef::new(Votes::OptionIndex).integer().not_null())
                    .col(ColumnDef::new(Votes::CreatedAt).big_integer().not_null())
                    // The rule "one vote per user per poll" lives in the database, so two votes
                    // sent at the same moment from two tabs cannot both be counted. Declared in
                    // the table, the whole step is one statement per table that `if_not_exists`
                    // makes safe to run again on every backend. It also serves the counting
                    // query, which filters by poll.
                    .index(
                        Index::create()
                            .name(ONE_VOTE_INDEX)
                            .col(Votes::PollId)
                            .col(Votes::UserId)
                            .unique(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("poll_votes_poll")
                            .from(Votes::Table, Votes::PollId)
                            .to(Polls::Table, Polls::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Votes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Polls::Table).to_owned())
            .await
    }
}
