//! Logs on stderr, human text or JSON lines, through the one subscriber set-up
//! ([`kaito_core::telemetry`]).

use kaito_core::telemetry::{self, LogFilter, LogOutput};

use crate::args::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the level `-v` sets.
pub fn init(format: LogFormat, verbose: u8) {
    let output = match format {
        LogFormat::Text => LogOutput::Text,
        LogFormat::Json => LogOutput::Json,
    };
    telemetry::init(&LogFilter::verbosity(verbose), output);
}
