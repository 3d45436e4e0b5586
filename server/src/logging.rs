//! Log output on stderr: text (coloured only when stderr is a terminal, so a redirected log has
//! no escape codes) or one JSON object per line for log collectors.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat};

/// Builds the level filter: `RUST_LOG` when set, else `log.level`.
///
/// sea-orm-migration reports every step ("Applying migration …", "No pending migrations") at
/// info; an operator running `user list` or starting the server does not need that, so unless
/// the filter already asks for debug output (or names the migrator) it is held to warnings.
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    filter_from(std::env::var("RUST_LOG").ok(), level)
}

fn filter_from(rust_log: Option<String>, level: &str) -> Result<EnvFilter, String> {
    let (spec, source) = match rust_log {
        Some(v) if !v.trim().is_empty() => (v, "RUST_LOG"),
        _ => (level.to_string(), "key `log.level`"),
    };
    let parsed = EnvFilter::try_new(&spec)
        .map_err(|e| format!("{source}: `{spec}` is not a tracing filter ({e})"))?;
    let verbose = parsed
        .max_level_hint()
        .is_some_and(|h| h >= LevelFilter::DEBUG);
    if verbose || spec.contains("sea_orm_migration") {
        return Ok(parsed);
    }
    EnvFilter::try_new(format!("{spec},sea_orm_migration=warn"))
        .map_err(|e| format!("{source}: `{spec}` is not a tracing filter ({e})"))
}

/// Installs the global subscriber. Fails with a message naming the key when `log.level` (or
/// `RUST_LOG`) is not a valid filter.
pub fn init(cfg: &LogConfig) -> Result<(), String> {
    let filter = filter(&cfg.level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // stderr, so `openapi` and `apikey create` output on stdout can be piped.
        .with_writer(std::io::stderr);
    // A second call in one process keeps the first subscriber; that is not an error.
    let _ = match cfg.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
    Ok(())
}

/// One JSON object per event: `timestamp`, `level`, `target`, `message`, then the event's fields
/// with their own JSON types (`"user": 3`, `"delivered": 12`).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&json_line(event, ctx.lookup_current().map(|s| s.name())))?;
        writer.write_char('\n')
    }
}

const RESERVED: [&str; 4] = ["timestamp", "level", "target", "span"];

fn json_line(event: &Event<'_>, span: Option<&str>) -> String {
    let meta = event.metadata();
    let mut timestamp = String::new();
    if SystemTime
        .format_time(&mut Writer::new(&mut timestamp))
        .is_err()
    {
        timestamp.clear();
    }
    let mut obj = Map::new();
    obj.insert("timestamp".into(), Value::String(timestamp));
    obj.insert("level".into(), Value::String(meta.level().to_string()));
    obj.insert("target".into(), Value::String(meta.target().to_string()));
    if let Some(span) = span {
        obj.insert("span".into(), Value::String(span.to_string()));
    }
    event.record(&mut JsonFields(&mut obj));
    Value::Object(obj).to_string()
}

/// Records fields into the object; a field that would overwrite one of the fixed keys is
/// written as `field.<name>` instead.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl JsonFields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let key = if RESERVED.contains(&name) {
            format!("field.{name}")
        } else {
            name.to_string()
        };
        self.0.insert(key, value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_filter_holds_migration_steps_back() {
        let f = filter_from(None, "info").unwrap();
        assert!(f.to_string().contains("sea_orm_migration=warn"), "{f}");
    }

    #[test]
    fn debug_filter_shows_migration_steps() {
        let f = filter_from(None, "debug").unwrap();
        assert!(!f.to_string().contains("sea_orm_migration"), "{f}");
    }

    #[test]
    fn bad_level_names_the_key() {
        let e = filter_from(None, "loud=[").unwrap_err();
        assert!(e.contains("log.level"), "{e}");
        let e = filter_from(Some("loud=[".into()), "info").unwrap_err();
        assert!(e.starts_with("RUST_LOG"), "{e}");
    }
}
