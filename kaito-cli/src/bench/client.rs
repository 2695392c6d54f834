//! One streaming chat request over HTTP, timed token by token.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What one request measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Error text, if it failed.
    pub error: Option<String>,
    /// Time to the first content chunk.
    pub ttft: Option<Duration>,
    /// Gaps between content chunks.
    pub itl: Vec<Duration>,
    /// Whole request.
    pub e2e: Duration,
    /// Output tokens (from `usage`, else content chunks).
    pub tokens: u32,
}

/// Sends a streaming chat completion and times its chunks.
pub fn stream_chat(
    base: &str,
    model: &str,
    messages: &[Value],
    max_tokens: u32,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let fail = |e: String| Outcome {
        error: Some(e),
        ttft: None,
        itl: Vec::new(),
        e2e: started.elapsed(),
        tokens: 0,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": true,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let mut response = match agent
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .send(body.to_string())
    {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    if response.status() != 200 {
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        return fail(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let reader = BufReader::new(response.body_mut().as_reader());
    let (mut ttft, mut last, mut itl, mut chunks, mut usage_tokens) =
        (None, None::<Instant>, Vec::new(), 0u32, None);
    for line in reader.lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(e.to_string()),
        };
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(e) = v.get("error") {
            return fail(e.to_string());
        }
        if let Some(n) = v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
        {
            usage_tokens = Some(n as u32);
        }
        let has_content = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if has_content {
            let now = Instant::now();
            match last {
                None => ttft = Some(now - started),
                Some(prev) => itl.push(now - prev),
            }
            last = Some(now);
            chunks += 1;
        }
    }
    Outcome {
        error: None,
        ttft,
        itl,
        e2e: started.elapsed(),
        tokens: usage_tokens.unwrap_or(chunks),
    }
}
