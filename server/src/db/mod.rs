//! Database: connection, host migrations, addon migrations in their own tables.

pub mod entities;
pub mod migrations;

use std::time::Duration;

use sea_orm::sea_query::{Alias, ColumnDef, Expr, ExprTrait, Query, Table};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager};

/// Opens the database. SQLite files get WAL and a busy timeout; their folder is created.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or_default();
        if !path.is_empty() && path != ":memory:" {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        DbErr::Custom(format!("creating {}: {e}", parent.display()))
                    })?;
                }
            }
        }
    }
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .max_connections(if url.starts_with("sqlite:") { 4 } else { 10 });
    let db = Database::connect(opts).await?;
    if url.starts_with("sqlite:") {
        db.execute_unprepared("PRAGMA journal_mode=WAL;").await?;
        db.execute_unprepared("PRAGMA busy_timeout=5000;").await?;
    }
    Ok(db)
}

/// Applies the host's pending migrations.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    migrations::Migrator::up(db, None).await
}

/// Applies an addon's pending migrations, recorded in `switchboard_migrations_<addon>`.
pub async fn migrate_addon(
    db: &DatabaseConnection,
    addon: &str,
    steps: Vec<Box<dyn MigrationTrait>>,
) -> Result<(), DbErr> {
    let table = Alias::new(format!("switchboard_migrations_{addon}"));
    let manager = SchemaManager::new(db);
    manager
        .create_table(
            Table::create()
                .table(table.clone())
                .if_not_exists()
                .col(
                    ColumnDef::new(Alias::new("version"))
                        .string_len(128)
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(Alias::new("applied_at"))
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
    for step in steps {
        let name = step.name().to_string();
        let select = Query::select()
            .column(Alias::new("version"))
            .from(table.clone())
            .and_where(Expr::col(Alias::new("version")).eq(name.clone()))
            .to_owned();
        if db.query_one(&select).await?.is_some() {
            continue;
        }
        step.up(&manager).await?;
        let insert = Query::insert()
            .into_table(table.clone())
            .columns([Alias::new("version"), Alias::new("applied_at")])
            .values_panic([
                name.clone().into(),
                switchboard_sdk::protocol::unix_now().into(),
            ])
            .to_owned();
        db.execute(&insert).await?;
        tracing::info!(addon, migration = %name, "applied addon migration");
    }
    Ok(())
}
