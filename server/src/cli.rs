//! The operator commands: users, API keys, migrations, the spec documents.
//!
//! Every command that opens the database first says which one (password masked) and refuses a
//! database that does not exist yet unless given `--create`: run from the wrong folder, the
//! default `sqlite://data/switchboard.db` would otherwise quietly become a new, empty database
//! that the real server never reads.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use switchboard::Config;
use switchboard::addons::Addons;
use switchboard::audit::{self, AuditEntry, action};
use switchboard::auth::AuthService;
use switchboard::auth::service::UserPatch;
use switchboard::db;
use switchboard::db::entities::user;
use switchboard_sdk::Role;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Admin-platform WebSocket server",
    after_help = "Without a command, runs the server (`serve`)."
)]
pub struct Cli {
    /// Extra config file, applied after resource/config/config.toml and before the environment.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// For commands that open the database.
#[derive(Args, Clone, Copy, Default)]
pub struct DbArgs {
    /// Create the database if it does not exist yet (otherwise the command refuses, so that a
    /// command run in the wrong folder does not quietly make a new, empty one).
    #[arg(long)]
    pub create: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (the default). Creates the database and an `admin` user on first start.
    Serve,
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Print the OpenAPI spec (JSON).
    Openapi,
    /// Print the AsyncAPI document of the WebSocket events (JSON).
    Asyncapi,
}

#[derive(Subcommand)]
pub enum UserAction {
    /// Create a user.
    Create {
        /// Login name.
        #[arg(long)]
        username: String,
        /// Password (8-256 bytes).
        #[arg(long)]
        password: String,
        /// admin, operator or member.
        #[arg(long, default_value = "member")]
        role: Role,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List users: id, name, roles, enabled.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a user's password (e.g. a lost admin password). Reads it from stdin unless
    /// --password is given; the user's tokens stop working.
    Passwd {
        /// Login name.
        #[arg(long)]
        username: String,
        /// The new password (8-256 bytes); prefer stdin, which keeps it out of the shell
        /// history and the process list.
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Disable a user: they can no longer log in and their tokens stop working.
    Disable {
        /// Login name.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Enable a disabled user.
    Enable {
        /// Login name.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyAction {
    /// Create an API key; the key is printed once.
    Create {
        /// Key name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List API keys: id, name, key prefix, created (never the key itself).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke (delete) an API key; requests using it are refused at once.
    Revoke {
        /// The key's id (see `apikey list`).
        #[arg(long)]
        id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Opens the configured database for a command: names it on stderr, refuses one that does not
/// exist yet unless `create`, then applies pending migrations (host and addons) as `serve` does.
pub async fn open_database(cfg: &Config, args: DbArgs) -> anyhow::Result<DatabaseConnection> {
    let url = cfg.database_url();
    let shown = db::redact_url(&url);
    let file = db::sqlite_path(&url);
    match &file {
        Some(path) => {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            eprintln!("database: {shown} ({})", absolute.display());
            if !path.exists() && !args.create {
                bail!(
                    "no database at {}: run this in the server's folder, point at the server's \
                     database with --config, SWITCHBOARD_SERVER__DATA_DIR or \
                     SWITCHBOARD_DATABASE__URL, or pass --create to make a new, empty one",
                    absolute.display()
                );
            }
        }
        None => eprintln!("database: {shown}"),
    }
    let conn = db::connect(&url).await?;
    if !args.create && !db::has_schema(&conn).await? {
        bail!(
            "database {shown} has no Switchboard tables (it was never set up): point at the \
             server's database with --config or SWITCHBOARD_DATABASE__URL, or pass --create to \
             set this one up"
        );
    }
    db::migrate(&conn)
        .await
        .with_context(|| format!("migrating database {shown}"))?;
    Addons::default()
        .migrate(&conn)
        .await
        .with_context(|| format!("migrating database {shown} (addons)"))?;
    Ok(conn)
}

async fn auth_service(
    cfg: &Config,
    args: DbArgs,
) -> anyhow::Result<(AuthService, DatabaseConnection)> {
    let conn = open_database(cfg, args).await?;
    // These commands issue no tokens, so they need no signing secret; a throw-away one keeps
    // them from creating `<data_dir>/jwt_secret` as a side effect.
    let secret = switchboard::random::name(switchboard::random::ALPHANUMERIC, 32);
    let auth = AuthService::new(conn.clone(), cfg.auth.clone(), &secret).await?;
    Ok((auth, conn))
}

/// Who the audit log names for a CLI change: the operating-system user who ran it.
fn cli_actor() -> String {
    match std::env::var("USER") {
        Ok(u) if !u.is_empty() => format!("cli:{u}"),
        _ => "cli".to_string(),
    }
}

/// Stores a CLI change in the audit log, as the API stores its own.
async fn audit_cli(
    conn: &DatabaseConnection,
    action: &'static str,
    target: String,
    detail: String,
) {
    let entry = AuditEntry::new(&cli_actor(), action, target)
        .ip("local")
        .detail(detail);
    if let Err(e) = audit::record_now(conn, entry).await {
        eprintln!("warning: the change was made but could not be audited: {e}");
    }
}

async fn find_user(auth: &AuthService, username: &str) -> anyhow::Result<i64> {
    let found = auth
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.username == username);
    match found {
        Some(u) => Ok(u.id),
        None => bail!("no user named `{username}` (see `switchboard user list`)"),
    }
}

/// Reads a password from stdin: one line, without its line ending. On a terminal it asks first
/// and does not echo what is typed.
fn read_password(username: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        // Echo goes off before the prompt appears, so nothing typed after it is shown.
        let echo = EchoOff::new();
        eprint!("new password for {username}: ");
        let _ = std::io::stderr().flush();
        let read = stdin.lock().read_line(&mut line);
        drop(echo);
        eprintln!();
        read.context("reading the password from stdin")?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
    }
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        bail!("no password given: pass --password or write it to stdin");
    }
    Ok(pw.to_string())
}

/// Turns the terminal's echo off for as long as it lives (Unix; elsewhere it does nothing).
struct EchoOff {
    #[cfg(unix)]
    saved: Option<libc::termios>,
}

impl EchoOff {
    fn new() -> EchoOff {
        #[cfg(unix)]
        {
            // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed termios they fill in; a
            // failure (not a terminal after all) leaves the settings untouched.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                    return EchoOff { saved: None };
                }
                let saved = t;
                t.c_lflag &= !libc::ECHO;
                if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) != 0 {
                    return EchoOff { saved: None };
                }
                EchoOff { saved: Some(saved) }
            }
        }
        #[cfg(not(unix))]
        EchoOff {}
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}

fn time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Runs a user command.
pub async fn user(cfg: &Config, action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::Create {
            username,
            password,
            role,
            db,
        } => {
            let (auth, conn) = auth_service(cfg, db).await?;
            let u = auth.create_user(&username, &password, &[role]).await?;
            let detail = format!("{} with role {role}", u.username);
            audit_cli(&conn, action::USER_CREATE, format!("user:{}", u.id), detail).await;
            println!("created user {} (id {}) with role {role}", u.username, u.id);
        }
        UserAction::List { db } => {
            let (auth, _) = auth_service(cfg, db).await?;
            let users = auth.list_users().await?;
            println!("{:>6}  {:<24} {:<24} enabled", "id", "username", "roles");
            for u in &users {
                let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "{:>6}  {:<24} {:<24} {}",
                    u.id,
                    u.username,
                    roles.join(","),
                    if u.enabled { "yes" } else { "no" }
                );
            }
        }
        UserAction::Passwd {
            username,
            password,
            db,
        } => {
            let (auth, conn) = auth_service(cfg, db).await?;
            let id = find_user(&auth, &username).await?;
            let password = match password {
                Some(p) => p,
                None => read_password(&username)?,
            };
            auth.update_user(
                id,
                UserPatch {
                    password: Some(password),
                    ..Default::default()
                },
            )
            .await?;
            let detail = format!("{username}: password");
            audit_cli(&conn, action::USER_UPDATE, format!("user:{id}"), detail).await;
            println!("password of {username} (id {id}) changed; their old tokens no longer work");
        }
        UserAction::Disable { username, db } => set_enabled(cfg, db, &username, false).await?,
        UserAction::Enable { username, db } => set_enabled(cfg, db, &username, true).await?,
    }
    Ok(())
}

async fn set_enabled(
    cfg: &Config,
    args: DbArgs,
    username: &str,
    enabled: bool,
) -> anyhow::Result<()> {
    let (auth, conn) = auth_service(cfg, args).await?;
    let id = find_user(&auth, username).await?;
    if !enabled {
        // Disabling the last enabled admin would leave nobody able to manage the server
        // (`user enable` would be the only way back).
        let admins = user::Entity::find()
            .filter(user::Column::Enabled.eq(true))
            .filter(user::Column::Roles.contains("admin"))
            .all(&conn)
            .await?;
        if admins.len() == 1 && admins[0].id == id {
            bail!("{username} is the only enabled admin; enable or create another admin first");
        }
    }
    auth.update_user(
        id,
        UserPatch {
            enabled: Some(enabled),
            ..Default::default()
        },
    )
    .await?;
    let state = if enabled { "enabled" } else { "disabled" };
    let detail = format!("{username}: {state}");
    audit_cli(&conn, action::USER_UPDATE, format!("user:{id}"), detail).await;
    println!("{username} (id {id}) {state}");
    Ok(())
}

/// Runs an API-key command.
pub async fn apikey(cfg: &Config, action: ApiKeyAction) -> anyhow::Result<()> {
    match action {
        ApiKeyAction::Create { name, db } => {
            let (auth, conn) = auth_service(cfg, db).await?;
            let k = auth.create_api_key(&name).await?;
            let target = format!("apikey:{}", k.id);
            audit_cli(&conn, action::APIKEY_CREATE, target, k.name.clone()).await;
            println!("{}", k.key);
            eprintln!(
                "API key `{}` (id {}) created; it is shown only this once",
                k.name, k.id
            );
        }
        ApiKeyAction::List { db } => {
            let (auth, _) = auth_service(cfg, db).await?;
            let keys = auth.list_api_keys().await?;
            println!("{:>6}  {:<24} {:<14} created", "id", "name", "prefix");
            for k in &keys {
                println!(
                    "{:>6}  {:<24} {:<14} {}",
                    k.id,
                    k.name,
                    k.prefix,
                    time(k.created_at)
                );
            }
        }
        ApiKeyAction::Revoke { id, db } => {
            let (auth, conn) = auth_service(cfg, db).await?;
            let name = auth
                .list_api_keys()
                .await?
                .into_iter()
                .find(|k| k.id == id)
                .map(|k| k.name);
            let Some(name) = name else {
                bail!("no API key with id {id} (see `switchboard apikey list`)");
            };
            auth.delete_api_key(id).await?;
            audit_cli(
                &conn,
                action::APIKEY_REVOKE,
                format!("apikey:{id}"),
                name.clone(),
            )
            .await;
            println!("API key `{name}` (id {id}) revoked");
        }
    }
    Ok(())
}
