//! The tracing subscriber: human text or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the level.
pub fn init(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "info,llama-cpp-2=warn,llama_cpp_2=warn",
        1 => "debug,llama-cpp-2=info,llama_cpp_2=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
