//! The `switchboard` binary: CLI only; everything else lives in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard::Config;
use switchboard::app::{self, Application};
use switchboard::auth::AuthService;
use switchboard::auth::service::load_or_create_secret;
use switchboard_sdk::Role;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Admin-platform WebSocket server"
)]
struct Cli {
    /// Extra config file, applied after resource/config/config.toml and before the environment.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
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
}

#[derive(Subcommand)]
enum UserAction {
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
    },
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Create an API key; the key is printed once.
    Create {
        /// Key name.
        #[arg(long)]
        name: String,
    },
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so `openapi` and `apikey create` output can be piped.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn auth_service(cfg: &Config) -> anyhow::Result<AuthService> {
    let db = app::open_database(cfg).await?;
    let secret = load_or_create_secret(&cfg.auth, &cfg.server.data_dir)?;
    Ok(AuthService::new(db, cfg.auth.clone(), &secret).await?)
}

/// glibc raises its mmap threshold after the first large free, after which argon2's 19 MiB
/// working buffers come from per-thread arenas that keep them: a few logins would then hold
/// hundreds of MiB. A fixed threshold keeps such buffers in mmap, returned on free.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called once before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    init_logging(&cfg);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(cfg)
                .await
                .context("starting the server")?;
            if let Some(pw) = app.generated_admin_password() {
                tracing::warn!(
                    "created user `admin` with generated password: {pw}  (shown once; set SWITCHBOARD_AUTH__ADMIN_PASSWORD to choose it)"
                );
            }
            tracing::info!(address = %app.local_addr(), "listening; Swagger UI at /swagger");
            let stop = app.shutdown_token();
            tokio::spawn(async move {
                app::shutdown_signal().await;
                tracing::info!("shutting down");
                stop.cancel();
            });
            app.run().await?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            app::open_database(&cfg).await?;
            println!("migrations applied");
        }
        Command::User {
            action:
                UserAction::Create {
                    username,
                    password,
                    role,
                },
        } => {
            let auth = auth_service(&cfg).await?;
            let u = auth.create_user(&username, &password, &[role]).await?;
            println!("created user {} (id {}) with role {role}", u.username, u.id);
        }
        Command::Apikey {
            action: ApiKeyAction::Create { name },
        } => {
            let auth = auth_service(&cfg).await?;
            let k = auth.create_api_key(&name).await?;
            println!("{}", k.key);
            eprintln!(
                "API key `{}` (id {}) created; it is shown only this once",
                k.name, k.id
            );
        }
        Command::Openapi => {
            // A throw-away in-memory instance: the spec needs the API objects, not data.
            let mut cfg = cfg;
            cfg.database.url = "sqlite::memory:".into();
            cfg.server.address = "127.0.0.1:0".into();
            cfg.auth.jwt_secret = "openapi-spec-only".into();
            cfg.auth.admin_password = "openapi-spec-only".into();
            let app = Application::build(cfg).await?;
            println!("{}", app.spec());
        }
    }
    Ok(())
}
