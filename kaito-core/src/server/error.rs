//! The one mapping from [`crate::Error`] to HTTP: status, OpenAI error body, `Retry-After`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::Error;
use crate::infer::AppState;

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// OpenAI error type (`invalid_request_error`, ...).
    pub kind: &'static str,
    /// Offending parameter.
    pub param: Option<String>,
    /// Machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 naming `param`.
    pub fn bad_request(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.into(),
            code: None,
        }
    }

    /// 401 for a missing or wrong API key.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "Incorrect or missing API key. Send `Authorization: Bearer <key>`.".into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 404 for an unknown route.
    pub fn route_not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("No route for {path}"),
            kind: "invalid_request_error",
            param: None,
            code: Some("not_found"),
        }
    }

    /// A label for error metrics.
    pub fn reason(&self) -> &'static str {
        self.code.unwrap_or(self.kind)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let (status, kind, param, code) = match &e {
            Error::InvalidRequest { param, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                param.clone(),
                None,
            ),
            Error::InvalidSpec { path, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some(path.clone()),
                None,
            ),
            Error::ContextOverflow { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("messages".into()),
                Some("context_length_exceeded"),
            ),
            Error::ModelNotFound { .. } | Error::UnknownModel { .. } => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model".into()),
                Some("model_not_found"),
            ),
            Error::Overloaded { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_overloaded",
                None,
                Some("overloaded"),
            ),
            Error::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                None,
                Some("model_loading"),
            ),
            Error::Unsupported(_) | Error::NotCompiled(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                Some("unsupported"),
            ),
            Error::Template(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("messages".into()),
                None,
            ),
            Error::Cancelled => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                None,
                Some("cancelled"),
            ),
            Error::ModelLoad { .. }
            | Error::Download { .. }
            | Error::Engine(_)
            | Error::Io { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                None,
            ),
        };
        Self {
            status,
            message,
            kind,
            param,
            code,
        }
    }
}

/// Left on every error response by [`ApiError`]'s `IntoResponse`, the one place errors become
/// HTTP: the server's outermost layer counts it in `kaito:request_errors_total` (status, reason).
#[derive(Debug, Clone, Copy)]
pub struct ErrorReason(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = ErrorReason(self.reason());
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(reason);
        response
    }
}

/// The server's outermost layer: counts each response an [`ApiError`] made (it carries an
/// [`ErrorReason`]) in `kaito:request_errors_total`, whichever handler, extractor, the auth layer
/// or the fallback produced it.
pub(super) async fn count_errors(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(ErrorReason(reason)) = response.extensions().get::<ErrorReason>() {
        if let Some(metrics) = state.models.error_metrics() {
            metrics.request_error(response.status().as_u16(), reason);
        }
    }
    response
}

/// The payload of an SSE error event, for errors after the stream has started.
pub fn sse_error_payload(e: &Error) -> serde_json::Value {
    let api = ApiError::from(Error::Engine(e.to_string()));
    json!({"error": {"message": api.message, "type": api.kind, "param": null, "code": api.code}})
}
