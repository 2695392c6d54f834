//! A JSON body extractor whose rejections are OpenAI-shaped 400s naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Like `axum::Json`, but malformed bodies and wrong field types become [`ApiError`] 400s.
pub struct OpenAiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OpenAiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(None, format!("cannot read request body: {e}")))?;
        parse(&bytes).map(OpenAiJson)
    }
}

/// Parses a JSON body; errors name the JSON path of the offending field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(
                None,
                format!("We could not parse the JSON body of your request: {inner}"),
            );
        }
        let param = if path.is_empty() || path == "." {
            None
        } else {
            Some(path.clone())
        };
        let message = match &param {
            Some(p) => format!("Invalid value for `{p}`: {inner}"),
            None => format!("Invalid request body: {inner}"),
        };
        ApiError::bad_request(param.or_else(|| missing_field(&inner.to_string())), message)
    })
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}
