//! Forwards the library's `tracing` events to Python's `logging` (opt-in: `kaito.enable_logging()`).
//!
//! Each event goes to the logger named after its target (`kaito_core::server` →
//! `kaito.kaito_core.server`; this crate's own `kaito::server` → `kaito.server`) with its fields appended as `key=value`. Events are filtered in
//! Rust first (the `level` given), so disabled levels cost nothing.

use std::fmt::Write;
use std::sync::OnceLock;

use kaito_core::telemetry::{self, LogFilter, LogOutput};
use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

struct Message {
    text: String,
    fields: String,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

/// The `tracing` layer that calls `logging.getLogger(name).log(level, message)`.
struct PythonLogging;

fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut message = Message {
            text: String::new(),
            fields: String::new(),
        };
        event.record(&mut message);
        let target = meta.target().replace("::", ".");
        let logger = if target == "kaito" || target.starts_with("kaito.") {
            target
        } else {
            format!("kaito.{target}")
        };
        let text = format!("{}{}", message.text, message.fields);
        let level = python_level(meta.level());
        // `try_attach`: never start the interpreter, and do nothing while it shuts down.
        Python::try_attach(|py| {
            let log = || -> PyResult<()> {
                py.import("logging")?
                    .call_method1("getLogger", (logger,))?
                    .call_method1("log", (level, text))?;
                Ok(())
            };
            if let Err(e) = log() {
                e.write_unraisable(py, None);
            }
        });
    }
}

/// Installs the forwarding subscriber for events at `level` and above (`"ERROR"` … `"TRACE"`).
/// Returns False when a subscriber was already installed (the first call's level stays).
#[pyfunction]
#[pyo3(signature = (level="INFO"))]
pub fn enable_logging(level: &str) -> PyResult<bool> {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let level: Level = level.parse().map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "`level` must be one of ERROR, WARN, INFO, DEBUG, TRACE, got {level:?}"
        ))
    })?;
    let mut first = false;
    INSTALLED.get_or_init(|| {
        first = telemetry::init(
            &LogFilter::level(level),
            LogOutput::Layer(Box::new(PythonLogging)),
        );
        first
    });
    Ok(first)
}
