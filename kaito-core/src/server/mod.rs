//! The OpenAI-compatible HTTP server (axum).
//!
//! A request flows: socket → axum router → (auth) → handler parses and validates the body →
//! chat template + tokenizer → admission control → [`crate::Backend::generate`] per choice →
//! engine thread → token events → stop-string matcher → JSON or SSE chunks → socket.

mod auth;
mod chat;
mod completions;
mod embeddings;
pub mod error;
mod handle;
mod json;
mod probes;
mod request_log;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::routing::{get, post};
use axum::Router;

pub use auth::read_key_file;
pub use error::ApiError;
pub use handle::ServerHandle;

use crate::error::{Error, Result};
use crate::infer::AppState;

/// Body size limit (prompts are text; 16 MiB is generous).
const BODY_LIMIT: usize = 16 << 20;

/// The router: `/v1/*` (behind optional auth) plus probes and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(probes::models))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));
    Router::new()
        .merge(v1)
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/health/ready", get(probes::ready))
        .route("/metrics", get(probes::metrics))
        .fallback(|req: Request| async move { ApiError::route_not_found(req.uri().path()) })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error::count_errors,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use axum::serve::ListenerExt;
    // Token chunks are small writes: without TCP_NODELAY, Nagle's algorithm holds each one until the
    // client's (delayed) ACK of the previous one arrives, adding up to tens of milliseconds per chunk.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io("server failed", e))
}
