//! `POST /v1/completions`: raw text prompts, streaming and not.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::backend::FinishReason;
use crate::error::Error;

use super::error::{sse_error_payload, ApiError};
use super::json::OpenAiJson;
use super::request_log::RequestLog;
use crate::api::openai::{CompletionRequest, Usage};
use crate::api::params;
use crate::infer::generation::{self, ChoiceEvent, TokenOut};
use crate::infer::AppState;

/// Handler.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    OpenAiJson(req): OpenAiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let model = state.models.get(&req.model)?;
    let v = params::validate(&req.sampling(), None)?;
    let logprobs = match req.logprobs {
        Some(k) if !(0..=5).contains(&k) => {
            return Err(Error::request(
                "logprobs",
                format!("`logprobs` must be between 0 and 5, got {k}"),
            )
            .into())
        }
        other => other.map(|k| k as u32),
    };
    let backend = model.backend();
    let prompt = match &req.prompt {
        Value::String(s) if !s.is_empty() => backend.tokenize(s, true, true)?,
        Value::Array(items) if items.len() == 1 && items[0].is_string() => {
            backend.tokenize(items[0].as_str().unwrap_or_default(), true, true)?
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(|t| t.as_u64().is_some()) => {
            items
                .iter()
                .filter_map(Value::as_u64)
                .map(|t| t as u32)
                .collect()
        }
        _ => {
            return Err(Error::request(
                "prompt",
                "`prompt` must be a non-empty string (or one string, or a list of token ids)",
            )
            .into())
        }
    };
    let prompt_text = match &req.prompt {
        Value::String(s) => s.clone(),
        _ => backend.detokenize(&prompt)?,
    };
    let id = format!("cmpl-{}", uuid::Uuid::new_v4().simple());
    // OpenAI's legacy default: 16 new tokens.
    let (job, admission) = generation::prepare(
        &model,
        id.clone(),
        prompt,
        Some(v.max_tokens.unwrap_or(16)),
        &v,
        logprobs,
        None,
    )?;
    let prompt_tokens = job.prompt.len() as u32;
    let mut log = RequestLog::new(model.clone(), id.clone(), "completions", job.prompt.len());
    let events = generation::start(&model, job, admission)?;
    let created = crate::infer::unix_now();
    let model_name = model.name().to_owned();
    let echo = if req.echo { prompt_text } else { String::new() };

    if !v.stream {
        let choices = match generation::collect(events, v.n).await {
            Ok(c) => c,
            Err(e) => {
                log.failed();
                return Err(e.into());
            }
        };
        let completion: u32 = choices.iter().map(|c| c.completion_tokens).sum();
        for c in &choices {
            log.choice_finished(
                c.finish_reason.unwrap_or(FinishReason::Stop),
                c.completion_tokens,
            );
        }
        let body = json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model_name,
            "choices": choices.iter().enumerate().map(|(i, c)| json!({
                "index": i,
                "text": format!("{echo}{}", c.text),
                "logprobs": logprobs.map(|_| logprobs_json(&c.logprobs, echo.len())),
                "finish_reason": c.finish_reason.unwrap_or(FinishReason::Stop).as_str(),
            })).collect::<Vec<_>>(),
            "usage": Usage::new(prompt_tokens, completion, choices.first().map(|c| c.cached_tokens).unwrap_or(0)),
        });
        return Ok(Json(body).into_response());
    }

    let include_usage = v.include_usage;
    let n = v.n as usize;
    let chunk = move |choices: Value, usage: Option<Usage>| -> Event {
        let mut body = json!({"id": id, "object": "text_completion", "created": created, "model": model_name, "choices": choices});
        if include_usage {
            body["usage"] = usage.map(|u| json!(u)).unwrap_or(Value::Null);
        }
        Event::default().data(body.to_string())
    };
    let mut finished = 0usize;
    let mut completion_total = 0u32;
    let mut offsets = vec![echo.len(); n];
    let first: Vec<Result<Event, Infallible>> = if echo.is_empty() {
        Vec::new()
    } else {
        (0..n)
            .map(|i| {
                Ok(chunk(
                    json!([{"index": i, "text": echo, "logprobs": null, "finish_reason": null}]),
                    None,
                ))
            })
            .collect()
    };
    let body = events.flat_map(move |event| {
        let mut out: Vec<Result<Event, Infallible>> = Vec::new();
        match event {
            ChoiceEvent::Delta { index, text, logprobs: lps } => {
                if !text.is_empty() || !lps.is_empty() {
                    let lp = logprobs.map(|_| logprobs_json(&lps, offsets[index as usize]));
                    offsets[index as usize] += text.len();
                    out.push(Ok(chunk(json!([{"index": index, "text": text, "logprobs": lp, "finish_reason": null}]), None)));
                }
            }
            ChoiceEvent::Finished { index, reason, completion_tokens, .. } => {
                log.choice_finished(reason, completion_tokens);
                completion_total += completion_tokens;
                out.push(Ok(chunk(json!([{"index": index, "text": "", "logprobs": null, "finish_reason": reason.as_str()}]), None)));
                finished += 1;
                if finished == n {
                    if include_usage {
                        out.push(Ok(chunk(json!([]), Some(Usage::new(prompt_tokens, completion_total, 0)))));
                    }
                    out.push(Ok(Event::default().data("[DONE]")));
                }
            }
            ChoiceEvent::Failed(e) => {
                log.failed();
                out.push(Ok(Event::default().data(sse_error_payload(&e).to_string())));
                out.push(Ok(Event::default().data("[DONE]")));
            }
        }
        futures::stream::iter(out)
    });
    let stream = futures::stream::iter(first).chain(body);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Legacy completions logprobs: parallel lists.
fn logprobs_json(tokens: &[TokenOut], start_offset: usize) -> Value {
    let mut offset = start_offset;
    let mut offsets = Vec::with_capacity(tokens.len());
    for t in tokens {
        offsets.push(offset);
        offset += t.text.len();
    }
    json!({
        "tokens": tokens.iter().map(|t| t.text.clone()).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": tokens.iter().map(|t| {
            t.top.iter().map(|(text, _, lp)| (text.clone(), json!(lp))).collect::<serde_json::Map<String, Value>>()
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}
