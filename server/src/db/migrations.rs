//! The host's schema migrations (table `seaql_migrations`). Addons keep their own tables.

use sea_orm_migration::prelude::*;

/// The host migrator.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Init), Box::new(M0002AuditLog)]
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    Roles,
    Enabled,
    TokensValidAfter,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    KeyHash,
    Prefix,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum RevokedTokens {
    Table,
    Jti,
    ExpiresAt,
}

struct M0001Init;

impl MigrationName for M0001Init {
    fn name(&self) -> &str {
        "m0001_init"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Init {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Users::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Users::Username)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(Users::PasswordHash)
                        .string_len(255)
                        .not_null(),
                )
                .col(ColumnDef::new(Users::Roles).string_len(64).not_null())
                .col(ColumnDef::new(Users::Enabled).boolean().not_null())
                .col(
                    ColumnDef::new(Users::TokensValidAfter)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(Users::CreatedAt).big_integer().not_null())
                .col(ColumnDef::new(Users::UpdatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(ApiKeys::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(ApiKeys::Name)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(
                    ColumnDef::new(ApiKeys::KeyHash)
                        .string_len(64)
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(ApiKeys::Prefix).string_len(16).not_null())
                .col(ColumnDef::new(ApiKeys::CreatedAt).big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RevokedTokens::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(RevokedTokens::Jti)
                        .string_len(64)
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(RevokedTokens::ExpiresAt)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_revoked_tokens_expires_at")
                .table(RevokedTokens::Table)
                .col(RevokedTokens::ExpiresAt)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RevokedTokens::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Result,
    Count,
    Ip,
    Detail,
}

/// The audit log, and when each API key was last used.
struct M0002AuditLog;

impl MigrationName for M0002AuditLog {
    fn name(&self) -> &str {
        "m0002_audit_log"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002AuditLog {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Each step checks first, so a rerun over a half-migrated database (MySQL has no
        // `CREATE INDEX IF NOT EXISTS`) completes instead of failing.
        if !m.has_table("audit_log").await? {
            self.create_audit_log(m).await?;
        }
        if !m.has_column("api_keys", "last_used_at").await? {
            m.alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(ColumnDef::new(ApiKeys::LastUsedAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ApiKeys::Table)
                .drop_column(ApiKeys::LastUsedAt)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}

impl M0002AuditLog {
    async fn create_audit_log(&self, m: &SchemaManager<'_>) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(AuditLog::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(AuditLog::At).big_integer().not_null())
                .col(ColumnDef::new(AuditLog::Actor).string_len(255).not_null())
                .col(ColumnDef::new(AuditLog::Action).string_len(32).not_null())
                .col(ColumnDef::new(AuditLog::Target).string_len(255).not_null())
                .col(ColumnDef::new(AuditLog::Result).string_len(255).not_null())
                .col(ColumnDef::new(AuditLog::Count).big_integer().not_null())
                .col(ColumnDef::new(AuditLog::Ip).string_len(255).not_null())
                .col(ColumnDef::new(AuditLog::Detail).string_len(255).not_null())
                .to_owned(),
        )
        .await?;
        // Pruning and the time filter read `at`; the panel filters by actor and action.
        for (name, col) in [
            ("idx_audit_log_at", AuditLog::At),
            ("idx_audit_log_actor", AuditLog::Actor),
            ("idx_audit_log_action", AuditLog::Action),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(AuditLog::Table)
                    .col(col)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
