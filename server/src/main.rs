//! The `switchboard` binary: CLI only; everything else lives in the library.

mod cli;

use std::net::SocketAddr;

use clap::Parser;
use cli::{Cli, Command};
use switchboard::Config;
use switchboard::addons::Addons;
use switchboard::app::{self, Application};

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

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = switchboard::logging::init(&cfg.log) {
        eprintln!("configuration error: {e}");
        std::process::exit(2);
    }
    let command = cli.command.unwrap_or(Command::Serve);
    let serving = matches!(command, Command::Serve);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cfg, command)));
    if let Err(e) = result {
        if serving {
            // Through the log, so a JSON log stays one object per line.
            tracing::error!("{e:#}");
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}

async fn run(cfg: Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(cfg).await?,
        Command::Migrate { db } => {
            cli::open_database(&cfg, db).await?;
            println!("migrations applied");
        }
        Command::User { action } => cli::user(&cfg, action).await?,
        Command::Apikey { action } => cli::apikey(&cfg, action).await?,
        Command::Openapi => println!("{}", spec_only_app(cfg).await?.spec()),
        Command::Asyncapi => {
            let app = spec_only_app(cfg).await?;
            println!("{}", serde_json::to_string_pretty(app.asyncapi())?);
        }
    }
    Ok(())
}

/// A throw-away in-memory instance: the documents need the API objects and the registered
/// events, not data.
async fn spec_only_app(mut cfg: Config) -> anyhow::Result<Application> {
    cfg.database.url = "sqlite::memory:".into();
    cfg.server.address = "127.0.0.1:0".into();
    cfg.auth.jwt_secret = "openapi-spec-only".into();
    cfg.auth.admin_password = "openapi-spec-only".into();
    Application::build(cfg).await
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let database = switchboard::db::redact_url(&cfg.database_url());
    tracing::info!(%database, "opening the database");
    let app = Application::build(cfg.clone())
        .await
        .map_err(|e| explain_startup_error(e, &cfg))?;
    if let Some(pw) = app.generated_admin_password() {
        tracing::warn!(
            "created user `admin` with generated password: {pw}  (shown once; set SWITCHBOARD_AUTH__ADMIN_PASSWORD before the first start to choose it, or change it with `switchboard user passwd --username admin`)"
        );
    }
    log_urls(&cfg, app.local_addr());
    let stop = app.shutdown_token();
    tokio::spawn(async move {
        app::shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    app.run().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Where to find everything, so an operator can click through from the first lines of the log.
fn log_urls(cfg: &Config, addr: SocketAddr) {
    // A wildcard address is not something a browser can open; the loopback one works locally.
    let shown = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        SocketAddr::V6(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        a => a.to_string(),
    };
    let socket = if cfg.websocket.public_url.is_empty() {
        format!("ws://{shown}{}", cfg.websocket.path)
    } else {
        cfg.websocket.public_url.clone()
    };
    tracing::info!(
        panel = %format!("http://{shown}/"),
        swagger = %format!("http://{shown}/swagger"),
        socket = %socket,
        "listening on {addr}"
    );
    let addons = Addons::default().names();
    tracing::info!(count = addons.len(), addons = %addons.join(", "), "addons loaded");
}

/// Names the listen address when binding failed: the OS error alone ("Address already in use")
/// does not say which address, or that it came from `server.address`.
fn explain_startup_error(e: anyhow::Error, cfg: &Config) -> anyhow::Error {
    let io_kind = e
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let address = &cfg.server.address;
    match io_kind {
        Some(std::io::ErrorKind::AddrInUse) => anyhow::anyhow!(
            "cannot listen on {address} (server.address): the address is already in use; is \
             another server running there?"
        ),
        Some(std::io::ErrorKind::AddrNotAvailable) => anyhow::anyhow!(
            "cannot listen on {address} (server.address): no such address on this machine"
        ),
        // The cluster's start-up errors say "Redis" but not which one.
        _ if !cfg.cluster.redis_url.is_empty() && format!("{e:#}").contains("Redis") => {
            let redis = switchboard::db::redact_url(&cfg.cluster.redis_url);
            e.context(format!("starting the server (cluster.redis_url {redis})"))
        }
        _ => e.context("starting the server"),
    }
}
