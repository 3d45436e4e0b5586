//! Database: connection, host migrations, addon migrations in their own tables.

pub mod entities;
pub mod migrations;

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::sea_query::{Alias, ColumnDef, Expr, ExprTrait, Query, Table};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager};

/// How long start-up waits for the database before giving up. sqlx retries a refused
/// connection until its pool timeout; without this bound an unreachable server would hold
/// start-up (and every CLI command) for the pool's full 10 s and then say only "pool timed out".
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the database could not be opened; the message names it (password masked).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// Opens the database. SQLite files get WAL and a busy timeout; their folder is created.
/// Errors name the database (password masked) and, for a network database, the host.
pub async fn connect(url: &str) -> Result<DatabaseConnection, ConnectError> {
    if let Some(path) = sqlite_path(url) {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    ConnectError(format!(
                        "database {}: creating {}: {e}",
                        redact_url(url),
                        parent.display()
                    ))
                })?;
            }
        }
    }
    let mut opts = ConnectOptions::new(url.to_string());
    // sea-orm maps both its connect and acquire timeouts onto sqlx's acquire timeout, which
    // also bounds how long a busy server's requests wait for a pooled connection: it stays at
    // 10 s, and the first connection is bounded separately below.
    opts.sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10))
        .max_connections(if url.starts_with("sqlite:") { 4 } else { 10 });
    let db = match tokio::time::timeout(CONNECT_TIMEOUT, Database::connect(opts)).await {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => return Err(connect_error(url, &e.to_string()).await),
        Err(_) => {
            return Err(connect_error(
                url,
                &format!("no connection within {}s", CONNECT_TIMEOUT.as_secs()),
            )
            .await);
        }
    };
    if url.starts_with("sqlite:") {
        for pragma in ["PRAGMA journal_mode=WAL;", "PRAGMA busy_timeout=5000;"] {
            db.execute_unprepared(pragma)
                .await
                .map_err(|e| ConnectError(format!("database {}: {pragma} {e}", redact_url(url))))?;
        }
    }
    Ok(db)
}

/// Builds the connect error. sqlx reports a refused or silent server only as a pool timeout,
/// so for a network database a plain TCP connect to its host says what actually happened.
async fn connect_error(url: &str, detail: &str) -> ConnectError {
    let mut msg = format!("cannot open database {}: {detail}", redact_url(url));
    if let Some(host) = url_host(url) {
        let probe = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(host.as_str()),
        )
        .await;
        match probe {
            Ok(Ok(_)) => msg.push_str(&format!(" (host {host} accepts connections)")),
            Ok(Err(e)) => msg.push_str(&format!(" (host {host}: {e})")),
            Err(_) => msg.push_str(&format!(" (host {host}: no answer)")),
        }
    }
    ConnectError(msg)
}

/// The database URL fit for logs and messages: a password in the user info
/// (`postgres://user:secret@host`) or in a `password=` query parameter is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_query(url);
    };
    // The user info ends at the last `@`: a password written without percent-encoding may hold
    // `/`, `?` or `@` itself, and masking too much is the safe way to be wrong.
    let mut out = format!("{scheme}://");
    let tail = match rest.rfind('@') {
        Some(at) => {
            match rest[..at].split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@")),
                None => out.push_str(&rest[..=at]),
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    out.push_str(&redact_query(tail));
    out
}

fn redact_query(s: &str) -> String {
    let Some((base, query)) = s.split_once('?') else {
        return s.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// `host:port` of a PostgreSQL or MySQL URL (default port when absent).
pub fn url_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        _ => return None,
    };
    let after_userinfo = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
    let host = after_userinfo.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return None;
    }
    // `[::1]:5432`, `[::1]`, `db:5432`, `db`.
    let has_port = match host.rfind(']') {
        Some(close) => host[close..].contains(':'),
        None => host.contains(':'),
    };
    Some(if has_port {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    })
}

/// The file of a SQLite URL (`sqlite://path?…` or `sqlite:path`); `None` for an in-memory
/// database or another kind of database.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Whether the host's schema has been created in this database (by a server start,
/// `switchboard migrate` or a command given `--create`).
pub async fn has_schema(db: &DatabaseConnection) -> Result<bool, DbErr> {
    SchemaManager::new(db).has_table("seaql_migrations").await
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
        tracing::debug!(addon, migration = %name, "applied addon migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.internal:5432/prod"),
            "postgres://app:***@db.internal:5432/prod"
        );
        assert_eq!(
            redact_url("mysql://root:pw@127.0.0.1/test?ssl-mode=disabled&password=pw2"),
            "mysql://root:***@127.0.0.1/test?ssl-mode=disabled&password=***"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("sqlite://data/switchboard.db?mode=rwc"),
            "sqlite://data/switchboard.db?mode=rwc"
        );
        // Passwords that were not percent-encoded.
        for url in [
            "postgres://app:pa/ss@db:5432/prod",
            "postgres://app:pa?ss@db:5432/prod",
            "postgres://app:p@ss@db:5432/prod",
        ] {
            assert_eq!(redact_url(url), "postgres://app:***@db:5432/prod", "{url}");
        }
        assert_eq!(
            redact_url("redis://:secret@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
    }

    #[test]
    fn hosts_of_network_urls() {
        assert_eq!(
            url_host("postgres://u:p@127.0.0.1:1/x").as_deref(),
            Some("127.0.0.1:1")
        );
        assert_eq!(url_host("mysql://root@db/test").as_deref(), Some("db:3306"));
        assert_eq!(
            url_host("postgres://app:pa/ss@db/x").as_deref(),
            Some("db:5432")
        );
        assert_eq!(
            url_host("postgres://[::1]/x").as_deref(),
            Some("[::1]:5432")
        );
        assert_eq!(url_host("sqlite://data/x.db"), None);
    }

    #[test]
    fn sqlite_files_of_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/switchboard.db?mode=rwc"),
            Some(PathBuf::from("data/switchboard.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:db/x.db"),
            Some(PathBuf::from("db/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
