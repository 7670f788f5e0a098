//! Logs, on stderr only (stdout carries nothing but the report): text for
//! people, JSON lines for a log pipeline. One span per source and per
//! restore; each span's close event carries its duration.

use tracing_subscriber::fmt::format::FmtSpan;

pub use tracing_subscriber::filter::LevelFilter;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the process's logger; a second call changes nothing.
pub fn init(format: LogFormat, level: LevelFilter) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_span_events(FmtSpan::CLOSE)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
