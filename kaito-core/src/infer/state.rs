//! Shared server state: the served models, readiness, settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::registry::ModelRegistry;

/// Server settings.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Accepted API keys; empty = no authentication.
    pub api_keys: Vec<String>,
}

/// Everything handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Settings.
    pub config: ServerConfig,
    /// The models served, by name.
    pub models: ModelRegistry,
    ready: AtomicBool,
    created: u64,
}

impl AppState {
    /// State with no model yet: requests get 404 (or 503 for a model announced as loading, see
    /// [`ModelRegistry::begin_loading`]) until one is served.
    pub fn new(config: ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            models: ModelRegistry::new(),
            ready: AtomicBool::new(false),
            created: unix_now(),
        })
    }

    /// Marks the server ready (after each model produced a real token).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// True once loaded and warmed up.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Unix time the server started (for `/v1/models`).
    pub fn created(&self) -> u64 {
        self.created
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
