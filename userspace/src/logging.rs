//! xnetd's log: `tracing` events on stderr, as text or one JSON object per line, filtered by
//! level (`--log-level`, or `XNET_LOG` with `tracing`'s directive syntax, e.g.
//! `XNET_LOG=xnet::daemon=debug,info`). Lines carry the object they are about as fields
//! (`network`, `container`, `interface`) and, while a request is answered, its span
//! (`request{id method path}`).

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable: time, level, span, message, fields.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the process-wide subscriber: `filter` is a level (`info`) or a list of directives.
pub fn init(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid log level or filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}
