//! `POST /v1/embeddings`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::Error;

use super::error::ApiError;
use super::json::OpenAiJson;
use crate::api::openai::EmbeddingRequest;
use crate::infer::AppState;

/// Most inputs in one request.
const MAX_INPUTS: usize = 256;

/// Handler.
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    OpenAiJson(req): OpenAiJson<EmbeddingRequest>,
) -> Result<Json<Value>, ApiError> {
    let model = state.models.get(&req.model)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(Error::request(
                "encoding_format",
                format!("`{other}` is not one of float, base64"),
            )
            .into())
        }
    };
    let backend = model.backend();
    let bad_input = || {
        Error::request(
            "input",
            "`input` must be a string, a list of strings, or token-id lists",
        )
    };
    let inputs: Vec<Vec<u32>> = match &req.input {
        Value::String(s) => vec![backend.tokenize(s, true, false)?],
        Value::Array(items) if items.is_empty() => {
            return Err(Error::request("input", "`input` is empty").into())
        }
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|s| backend.tokenize(s.as_str().unwrap_or_default(), true, false))
            .collect::<Result<_, _>>()?,
        Value::Array(items) if items.iter().all(|t| t.as_u64().is_some()) => {
            vec![items
                .iter()
                .filter_map(Value::as_u64)
                .map(|t| t as u32)
                .collect()]
        }
        Value::Array(items) if items.iter().all(Value::is_array) => items
            .iter()
            .map(|list| {
                list.as_array()
                    .filter(|l| l.iter().all(|t| t.as_u64().is_some()))
                    .map(|l| {
                        l.iter()
                            .filter_map(Value::as_u64)
                            .map(|t| t as u32)
                            .collect()
                    })
                    .ok_or_else(bad_input)
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad_input().into()),
    };
    if inputs.len() > MAX_INPUTS {
        return Err(
            Error::request("input", format!("at most {MAX_INPUTS} inputs per request")).into(),
        );
    }
    let dimensions = match req.dimensions {
        Some(d) if d < 1 => {
            return Err(Error::request("dimensions", "`dimensions` must be at least 1").into())
        }
        other => other.map(|d| d as usize),
    };
    let prompt_tokens: usize = inputs.iter().map(Vec::len).sum();
    let _admission = model.admit(1)?;
    let vectors = backend.embed(inputs).await?;
    model.metrics().add_prompt_tokens(prompt_tokens as u64);
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            if let Some(d) = dimensions {
                v.truncate(d);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
            let embedding = if base64 {
                json!(encode_base64(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model.name(),
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })))
}

/// Little-endian f32 bytes, base64 (standard alphabet, padded), as OpenAI sends them.
fn encode_base64(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(super::encode_base64(&[1.0]), "AACAPw==");
        assert_eq!(super::encode_base64(&[0.0, 1.0]), "AAAAAAAAgD8=");
    }
}
