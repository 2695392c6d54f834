//! The one place a process installs its `tracing` subscriber: the CLI writes text or JSON lines
//! to stderr, the Python bindings hand events to Python's `logging`; both filter the same way
//! here, and an exporter (OTLP) will be one more layer in this function.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Where events go.
#[non_exhaustive]
pub enum LogOutput {
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object per line on stderr, fields flattened.
    Json,
    /// A layer of the caller's (Python's `logging` bridge).
    Layer(Box<dyn Layer<Registry> + Send + Sync>),
}

/// Which events pass.
#[derive(Debug, Clone)]
pub struct LogFilter {
    /// `tracing` directives (`info,llama_cpp_2=warn`).
    pub directives: String,
    /// Let `RUST_LOG` replace them when set (the CLI does; Python's level is explicit).
    pub from_env: bool,
}

impl LogFilter {
    /// The CLI's filter for `-v` given `verbose` times: info (engines' own chatter at warn), debug,
    /// trace; `RUST_LOG` overrides.
    pub fn verbosity(verbose: u8) -> Self {
        let directives = match verbose {
            0 => "info,llama-cpp-2=warn,llama_cpp_2=warn",
            1 => "debug,llama-cpp-2=info,llama_cpp_2=info",
            _ => "trace",
        };
        Self {
            directives: directives.to_owned(),
            from_env: true,
        }
    }

    /// Everything at `level` and above (`error` … `trace`), whatever `RUST_LOG` says.
    pub fn level(level: tracing::Level) -> Self {
        Self {
            directives: level.as_str().to_ascii_lowercase(),
            from_env: false,
        }
    }

    fn build(&self) -> EnvFilter {
        let env = self
            .from_env
            .then(|| EnvFilter::try_from_default_env().ok());
        env.flatten()
            .unwrap_or_else(|| EnvFilter::new(&self.directives))
    }
}

/// Installs the global subscriber. Returns false (and changes nothing) when one was installed
/// already.
pub fn init(filter: &LogFilter, output: LogOutput) -> bool {
    let filter = filter.build();
    let layer: Box<dyn Layer<Registry> + Send + Sync> = match output {
        LogOutput::Text => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colours for a terminal only: a log file or pipe gets plain text.
                .with_ansi(
                    std::io::IsTerminal::is_terminal(&std::io::stderr())
                        && std::env::var_os("NO_COLOR").is_none(),
                ),
        ),
        LogOutput::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(std::io::stderr),
        ),
        LogOutput::Layer(layer) => layer,
    };
    let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(
            LogFilter::verbosity(1).directives,
            "debug,llama-cpp-2=info,llama_cpp_2=info"
        );
        let python = LogFilter::level(tracing::Level::WARN);
        assert_eq!(python.directives, "warn");
        assert!(!python.from_env);
        assert_eq!(python.build().to_string(), "warn");
    }
}
