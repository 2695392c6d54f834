//! `POST /v1/chat/completions`: templating, tools, response formats, streaming and not.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::backend::{Constraint, FinishReason};
use crate::error::{Error, Result};

use super::error::{sse_error_payload, ApiError};
use super::json::OpenAiJson;
use super::request_log::RequestLog;
use crate::api::openai::{ChatCompletionRequest, Usage};
use crate::api::params;
use crate::infer::generation::{self, ChoiceEvent, Collected, TokenOut};
use crate::infer::AppState;

/// How tools shape the answer.
#[derive(Debug, Clone, PartialEq)]
enum ToolMode {
    /// No tools.
    None,
    /// The model may answer or call a tool (`<tool_call>{...}</tool_call>` in its text).
    Auto,
    /// It must call this function: the output is the arguments object.
    Forced(String),
    /// It must call one of the tools: the output is `{"name":..., "arguments": {...}}`.
    Required,
}

/// Handler.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    OpenAiJson(req): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let model = state.models.get(&req.model)?;
    let v = params::validate(&req.sampling(), req.max_completion_tokens)?;
    let top_logprobs = match req.top_logprobs {
        Some(k) if !(0..=20).contains(&k) => {
            return Err(Error::request(
                "top_logprobs",
                format!("`top_logprobs` must be between 0 and 20, got {k}"),
            )
            .into())
        }
        Some(k) if k > 0 && !req.logprobs => {
            return Err(
                Error::request("top_logprobs", "`top_logprobs` needs `logprobs: true`").into(),
            )
        }
        Some(k) => k as u32,
        None => 0,
    };
    let messages = crate::api::messages::normalize(&req.messages)?;
    let (tool_mode, tool_constraint) = tool_mode(req.tools.as_deref(), req.tool_choice.as_ref())?;
    let format_constraint = response_format(req.response_format.as_ref())?;
    let constraint = tool_constraint.or(format_constraint);
    let tools: Option<Vec<Value>> = if tool_mode == ToolMode::None {
        None
    } else {
        req.tools.clone()
    };

    let backend = model.backend();
    let template = model.template();
    let mut messages = messages;
    if let Some(tools) = &tools {
        if !template.supports_tools() {
            messages.insert(
                0,
                json!({"role": "system", "content": describe_tools(tools)}),
            );
            merge_leading_system(&mut messages);
        }
    }
    let prompt_text = template.render(&messages, tools.as_deref(), true)?;
    let prompt = backend.tokenize(&prompt_text, true, true)?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let (job, admission) = generation::prepare(
        &model,
        id.clone(),
        prompt,
        v.max_tokens,
        &v,
        req.logprobs.then_some(top_logprobs),
        constraint,
    )?;
    let prompt_tokens = job.prompt.len() as u32;
    let mut log = RequestLog::new(model.clone(), id.clone(), "chat", job.prompt.len());
    let events = generation::start(&model, job, admission)?;
    let created = crate::infer::unix_now();
    let model_name = model.name().to_owned();

    if !v.stream {
        let choices = match generation::collect(events, v.n).await {
            Ok(c) => c,
            Err(e) => {
                log.failed();
                return Err(e.into());
            }
        };
        let completion: u32 = choices.iter().map(|c| c.completion_tokens).sum();
        let cached = choices.first().map(|c| c.cached_tokens).unwrap_or(0);
        for c in &choices {
            log.choice_finished(
                c.finish_reason.unwrap_or(FinishReason::Stop),
                c.completion_tokens,
            );
        }
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": choices.iter().enumerate().map(|(i, c)| choice_json(i, c, &tool_mode, req.logprobs)).collect::<Vec<_>>(),
            "usage": Usage::new(prompt_tokens, completion, cached),
        });
        return Ok(Json(body).into_response());
    }

    // Streaming.
    let include_usage = v.include_usage;
    let n = v.n as usize;
    let want_logprobs = req.logprobs;
    let chunk = move |choices: Value, usage: Option<Usage>| -> Event {
        let mut body = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model_name, "choices": choices});
        if include_usage {
            body["usage"] = usage.map(|u| json!(u)).unwrap_or(Value::Null);
        }
        Event::default().data(body.to_string())
    };
    let mut buffered = vec![String::new(); n];
    let mut finished = 0usize;
    let mut completion_total = 0u32;
    let mut cached_total = 0u32;
    let first: Vec<Result<Event, Infallible>> = (0..n)
        .map(|i| Ok(chunk(json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]), None)))
        .collect();
    let body = events.flat_map(move |event| {
        let mut out: Vec<Result<Event, Infallible>> = Vec::new();
        match event {
            ChoiceEvent::Delta { index, text, logprobs } => {
                if tool_mode != ToolMode::None && tool_mode != ToolMode::Auto {
                    buffered[index as usize].push_str(&text);
                } else if !text.is_empty() || !logprobs.is_empty() {
                    let lp = if want_logprobs { json!({"content": logprobs_json(&logprobs)}) } else { Value::Null };
                    out.push(Ok(chunk(json!([{"index": index, "delta": {"content": text}, "logprobs": lp, "finish_reason": null}]), None)));
                }
            }
            ChoiceEvent::Finished { index, reason, completion_tokens, cached_tokens } => {
                log.choice_finished(reason, completion_tokens);
                completion_total += completion_tokens;
                cached_total = cached_total.max(cached_tokens);
                let mut finish = reason.as_str();
                if matches!(tool_mode, ToolMode::Forced(_) | ToolMode::Required) {
                    let text = std::mem::take(&mut buffered[index as usize]);
                    if let Some(calls) = tool_calls_from(&tool_mode, &text) {
                        finish = "tool_calls";
                        out.push(Ok(chunk(json!([{"index": index, "delta": {"tool_calls": calls.iter().enumerate().map(|(k, c)| {
                            let mut c = c.clone();
                            c["index"] = json!(k);
                            c
                        }).collect::<Vec<_>>()}, "logprobs": null, "finish_reason": null}]), None)));
                    } else if !text.is_empty() {
                        out.push(Ok(chunk(json!([{"index": index, "delta": {"content": text}, "logprobs": null, "finish_reason": null}]), None)));
                    }
                }
                out.push(Ok(chunk(json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}]), None)));
                finished += 1;
                if finished == n {
                    if include_usage {
                        out.push(Ok(chunk(json!([]), Some(Usage::new(prompt_tokens, completion_total, cached_total)))));
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

fn merge_leading_system(messages: &mut Vec<Value>) {
    if messages.len() >= 2 && messages[1]["role"] == "system" {
        let second = messages.remove(1);
        let merged = format!(
            "{}\n\n{}",
            second["content"].as_str().unwrap_or(""),
            messages[0]["content"].as_str().unwrap_or("")
        );
        messages[0]["content"] = json!(merged);
    }
}

fn describe_tools(tools: &[Value]) -> String {
    let mut s = String::from("You can call these functions. To call one, answer with <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>.\n");
    for t in tools {
        if let Some(f) = t.get("function") {
            s.push_str(&format!("- {}\n", f));
        }
    }
    s
}

fn tool_names(tools: &[Value]) -> Vec<&str> {
    tools
        .iter()
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .collect()
}

fn parameters_of<'a>(tools: &'a [Value], name: &str) -> Option<&'a Value> {
    tools
        .iter()
        .find(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name))
        .map(|t| t.pointer("/function/parameters").unwrap_or(&Value::Null))
}

fn object_schema(params: &Value) -> Value {
    if params.is_null() {
        json!({"type": "object"})
    } else {
        params.clone()
    }
}

fn tool_mode(
    tools: Option<&[Value]>,
    choice: Option<&Value>,
) -> Result<(ToolMode, Option<Constraint>)> {
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        if let Some(c) = choice {
            if c != "none" && c != "auto" {
                return Err(Error::request("tool_choice", "`tool_choice` needs `tools`"));
            }
        }
        return Ok((ToolMode::None, None));
    };
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function")
            || t.pointer("/function/name")
                .and_then(Value::as_str)
                .is_none()
        {
            return Err(Error::request(
                format!("tools[{i}]"),
                "each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}",
            ));
        }
    }
    match choice {
        None => Ok((ToolMode::Auto, None)),
        Some(Value::String(s)) if s == "auto" => Ok((ToolMode::Auto, None)),
        Some(Value::String(s)) if s == "none" => Ok((ToolMode::None, None)),
        Some(Value::String(s)) if s == "required" => {
            let any_of: Vec<Value> = tool_names(tools)
                .into_iter()
                .map(|name| {
                    json!({
                        "type": "object",
                        "properties": {"name": {"const": name}, "arguments": object_schema(parameters_of(tools, name).unwrap_or(&Value::Null))},
                        "required": ["name", "arguments"],
                    })
                })
                .collect();
            Ok((
                ToolMode::Required,
                Some(Constraint::JsonSchema(json!({"anyOf": any_of}))),
            ))
        }
        Some(obj @ Value::Object(_)) => {
            let name = obj
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::request(
                        "tool_choice",
                        "expected {\"type\": \"function\", \"function\": {\"name\": ...}}",
                    )
                })?;
            let params = parameters_of(tools, name).ok_or_else(|| {
                Error::request(
                    "tool_choice",
                    format!(
                        "function `{name}` is not among `tools` ({})",
                        tool_names(tools).join(", ")
                    ),
                )
            })?;
            Ok((
                ToolMode::Forced(name.to_owned()),
                Some(Constraint::JsonSchema(object_schema(params))),
            ))
        }
        Some(other) => Err(Error::request(
            "tool_choice",
            format!("unsupported `tool_choice` {other}"),
        )),
    }
}

fn response_format(format: Option<&Value>) -> Result<Option<Constraint>> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Constraint::JsonObject)),
        Some("json_schema") => {
            let schema = format.pointer("/json_schema/schema").ok_or_else(|| {
                Error::request("response_format.json_schema.schema", "missing `schema`")
            })?;
            if !schema.is_object() {
                return Err(Error::request(
                    "response_format.json_schema.schema",
                    "`schema` must be an object",
                ));
            }
            Ok(Some(Constraint::JsonSchema(schema.clone())))
        }
        other => Err(Error::request(
            "response_format.type",
            format!(
                "`{}` is not one of text, json_object, json_schema",
                other.unwrap_or("(missing)")
            ),
        )),
    }
}

fn new_call(name: &str, arguments: &Value) -> Value {
    json!({
        "id": format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
        "type": "function",
        "function": {"name": name, "arguments": arguments.to_string()},
    })
}

/// Extracts tool calls from a choice's text, per mode.
fn tool_calls_from(mode: &ToolMode, text: &str) -> Option<Vec<Value>> {
    match mode {
        ToolMode::None => None,
        ToolMode::Forced(name) => {
            let args: Value = serde_json::from_str(text.trim()).ok()?;
            Some(vec![new_call(name, &args)])
        }
        ToolMode::Required => {
            let v: Value = serde_json::from_str(text.trim()).ok()?;
            Some(vec![new_call(
                v.get("name")?.as_str()?,
                v.get("arguments")?,
            )])
        }
        ToolMode::Auto => {
            let mut calls = Vec::new();
            let mut rest = text;
            while let Some(start) = rest.find("<tool_call>") {
                let after = &rest[start + "<tool_call>".len()..];
                let end = after.find("</tool_call>").unwrap_or(after.len());
                let v: Value = serde_json::from_str(after[..end].trim()).ok()?;
                calls.push(new_call(
                    v.get("name")?.as_str()?,
                    v.get("arguments").unwrap_or(&json!({})),
                ));
                rest = &after[end..];
            }
            (!calls.is_empty()).then_some(calls)
        }
    }
}

fn logprobs_json(tokens: &[TokenOut]) -> Vec<Value> {
    tokens
        .iter()
        .map(|t| {
            json!({
                "token": t.text,
                "logprob": t.logprob,
                "bytes": t.bytes,
                "top_logprobs": t.top.iter().map(|(text, bytes, lp)| json!({"token": text, "logprob": lp, "bytes": bytes})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn choice_json(index: usize, c: &Collected, mode: &ToolMode, logprobs: bool) -> Value {
    let logprobs = if logprobs {
        json!({"content": logprobs_json(&c.logprobs)})
    } else {
        Value::Null
    };
    let finish = c.finish_reason.unwrap_or(FinishReason::Stop).as_str();
    if let Some(calls) = tool_calls_from(mode, &c.text) {
        let content = match mode {
            ToolMode::Auto => {
                let before = c.text.split("<tool_call>").next().unwrap_or("").trim();
                if before.is_empty() {
                    Value::Null
                } else {
                    json!(before)
                }
            }
            _ => Value::Null,
        };
        return json!({
            "index": index,
            "message": {"role": "assistant", "content": content, "tool_calls": calls},
            "logprobs": logprobs,
            "finish_reason": "tool_calls",
        });
    }
    json!({
        "index": index,
        "message": {"role": "assistant", "content": c.text},
        "logprobs": logprobs,
        "finish_reason": finish,
    })
}
