//! `GET /health`, `GET /ready`, `GET /metrics`, `GET /v1/models`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::backend::Health;

use crate::api::openai::ModelCard;
use crate::infer::AppState;

/// Liveness: 200 while the process serves HTTP and the engine thread is alive.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.backend().map(|b| b.health()) {
        Ok(Health::Unhealthy(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "reason": reason})),
        )
            .into_response(),
        _ => Json(json!({"status": "ok"})).into_response(),
    }
}

/// Readiness: 200 only after the model loaded and produced a real token.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        Json(json!({"status": "ready", "model": state.config.served_model_name})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response()
    }
}

/// Prometheus text.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.backend().map(|b| b.stats()).unwrap_or_default();
    let body = state.metrics.render(&stats);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The served model.
pub async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let max_model_len = state.backend().map(|b| b.context_size()).unwrap_or(0);
    let card = ModelCard {
        id: state.config.served_model_name.clone(),
        object: "model",
        created: state.created(),
        owned_by: "kaito",
        max_model_len,
    };
    Json(json!({"object": "list", "data": [card]}))
}
