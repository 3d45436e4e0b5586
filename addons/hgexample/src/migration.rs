//! The addon's migrations (tracked in its own table, not the host's).

use sea_orm_migration::prelude::*;

/// Every migration, in order.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreatePushLog)]
}

#[derive(DeriveIden)]
enum PushLog {
    #[sea_orm(iden = "hgexample_push_log")]
    Table,
    Id,
    Sender,
    UserId,
    Event,
    Delivered,
    CreatedAt,
}

/// Creates `hgexample_push_log`.
pub struct CreatePushLog;

impl MigrationName for CreatePushLog {
    fn name(&self) -> &str {
        "m0001_create_push_log"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePushLog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PushLog::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(PushLog::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PushLog::Sender).string_len(128).not_null())
                    .col(ColumnDef::new(PushLog::UserId).big_integer().not_null())
                    .col(ColumnDef::new(PushLog::Event).string_len(128).not_null())
                    .col(ColumnDef::new(PushLog::Delivered).big_integer().not_null())
                    .col(ColumnDef::new(PushLog::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PushLog::Table).to_owned())
            .await
    }
}
