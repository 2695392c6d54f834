//! `GET /health`, `GET /ready`, `GET /metrics`, `GET /v1/models`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::backend::Health;

use crate::api::openai::ModelCard;
use crate::infer::{AppState, ModelSlot};
use crate::metrics::Exposition;

/// Liveness: 200 while the process serves HTTP and every loaded model's engine thread is alive.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let unhealthy =
        state
            .models
            .ready()
            .into_iter()
            .find_map(|model| match model.backend().health() {
                Health::Unhealthy(reason) => Some(reason),
                Health::Healthy => None,
            });
    match unhealthy {
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "reason": reason})),
        )
            .into_response(),
        None => Json(json!({"status": "ok"})).into_response(),
    }
}

/// Readiness: 200 only after the model loaded and produced a real token.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        let names = state.models.names();
        Json(json!({"status": "ready", "model": names.first(), "models": names})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response()
    }
}

/// Prometheus exposition: OpenMetrics when the scraper asks for it (Prometheus does), else the
/// classic text format.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::for_accept(accept);
    let body = state.models.render_metrics(format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The served models (those still loading too, with `max_model_len` 0 until loaded).
pub async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let cards: Vec<ModelCard> = state
        .models
        .slots()
        .into_iter()
        .map(|(id, slot)| {
            let max_model_len = match slot {
                ModelSlot::Ready(model) => model.backend().context_size(),
                _ => 0,
            };
            ModelCard {
                id,
                object: "model",
                created: state.created(),
                owned_by: "kaito",
                max_model_len,
            }
        })
        .collect();
    Json(json!({"object": "list", "data": cards}))
}
