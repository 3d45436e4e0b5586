//! The composition root: builds every part from the config, binds, runs, shuts down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Request, Response, Route, get, handler};
use poem_openapi::OpenApiService;
use sea_orm::DatabaseConnection;
use switchboard_sdk::event::EventRegistry;
use switchboard_sdk::{AddonContext, Hub};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::addons::{AddonApis, Addons};
use crate::api::AppState;
use crate::api::apikeys::ApiKeysApi;
use crate::api::audit::AuditApi;
use crate::api::auth::AuthApi;
use crate::api::site::SiteApi;
use crate::api::users::UsersApi;
use crate::api::websocket::WebSocketApi;
use crate::auth::service::load_or_create_secret;
use crate::auth::{AuthMiddleware, AuthService, ExemptList};
use crate::cluster::queue::QueueConsumer;
use crate::cluster::{RedisBackend, RedisSettings};
use crate::config::Config;
use crate::history::DurableHistory;
use crate::metrics::Metrics;
use crate::net::TrustedProxies;
use crate::node::memory::MemoryBackend;
use crate::node::{Broker, Node, Presence};
use crate::web::WebFiles;
use crate::websocket::history::MemoryHistory;
use crate::websocket::registry::Limits;
use crate::websocket::{LocalHub, Registry, WsState};

/// The OpenAPI service type.
pub type Apis = (
    AuthApi,
    UsersApi,
    ApiKeysApi,
    WebSocketApi,
    AuditApi,
    SiteApi,
    AddonApis,
);

/// A built, bound server.
pub struct Application {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: Arc<AppState>,
    route: poem::endpoint::BoxEndpoint<'static, Response>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    generated_admin_password: Option<String>,
    spec: String,
    asyncapi: Arc<serde_json::Value>,
    durable: Option<Arc<DurableHistory>>,
}

/// The node id: config, else `<hostname>-<pid>`.
pub fn node_id(cfg: &Config) -> String {
    if !cfg.cluster.node_id.is_empty() {
        return cfg.cluster.node_id.clone();
    }
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{host}-{}", std::process::id())
}

/// Opens and migrates the database (host and addons).
pub async fn open_database(cfg: &Config) -> anyhow::Result<DatabaseConnection> {
    let db = crate::db::connect(&cfg.database_url()).await?;
    crate::db::migrate(&db).await?;
    Addons::default().migrate(&db).await?;
    Ok(db)
}

/// Builds the OpenAPI service (also used by `switchboard openapi`).
pub fn openapi_service(apis: Apis) -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis, "Switchboard", env!("CARGO_PKG_VERSION"))
        .description(
            "Admin-platform WebSocket server. Authenticate with `Authorization: Bearer <jwt>` \
             (from POST /api/auth/login) or `X-API-Key` (backend services, operator role). \
             Errors are JSON `{code, message}`.",
        )
        .server("/")
}

#[handler]
fn healthz() -> Response {
    Response::builder()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

#[handler]
async fn readyz(state: Data<&Arc<AppState>>) -> Response {
    let db_ok = state.db.ping().await.is_ok();
    let node = &state.ws.node;
    let redis = if node.is_clustered() {
        Some(node.check().await)
    } else {
        None
    };
    let ready = db_ok && redis != Some(false);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": if db_ok { "ok" } else { "unavailable" },
        "redis": match redis { None => "not configured", Some(true) => "ok", Some(false) => "unavailable" },
    });
    Response::builder()
        .status(if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        })
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
fn metrics_text(state: Data<&Arc<AppState>>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.ws.metrics.render())
}

impl Application {
    /// Builds everything and binds `server.address` (port 0 picks a free port).
    pub async fn build(cfg: Config) -> anyhow::Result<Application> {
        Self::build_with_events(cfg, |_| {}).await
    }

    /// [`Application::build`] with extra events registered after the addons' (tests use it
    /// to install handlers that fail or panic on purpose).
    pub async fn build_with_events(
        cfg: Config,
        extra_events: impl FnOnce(&mut EventRegistry),
    ) -> anyhow::Result<Application> {
        let db = open_database(&cfg).await?;
        let secret = load_or_create_secret(&cfg.auth, &cfg.server.data_dir)?;
        let auth = Arc::new(AuthService::new(db.clone(), cfg.auth.clone(), &secret).await?);
        let generated_admin_password = auth.ensure_admin().await?;

        let metrics = Arc::new(Metrics::default());
        let node = node_id(&cfg);
        let registry = Arc::new(Registry::new(
            &node,
            Limits {
                max_connections: cfg.websocket.max_connections,
                max_per_user: cfg.websocket.max_connections_per_user,
                max_tags: cfg.websocket.max_tags_per_connection,
            },
            metrics.clone(),
        ));
        // Durable history is the single node's; a cluster keeps history in Redis streams.
        let (history, durable) = if cfg.history.durable && cfg.cluster.redis_url.is_empty() {
            let (durable, opened) =
                DurableHistory::open(db.clone(), &cfg.history, &cfg.server.data_dir).await?;
            tracing::info!(
                streams = opened.streams,
                new_epochs = opened.new_epochs,
                "durable history loaded"
            );
            (durable.history().clone(), Some(durable))
        } else {
            let memory =
                MemoryHistory::new(cfg.history.size, cfg.history.ttl, cfg.history.max_bytes);
            (Arc::new(memory), None)
        };
        let local = Arc::new(LocalHub::new(registry.clone(), history.clone()));
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let audit = crate::audit::AuditLog::start(
            db.clone(),
            cfg.audit.retention,
            metrics.clone(),
            shutdown.clone(),
            &tasks,
        );
        auth.attach_audit(audit.clone());
        if let Some(d) = &durable {
            d.start(shutdown.clone(), &tasks);
        }
        // The one place that chooses the backend: memory for a single node, Redis for a
        // cluster. Everything above the node is the same code in both modes.
        let (broker, presence, redis): (Arc<dyn Broker>, Arc<dyn Presence>, _) =
            if cfg.cluster.redis_url.is_empty() {
                let memory = Arc::new(MemoryBackend::new(
                    local.clone(),
                    auth.clone(),
                    cfg.websocket.max_tags_per_connection,
                ));
                (memory.clone(), memory, None)
            } else {
                let settings = RedisSettings {
                    redis_url: cfg.cluster.redis_url.clone(),
                    prefix: cfg.cluster.prefix.clone(),
                    node: node.clone(),
                    history_size: cfg.history.size,
                    history_ttl: cfg.history.ttl,
                    max_per_user: cfg.websocket.max_connections_per_user,
                    max_tags: cfg.websocket.max_tags_per_connection,
                };
                let backend = RedisBackend::start(
                    settings,
                    registry.clone(),
                    auth.clone(),
                    shutdown.clone(),
                    &tasks,
                )
                .await
                .map_err(|e| anyhow::anyhow!("cluster mode: {e}"))?;
                auth.share_login_limit(crate::auth::service::SharedLimiter::new(
                    backend.connection(),
                    backend.prefix(),
                    auth.config().login_max_failures,
                ));
                tracing::info!(node = %node, "cluster mode on Redis");
                (backend.clone(), backend.clone(), Some(backend))
            };
        let node_facade = Arc::new(
            Node::new(
                registry.clone(),
                broker,
                presence,
                auth.clone(),
                metrics.clone(),
            )
            .with_send_queue_bytes(cfg.websocket.send_queue_bytes),
        );
        if let Some(backend) = &redis {
            let consumer = QueueConsumer {
                client: backend.client().clone(),
                prefix: cfg.cluster.prefix.clone(),
                consumer: node.clone(),
                claim_idle: cfg.cluster.queue_claim_idle,
                node: node_facade.clone(),
            };
            let stop = shutdown.clone();
            tasks.spawn(crate::cluster::queue::run(consumer, stop));
        }
        let hub: Arc<dyn Hub> = node_facade.clone();
        let started = Instant::now();
        let monitor =
            crate::websocket::monitor::Monitor::new(node_facade.clone(), metrics.clone(), started);
        tasks.spawn(monitor.clone().run(shutdown.clone()));

        let addons = Addons::default();
        let mut events = EventRegistry::reserving(crate::websocket::builtins::RESERVED);
        addons.register_events(&mut events);
        events.set_addon("host");
        extra_events(&mut events);
        let router = crate::websocket::EventRouter::build(events).map_err(|errs| {
            let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("event registration failed: {}", msgs.join("; "))
        })?;

        let mut exempt_entries = cfg.auth.except_login.clone();
        exempt_entries.extend(addons.exempt_paths());
        let exempt = ExemptList::new(exempt_entries);

        let ws = Arc::new(WsState {
            cfg: cfg.websocket.clone(),
            node: node_facade.clone(),
            router: Arc::new(router),
            auth: auth.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
            proxies: TrustedProxies::new(&cfg.server.trusted_proxies),
            socket_exempt: exempt.matches(&cfg.websocket.path),
            monitor,
        });
        let state = Arc::new(AppState {
            cfg: cfg.clone(),
            db: db.clone(),
            auth: auth.clone(),
            ws: ws.clone(),
            started,
            audit,
        });

        let addon_ctx = AddonContext::new(hub.clone(), db.clone(), shutdown.clone(), tasks.clone());
        let api = openapi_service((
            AuthApi(state.clone()),
            UsersApi(state.clone()),
            ApiKeysApi(state.clone()),
            WebSocketApi(state.clone()),
            AuditApi(state.clone()),
            SiteApi(state.clone()),
            addons.apis(&addon_ctx),
        ));
        let spec = api.spec();
        let asyncapi = crate::api::asyncapi::try_document(&ws.router, &cfg.websocket.path)
            .map_err(|e| anyhow::anyhow!("the WebSocket event document: {e}"))?;
        let asyncapi = Arc::new(asyncapi);
        addons.start(&addon_ctx);

        // Expire stream history.
        {
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => history.sweep(),
                    }
                }
            });
        }

        // Prune expired revocations hourly.
        {
            let auth = auth.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {
                            if let Err(e) = auth.prune_revoked().await {
                                tracing::warn!(error = %e, "pruning revoked tokens failed");
                            }
                        }
                    }
                }
            });
        }

        let web = WebFiles::new(&cfg.web.dir);
        let ws_path = cfg.websocket.path.clone();
        let ws_for_socket = ws.clone();
        let mut route = Route::new()
            .at(
                &ws_path,
                poem::endpoint::make(move |req: Request| {
                    let st = ws_for_socket.clone();
                    async move { crate::websocket::handshake::upgrade(st, req, false).await }
                }),
            )
            .at("/api/openapi.json", api.spec_endpoint())
            .at("/api/asyncapi.json", {
                let doc = asyncapi.clone();
                get(poem::endpoint::make_sync(move |_| {
                    poem::web::Json(doc.as_ref().clone())
                }))
            })
            .nest("/swagger", api.swagger_ui())
            .at("/healthz", get(healthz))
            .at("/readyz", get(readyz))
            .at("/metrics", get(metrics_text))
            .nest_no_strip("/api", api);
        if !cfg.websocket.echo_path.is_empty() {
            let ws_echo = ws.clone();
            route = route.at(
                &cfg.websocket.echo_path,
                poem::endpoint::make(move |req: Request| {
                    let st = ws_echo.clone();
                    async move { crate::websocket::handshake::upgrade(st, req, true).await }
                }),
            );
        }
        let web_root = web.clone();
        let route = route
            .at(
                "/",
                poem::endpoint::make(move |req: Request| {
                    let w = web_root.clone();
                    async move { w.serve(&req).await }
                }),
            )
            .at(
                "/*path",
                poem::endpoint::make(move |req: Request| {
                    let w = web.clone();
                    async move { w.serve(&req).await }
                }),
            );

        let metrics_for_log = metrics.clone();
        let route = route
            .data(state.clone())
            .around(move |ep, req| {
                let m = metrics_for_log.clone();
                async move {
                    let start = Instant::now();
                    let method = req.method().clone();
                    let path = req.uri().path().to_string();
                    let res = ep.call(req).await;
                    let status = match &res {
                        Ok(r) => r.status(),
                        Err(e) => e.status(),
                    };
                    let elapsed = start.elapsed();
                    if path.starts_with("/api/") {
                        m.api_seconds.observe(elapsed);
                    }
                    // Path only: query strings may carry `?authorization=` tokens.
                    tracing::debug!(%method, %path, status = status.as_u16(), micros = elapsed.as_micros() as u64, "http");
                    res
                }
            })
            .with(AuthMiddleware::new(auth.clone(), exempt))
            .around(crate::error::json_errors)
            .map_to_response()
            .boxed();

        let listener = bind_listener(&cfg.server.address)?;
        let addr = listener.local_addr()?;

        Ok(Application {
            listener,
            addr,
            state,
            route,
            shutdown,
            tasks,
            generated_admin_password,
            spec,
            asyncapi: asyncapi.clone(),
            durable,
        })
    }

    /// The AsyncAPI document of the WebSocket events.
    pub fn asyncapi(&self) -> &serde_json::Value {
        &self.asyncapi
    }

    /// The OpenAPI spec as JSON.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (tests inspect the registry through it).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Cancelling this token shuts the server down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The admin password generated on first start, if any (printed once by `serve`).
    pub fn generated_admin_password(&self) -> Option<&str> {
        self.generated_admin_password.as_deref()
    }

    /// Serves until the shutdown token is cancelled: then every socket gets 1001, and we wait
    /// for them at most `server.shutdown_timeout`; last, durable history is flushed and the
    /// stop recorded as clean.
    pub async fn run(self) -> anyhow::Result<()> {
        let timeout = self.state.cfg.server.shutdown_timeout;
        let settings = crate::http::Settings::from_config(&self.state.cfg.server);
        let route = crate::web::BrowserPolicy::new(self.route, self.state.clone()).boxed();
        let metrics = self.state.ws.metrics.clone();
        crate::http::serve(
            self.listener,
            route,
            settings,
            metrics,
            self.shutdown.clone(),
        )
        .await;
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within the shutdown timeout");
        }
        if let Some(d) = &self.durable {
            if d.close().await {
                tracing::info!("durable history flushed");
            }
        }
        Ok(())
    }
}

/// Binds with a deep accept backlog: the default of 128 overflows under a connect storm
/// (handshakes then wait for SYN retransmits, ~1 s each).
fn bind_listener(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = address.parse()?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket.listen(4096)?)
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
