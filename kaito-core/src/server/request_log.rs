//! One structured log line per request, written when the request ends (also on client disconnect),
//! plus the end-of-request metrics.

use std::time::Instant;

use crate::backend::FinishReason;

use crate::infer::ModelLease;

/// Accumulates what the log line reports; logs on drop.
pub struct RequestLog {
    model: ModelLease,
    id: String,
    endpoint: &'static str,
    prompt_tokens: usize,
    completion_tokens: u32,
    finish: Option<FinishReason>,
    started: Instant,
    failed: bool,
}

impl RequestLog {
    /// Starts timing a request.
    pub fn new(
        model: ModelLease,
        id: String,
        endpoint: &'static str,
        prompt_tokens: usize,
    ) -> Self {
        Self {
            model,
            id,
            endpoint,
            prompt_tokens,
            completion_tokens: 0,
            finish: None,
            started: Instant::now(),
            failed: false,
        }
    }

    /// Records a finished choice.
    pub fn choice_finished(&mut self, reason: FinishReason, completion_tokens: u32) {
        self.completion_tokens += completion_tokens;
        self.finish = Some(match (self.finish, reason) {
            (Some(FinishReason::Length), _) | (_, FinishReason::Length) => FinishReason::Length,
            _ => FinishReason::Stop,
        });
    }

    /// Records an engine failure.
    pub fn failed(&mut self) {
        self.failed = true;
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let outcome = match (self.failed, self.finish) {
            (true, _) => "error",
            (false, Some(reason)) => reason.as_str(),
            (false, None) => "abort",
        };
        self.model.metrics().observe_e2e(elapsed);
        if !self.failed {
            self.model.metrics().request_success(match outcome {
                "stop" => "stop",
                "length" => "length",
                _ => "abort",
            });
        }
        tracing::info!(
            request_id = %self.id,
            model = %self.model.name(),
            endpoint = self.endpoint,
            prompt_tokens = self.prompt_tokens,
            completion_tokens = self.completion_tokens,
            latency_ms = elapsed.as_millis() as u64,
            outcome,
            "request finished"
        );
    }
}
