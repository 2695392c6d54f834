//! Shared server state: the engine (once loaded), readiness, admission control, metrics.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::backend::Backend;
use crate::chat_template::ChatTemplate;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model id clients must name.
    pub served_model_name: String,
    /// Accepted API keys; empty = no authentication.
    pub api_keys: Vec<String>,
    /// Requests decoded at once (the engine's parallel sequences).
    pub parallel: usize,
    /// Requests that may wait beyond `parallel` before new ones get 503.
    pub max_queue: usize,
}

impl ServerConfig {
    /// Config serving `served_model_name` with no auth, 4 parallel and a queue of 64.
    pub fn new(served_model_name: impl Into<String>) -> Self {
        Self {
            served_model_name: served_model_name.into(),
            api_keys: Vec::new(),
            parallel: 4,
            max_queue: 64,
        }
    }
}

/// Everything handlers share.
pub struct AppState {
    /// Settings.
    pub config: ServerConfig,
    /// Metrics.
    pub metrics: Metrics,
    backend: OnceLock<Arc<dyn Backend>>,
    template: OnceLock<ChatTemplate>,
    ready: AtomicBool,
    in_flight: Arc<AtomicUsize>,
    created: u64,
}

impl AppState {
    /// State with no engine yet (the server answers 503 until [`AppState::set_backend`]).
    pub fn new(config: ServerConfig) -> Arc<Self> {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Arc::new(Self {
            metrics: Metrics::new(config.served_model_name.clone()),
            config,
            backend: OnceLock::new(),
            template: OnceLock::new(),
            ready: AtomicBool::new(false),
            in_flight: Arc::new(AtomicUsize::new(0)),
            created,
        })
    }

    /// Installs the loaded engine and compiles the model's chat template.
    pub fn set_backend(&self, backend: Arc<dyn Backend>) -> Result<()> {
        let info = backend.model();
        let template = ChatTemplate::new(
            info.chat_template.as_deref(),
            info.bos_token.as_deref(),
            info.eos_token.as_deref(),
        )?;
        let _ = self.template.set(template);
        let _ = self.backend.set(backend);
        Ok(())
    }

    /// Marks the server ready (after a real token was produced).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// True once loaded and warmed up.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The engine, or 503 while loading.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        self.backend.get().cloned().ok_or(Error::NotReady)
    }

    /// The chat template.
    pub fn template(&self) -> Result<&ChatTemplate> {
        self.template.get().ok_or(Error::NotReady)
    }

    /// Unix time the server started (for `/v1/models`).
    pub fn created(&self) -> u64 {
        self.created
    }

    /// Takes `slots` admission slots, or [`Error::Overloaded`] when `parallel + max_queue` are taken.
    pub fn admit(&self, slots: usize) -> Result<Admission> {
        let limit = self.config.parallel + self.config.max_queue;
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if current + slots > limit {
                let running = current.min(self.config.parallel);
                return Err(Error::Overloaded {
                    running,
                    waiting: current - running,
                });
            }
            match self.in_flight.compare_exchange(
                current,
                current + slots,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Ok(Admission {
                        counter: self.in_flight.clone(),
                        slots,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// Held while a request is admitted; releases its slots on drop.
#[derive(Debug)]
pub struct Admission {
    counter: Arc<AtomicUsize>,
    slots: usize,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.slots, Ordering::SeqCst);
    }
}
