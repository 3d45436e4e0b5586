//! The log subscriber: `log.level` (or `RUST_LOG`) decides what is written, except that the
//! protocol libraries' own debug and trace output is never written at all.
//!
//! tungstenite traces every inbound frame in full ("Received message …"), and frames carry
//! `login` passwords and tokens; hyper and its helpers can likewise dump raw bytes. Those
//! events are dropped here whatever the filter says, so no log level reveals a credential.

use std::io::IsTerminal;

use tracing::{Level, Metadata};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Libraries whose debug and trace events may carry raw frames or request bytes.
const WIRE_LEVEL_TARGETS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
];

/// Whether an event may be written at all: not a wire-level library's debug or trace output.
pub fn writable(meta: &Metadata<'_>) -> bool {
    if *meta.level() < Level::DEBUG {
        // INFO, WARN and ERROR (more severe levels compare lower).
        return true;
    }
    let target = meta.target();
    !WIRE_LEVEL_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Installs the subscriber: `RUST_LOG` when set, else `level`, else `info`; colour only on a
/// terminal.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr so `openapi` and `apikey create` output can be piped.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter)
        .with_filter(filter_fn(writable));
    tracing_subscriber::registry().with(fmt).init();
}

#[cfg(test)]
mod tests {
    use tracing::callsite::Identifier;
    use tracing::metadata::Kind;

    use super::*;

    struct Site;
    impl tracing::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!()
        }
    }
    static SITE: Site = Site;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new(
            "e",
            target,
            level,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], Identifier(&SITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn wire_libraries_are_quiet_below_info_and_nobody_else_is_touched() {
        assert!(!writable(&meta("tungstenite::protocol", Level::TRACE)));
        assert!(!writable(&meta("tokio_tungstenite", Level::DEBUG)));
        assert!(!writable(&meta("hyper::proto::h1", Level::TRACE)));
        assert!(writable(&meta("tungstenite::protocol", Level::WARN)));
        assert!(writable(&meta("hyper", Level::INFO)));
        assert!(writable(&meta("switchboard::http", Level::TRACE)));
        assert!(writable(&meta("hyperloop", Level::TRACE)));
    }
}
