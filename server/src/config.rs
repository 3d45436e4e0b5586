//! Layered configuration: built-in defaults → `resource/config/config.toml` → `--config FILE`
//! → `SWITCHBOARD_SECTION__KEY` environment variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

/// The file read first when it exists (relative to the working directory).
pub const DEFAULT_CONFIG_FILE: &str = "resource/config/config.toml";

/// Why configuration failed; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[websocket]`.
    pub websocket: WebSocketConfig,
    /// `[history]`.
    pub history: HistoryConfig,
    /// `[cluster]`.
    pub cluster: ClusterConfig,
    /// `[web]`.
    pub web: WebConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[audit]`.
    pub audit: AuditConfig,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub address: String,
    /// Where the SQLite file and the generated JWT secret live.
    pub data_dir: PathBuf,
    /// Longest wait for connections to close on SIGINT/SIGTERM.
    #[serde(with = "duration_str")]
    pub shutdown_timeout: Duration,
    /// Longest time a client may take to send a request's headers (slowloris guard); also
    /// closes connections that stay silent that long.
    #[serde(with = "duration_str")]
    pub header_timeout: Duration,
    /// Longest a request body may take to arrive, from the end of its headers (408 after).
    #[serde(with = "duration_str")]
    pub body_timeout: Duration,
    /// Largest request body (413 over it).
    #[serde(with = "size_str")]
    pub max_body_size: usize,
    /// An idle keep-alive connection is closed after this long without a new request.
    #[serde(with = "duration_str")]
    pub keepalive_timeout: Duration,
    /// Connections that have not yet sent a request with a valid credential; past it, only
    /// requests with a valid token or API key are served (503 otherwise). 0 = unlimited.
    pub max_unauthenticated: usize,
    /// Host names (with or without port) accepted in `Host` to build the advertised
    /// WebSocket address, besides `server.address` itself.
    pub allowed_hosts: Vec<String>,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: "127.0.0.1:8000".into(),
            data_dir: PathBuf::from("data"),
            shutdown_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body_size: 1024 * 1024,
            keepalive_timeout: Duration::from_secs(60),
            max_unauthenticated: 1024,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[database]`.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// sea-orm URL; empty means `sqlite://<data_dir>/switchboard.db?mode=rwc`.
    pub url: String,
}

/// `[auth]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret; empty means generated once and kept in `<data_dir>/jwt_secret`.
    #[serde(deserialize_with = "string_or_number")]
    pub jwt_secret: String,
    /// Password of the `admin` user created on first start; empty means random, printed once.
    #[serde(deserialize_with = "string_or_number")]
    pub admin_password: String,
    /// Lifetime of issued tokens.
    #[serde(with = "duration_str")]
    pub token_ttl: Duration,
    /// Whether a user may hold several valid tokens (false: a login revokes older ones).
    pub multi_login: bool,
    /// Paths that need no token: exact, or a prefix ending in `*`.
    pub except_login: Vec<String>,
    /// The `iss` claim written and required.
    pub jwt_issuer: String,
    /// Failed logins per username+IP per minute before 429.
    pub login_max_failures: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            admin_password: String::new(),
            token_ttl: Duration::from_secs(24 * 3600),
            multi_login: true,
            except_login: default_except_login(),
            jwt_issuer: "switchboard".into(),
            login_max_failures: 5,
        }
    }
}

/// The default exemption list.
pub fn default_except_login() -> Vec<String> {
    [
        "/api/auth/login",
        "/api/site/config",
        "/healthz",
        "/readyz",
        "/metrics",
        "/swagger*",
        "/api/openapi.json",
        "/api/asyncapi.json",
        "/",
        "/index.html",
        "/favicon.ico",
        "/css/*",
        "/js/*",
        "/img/*",
        "/screenshots/*",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `[websocket.rate_limit]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained inbound events per second per connection.
    pub per_second: u32,
    /// Burst allowance.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_second: 50,
            burst: 100,
        }
    }
}

/// `[websocket]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Upgrade path.
    pub path: String,
    /// Server ping period.
    #[serde(with = "duration_str")]
    pub ping_interval: Duration,
    /// Silence after which a connection is closed with 4009.
    #[serde(with = "duration_str")]
    pub idle_timeout: Duration,
    /// Largest inbound message; larger → close 1009.
    #[serde(with = "size_str")]
    pub max_message_size: usize,
    /// Per-connection send queue; over it → close 4008.
    #[serde(with = "size_str")]
    pub send_queue_bytes: usize,
    /// Longest a write may take; longer → close 4008.
    #[serde(with = "duration_str")]
    pub write_timeout: Duration,
    /// Per-connection inbound rate limit.
    pub rate_limit: RateLimitConfig,
    /// Total connections on this node; 0 = unlimited.
    pub max_connections: usize,
    /// Connections per user; 0 = unlimited.
    pub max_connections_per_user: usize,
    /// Tags one connection may join.
    pub max_tags_per_connection: usize,
    /// Allowed `Origin` values; empty = any.
    pub allowed_origins: Vec<String>,
    /// Whether clients may `publish` to tags.
    pub client_publish: bool,
    /// Raw echo endpoint for conformance testing; empty = off.
    pub echo_path: String,
    /// Public WebSocket URL advertised by `/api/site/config`; empty = derived from the request.
    pub public_url: String,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            path: "/socket".into(),
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            max_message_size: 64 * 1024,
            send_queue_bytes: 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            rate_limit: RateLimitConfig::default(),
            max_connections: 0,
            max_connections_per_user: 32,
            max_tags_per_connection: 64,
            allowed_origins: Vec::new(),
            client_publish: true,
            echo_path: String::new(),
            public_url: String::new(),
        }
    }
}

/// `[history]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Pushes kept per stream.
    pub size: usize,
    /// How long they are kept.
    #[serde(with = "duration_str")]
    pub ttl: Duration,
    /// Memory for all streams' history on this node; least recently used streams shed first.
    #[serde(with = "size_str")]
    pub max_bytes: usize,
    /// Keep epochs, offsets and history in the database so they survive a restart (single
    /// node; a cluster keeps them in Redis). `false`: memory only, new epochs at every start.
    pub durable: bool,
    /// How often durable history is written (one transaction each time); a crash may lose
    /// about this much history, and the streams concerned then get new epochs.
    #[serde(with = "duration_str")]
    pub flush_interval: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            size: 100,
            ttl: Duration::from_secs(300),
            max_bytes: 64 * 1024 * 1024,
            durable: true,
            flush_interval: Duration::from_millis(100),
        }
    }
}

/// `[cluster]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Redis URL; empty = single node.
    pub redis_url: String,
    /// This node's id; empty = `<hostname>-<pid>`.
    pub node_id: String,
    /// Prefix of every Redis key and channel (several deployments may share one Redis).
    pub prefix: String,
    /// Queue entries left pending this long by a consumer (a dead node) are claimed by another.
    #[serde(with = "duration_str")]
    pub queue_claim_idle: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: String::new(),
            node_id: String::new(),
            prefix: "switchboard".into(),
            queue_claim_idle: Duration::from_secs(30),
        }
    }
}

/// `[web]`.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the admin panel from this folder instead of the embedded copy (live editing).
    pub dir: String,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter, e.g. `info` or `switchboard=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
    /// `text` (human-readable) or `json` (one object per line, for log collectors).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `[audit]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How long audit rows are kept; older ones are deleted by a background task. `0s` keeps
    /// them forever.
    #[serde(with = "duration_str")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// `log.format`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Loads defaults, then `resource/config/config.toml` if present, then `extra_file`, then
    /// the environment.
    pub fn load(extra_file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(Path::new(DEFAULT_CONFIG_FILE), extra_file, std::env::vars())
    }

    /// [`Config::load`] with explicit sources (tests).
    pub fn load_from(
        base_file: &Path,
        extra_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        if base_file.exists() {
            fig = fig.merge(Toml::file_exact(base_file));
        }
        if let Some(extra) = extra_file {
            if !extra.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    extra.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(extra));
        }
        // Only SECTION__KEY variables are configuration; other SWITCHBOARD_* names are left alone.
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SWITCHBOARD_") && k.contains("__"))
            .collect();
        fig = fig.merge(EnvSnapshot(vars));
        let cfg: Config = fig.extract().map_err(|e| {
            let mut msgs: Vec<String> = e
                .into_iter()
                .map(|e| {
                    let key = e.path.join(".");
                    if key.is_empty() {
                        e.kind.to_string()
                    } else {
                        format!("key `{key}`: {}", e.kind)
                    }
                })
                .collect();
            msgs.dedup();
            ConfigError(msgs.join("; "))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, msg: &str| Err(ConfigError(format!("key `{key}`: {msg}")));
        if self.server.address.parse::<std::net::SocketAddr>().is_err() {
            return err("server.address", "expected host:port, e.g. 127.0.0.1:8000");
        }
        if !self.websocket.path.starts_with('/') {
            return err("websocket.path", "must start with /");
        }
        if !self.websocket.echo_path.is_empty() && !self.websocket.echo_path.starts_with('/') {
            return err("websocket.echo_path", "must start with / or be empty");
        }
        for (key, value) in [
            ("server.header_timeout", self.server.header_timeout),
            ("server.body_timeout", self.server.body_timeout),
            ("server.keepalive_timeout", self.server.keepalive_timeout),
        ] {
            if value.is_zero() {
                return err(key, "must be positive");
            }
        }
        if self.server.max_body_size == 0 {
            return err("server.max_body_size", "must be at least 1B");
        }
        for h in &self.server.allowed_hosts {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic()) || h.contains('/') {
                return err(
                    "server.allowed_hosts",
                    &format!("`{h}` is not a host name or host:port"),
                );
            }
        }
        if self.websocket.ping_interval.is_zero() {
            return err("websocket.ping_interval", "must be positive");
        }
        if self.history.flush_interval.is_zero() {
            return err("history.flush_interval", "must be positive");
        }
        if self.websocket.idle_timeout <= self.websocket.ping_interval {
            return err(
                "websocket.idle_timeout",
                "must be longer than websocket.ping_interval",
            );
        }
        if self.websocket.max_message_size < 128 {
            return err("websocket.max_message_size", "must be at least 128B");
        }
        if self.websocket.rate_limit.per_second == 0 || self.websocket.rate_limit.burst == 0 {
            return err(
                "websocket.rate_limit",
                "per_second and burst must be positive",
            );
        }
        if self.auth.token_ttl.as_secs() < 1 {
            return err("auth.token_ttl", "must be at least 1s");
        }
        for p in &self.server.trusted_proxies {
            if crate::net::parse_proxy(p).is_none() {
                return err(
                    "server.trusted_proxies",
                    &format!("`{p}` is not an IP or CIDR"),
                );
            }
        }
        Ok(())
    }

    /// The effective database URL.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("switchboard.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }
}

/// Feeds a fixed set of variables through figment's `Env` key mapping.
struct EnvSnapshot(Vec<(String, String)>);

impl figment::Provider for EnvSnapshot {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable(s)")
    }
    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        use figment::value::{Dict, Map, Value};
        let mut dict = Dict::new();
        for (k, v) in &self.0 {
            let key = k["SWITCHBOARD_".len()..].to_ascii_lowercase();
            let path: Vec<&str> = key.split("__").collect();
            // figment's value parser indexes a quoted string's bytes by character
            // position when it meets a backslash, so a non-ASCII character before an
            // escape panics inside it; such a value is taken as the literal string.
            let parsable = v.is_ascii() || !v.contains('\\');
            let value: Value = if parsable {
                v.parse().unwrap_or_else(|_| Value::from(v.clone()))
            } else {
                Value::from(v.clone())
            };
            insert_path(&mut dict, &path, value);
        }
        let mut map = Map::new();
        map.insert(figment::Profile::Default, dict);
        Ok(map)
    }
}

fn insert_path(dict: &mut figment::value::Dict, path: &[&str], value: figment::value::Value) {
    use figment::value::{Dict, Value};
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Uint(u64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Scalar::deserialize(d)? {
        Scalar::Text(s) => s,
        Scalar::Int(i) => i.to_string(),
        Scalar::Uint(u) => u.to_string(),
        Scalar::Float(f) => f.to_string(),
        Scalar::Bool(b) => b.to_string(),
    })
}

/// Durations written as `500ms`, `25s`, `5m`, `24h`.
pub mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Parses a duration string.
    pub fn parse(s: &str) -> Result<Duration, String> {
        humantime::parse_duration(s.trim())
            .map_err(|e| format!("`{s}` is not a duration like 500ms, 25s, 5m ({e})"))
    }

    /// serde entry point.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Sizes written as `64KiB`, `1MiB`, `512B`, or a plain number of bytes.
pub mod size_str {
    use serde::{Deserialize, Deserializer};

    /// Parses a size.
    pub fn parse(s: &str) -> Result<usize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: usize = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size like 64KiB or 1MiB"))?;
        let mult: usize = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" | "KB" | "kB" => 1024,
            "MiB" | "M" | "MB" => 1024 * 1024,
            "GiB" | "G" | "GB" => 1024 * 1024 * 1024,
            other => {
                return Err(format!(
                    "`{s}`: unknown unit `{other}` (use B, KiB, MiB, GiB)"
                ));
            }
        };
        n.checked_mul(mult)
            .ok_or_else(|| format!("`{s}` is too large"))
    }

    /// serde entry point (numbers are bytes).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => usize::try_from(n).map_err(serde::de::Error::custom),
            Raw::S(s) => parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn log_format_from_the_environment_and_bad_values_name_the_key() {
        let c = Config::load_from(Path::new("/nonexistent"), None, env(&[])).unwrap();
        assert_eq!(c.log.format, LogFormat::Text);
        let c = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_LOG__FORMAT", "json")]),
        )
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_LOG__FORMAT", "xml")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("log.format") && e.contains("xml"), "{e}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::load_from(Path::new("/nonexistent"), None, env(&[])).unwrap();
        assert_eq!(c.server.address, "127.0.0.1:8000");
        assert_eq!(c.websocket.path, "/socket");
        assert_eq!(c.websocket.ping_interval, Duration::from_secs(25));
        assert_eq!(c.websocket.max_message_size, 65536);
        assert_eq!(c.websocket.rate_limit.burst, 100);
        assert_eq!(c.history.size, 100);
        assert!(c.history.durable);
        assert_eq!(c.history.flush_interval, Duration::from_millis(100));
        assert!(c.auth.multi_login);
        assert!(c.auth.except_login.contains(&"/swagger*".to_string()));
        assert_eq!(c.server.body_timeout, Duration::from_secs(10));
        assert_eq!(c.server.max_body_size, 1 << 20);
        assert_eq!(c.server.keepalive_timeout, Duration::from_secs(60));
        assert_eq!(c.server.max_unauthenticated, 1024);
        assert!(c.server.allowed_hosts.is_empty());
    }

    #[test]
    fn the_shipped_config_file_states_the_defaults() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../resource/config/config.toml");
        let c = Config::load_from(&file, None, env(&[])).unwrap();
        let d = ServerConfig::default();
        assert_eq!(c.server.header_timeout, d.header_timeout);
        assert_eq!(c.server.body_timeout, d.body_timeout);
        assert_eq!(c.server.max_body_size, d.max_body_size);
        assert_eq!(c.server.keepalive_timeout, d.keepalive_timeout);
        assert_eq!(c.server.max_unauthenticated, d.max_unauthenticated);
        assert_eq!(c.server.allowed_hosts, d.allowed_hosts);
    }

    #[test]
    fn http_limits_are_read_and_bad_ones_named() {
        let c = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[
                ("SWITCHBOARD_SERVER__BODY_TIMEOUT", "2s"),
                ("SWITCHBOARD_SERVER__MAX_BODY_SIZE", "64KiB"),
                ("SWITCHBOARD_SERVER__KEEPALIVE_TIMEOUT", "5s"),
                ("SWITCHBOARD_SERVER__MAX_UNAUTHENTICATED", "8"),
                (
                    "SWITCHBOARD_SERVER__ALLOWED_HOSTS",
                    r#"["admin.example.com"]"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.body_timeout, Duration::from_secs(2));
        assert_eq!(c.server.max_body_size, 65536);
        assert_eq!(c.server.keepalive_timeout, Duration::from_secs(5));
        assert_eq!(c.server.max_unauthenticated, 8);
        assert_eq!(c.server.allowed_hosts, vec!["admin.example.com"]);
        for (var, key) in [
            ("SWITCHBOARD_SERVER__BODY_TIMEOUT", "server.body_timeout"),
            ("SWITCHBOARD_SERVER__MAX_BODY_SIZE", "server.max_body_size"),
            (
                "SWITCHBOARD_SERVER__KEEPALIVE_TIMEOUT",
                "server.keepalive_timeout",
            ),
            (
                "SWITCHBOARD_SERVER__MAX_UNAUTHENTICATED",
                "server.max_unauthenticated",
            ),
        ] {
            let e = Config::load_from(Path::new("/nonexistent"), None, env(&[(var, "-x")]))
                .unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_SERVER__BODY_TIMEOUT", "0s")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("server.body_timeout"), "{e}");
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_SERVER__ALLOWED_HOSTS", r#"["a b"]"#)]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("server.allowed_hosts"), "{e}");
    }

    #[test]
    fn env_overrides_nested_keys_and_lists() {
        let c = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[
                ("SWITCHBOARD_SERVER__ADDRESS", "127.0.0.1:18000"),
                ("SWITCHBOARD_WEBSOCKET__PING_INTERVAL", "1s"),
                ("SWITCHBOARD_WEBSOCKET__RATE_LIMIT__PER_SECOND", "7"),
                (
                    "SWITCHBOARD_WEBSOCKET__ALLOWED_ORIGINS",
                    r#"["http://a", "http://b"]"#,
                ),
                ("SWITCHBOARD_AUTH__JWT_SECRET", "12345"),
                ("SWITCHBOARD_BIN", "ignored: not SECTION__KEY"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.address, "127.0.0.1:18000");
        assert_eq!(c.websocket.ping_interval, Duration::from_secs(1));
        assert_eq!(c.websocket.rate_limit.per_second, 7);
        assert_eq!(c.websocket.allowed_origins, vec!["http://a", "http://b"]);
        assert_eq!(c.auth.jwt_secret, "12345");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_WEBSOCKET__IDLE_TIMEOUT", "soon")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("websocket.idle_timeout"), "{e}");
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_WEBSOCKET__SEND_QUEUE_BYTES", "12 parsecs")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("websocket.send_queue_bytes"), "{e}");
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_SERVER__ADRESS", "typo")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("adress"), "{e}");
    }

    #[test]
    fn file_then_env() {
        let dir = std::env::temp_dir().join(format!("sbcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[server]\naddress = \"127.0.0.1:9\"\n[history]\nsize = 5\n",
        )
        .unwrap();
        let c = Config::load_from(
            &f,
            None,
            env(&[("SWITCHBOARD_SERVER__ADDRESS", "127.0.0.1:10")]),
        )
        .unwrap();
        assert_eq!(c.server.address, "127.0.0.1:10");
        assert_eq!(c.history.size, 5);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn non_ascii_before_an_escape_is_a_plain_string() {
        let v = "\"\u{19d0}\\a\"";
        let c = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_AUTH__JWT_SECRET", v)]),
        )
        .unwrap();
        assert_eq!(c.auth.jwt_secret, v);
        let e = Config::load_from(
            Path::new("/nonexistent"),
            None,
            env(&[("SWITCHBOARD_WEBSOCKET__PING_INTERVAL", v)]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("websocket"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn size_and_duration_parsers_never_panic(s in "\\PC{0,24}") {
            let _ = size_str::parse(&s);
            let _ = duration_str::parse(&s);
        }

        #[test]
        fn sizes_in_kib_round_trip(n in 0usize..1_000_000) {
            proptest::prop_assert_eq!(size_str::parse(&format!("{n}KiB")).unwrap(), n * 1024);
        }

        #[test]
        fn any_env_value_is_accepted_or_named_in_the_error(v in "\\PC{0,16}") {
            let r = Config::load_from(
                Path::new("/nonexistent"),
                None,
                env(&[("SWITCHBOARD_WEBSOCKET__PING_INTERVAL", &v)]),
            );
            if let Err(e) = r {
                proptest::prop_assert!(e.to_string().contains("websocket"), "{}", e);
            }
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size_str::parse("64KiB").unwrap(), 65536);
        assert_eq!(size_str::parse("1MiB").unwrap(), 1 << 20);
        assert_eq!(size_str::parse("100").unwrap(), 100);
        assert!(size_str::parse("1XB").is_err());
        assert_eq!(
            duration_str::parse("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(duration_str::parse("5m").unwrap(), Duration::from_secs(300));
    }
}
