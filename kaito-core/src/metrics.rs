//! Prometheus metrics under vLLM's names (`vllm:*`, labelled `model_name`), so KEDA, llm-d's
//! endpoint picker and other tools built for vLLM read them unchanged.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::backend::EngineStats;

/// A histogram with fixed buckets.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default)]
struct HistogramState {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            state: Mutex::new(HistogramState {
                counts: vec![0; bounds.len()],
                ..Default::default()
            }),
        }
    }

    fn observe(&self, v: f64) {
        let mut s = self.state.lock().expect("histogram lock");
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            s.counts[i] += 1;
        }
        s.sum += v;
        s.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let s = self.state.lock().expect("histogram lock");
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&s.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
    }
}

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    model_name: String,
    prompt_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    success: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<BTreeMap<(u16, &'static str), u64>>,
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
    queue: Histogram,
}

impl Metrics {
    /// Metrics labelled with `model_name`.
    pub fn new(model_name: impl Into<String>) -> Self {
        Self {
            model_name: model_name.into(),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            success: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(LATENCY_BUCKETS),
            queue: Histogram::new(LATENCY_BUCKETS),
        }
    }

    /// Counts prompt tokens of an admitted request.
    pub fn add_prompt_tokens(&self, n: u64) {
        self.prompt_tokens.fetch_add(n, Ordering::Relaxed);
    }
    /// Counts generated tokens.
    pub fn add_generation_tokens(&self, n: u64) {
        self.generation_tokens.fetch_add(n, Ordering::Relaxed);
    }
    /// Time to first token.
    pub fn observe_ttft(&self, d: Duration) {
        self.ttft.observe(d.as_secs_f64());
    }
    /// Time between two tokens of one stream.
    pub fn observe_itl(&self, d: Duration) {
        self.itl.observe(d.as_secs_f64());
    }
    /// Whole-request latency.
    pub fn observe_e2e(&self, d: Duration) {
        self.e2e.observe(d.as_secs_f64());
    }
    /// Time waiting for a sequence slot.
    pub fn observe_queue(&self, d: Duration) {
        self.queue.observe(d.as_secs_f64());
    }
    /// A request finished with `finished_reason` (`stop`, `length`, `abort`).
    pub fn request_success(&self, finished_reason: &'static str) {
        *self
            .success
            .lock()
            .expect("metrics lock")
            .entry(finished_reason)
            .or_default() += 1;
    }
    /// A request answered with HTTP error `status` for `reason` (an OpenAI error code or type).
    pub fn request_error(&self, status: u16, reason: &'static str) {
        *self
            .errors
            .lock()
            .expect("metrics lock")
            .entry((status, reason))
            .or_default() += 1;
    }

    /// Prometheus text exposition, with the engine's live figures.
    pub fn render(&self, engine: &EngineStats) -> String {
        let labels = format!(
            "model_name=\"{}\"",
            self.model_name.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let mut out = String::with_capacity(8192);
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{labels}}} {v}"
            );
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{labels}}} {v}"
            );
        };
        gauge(
            &mut out,
            "vllm:num_requests_running",
            "Requests being decoded.",
            engine.running as f64,
        );
        gauge(
            &mut out,
            "vllm:num_requests_waiting",
            "Requests waiting for a sequence slot.",
            engine.waiting as f64,
        );
        gauge(
            &mut out,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage, 0 to 1.",
            engine.kv_cache_usage,
        );
        gauge(
            &mut out,
            "vllm:gpu_cache_usage_perc",
            "KV-cache usage, 0 to 1 (older name).",
            engine.kv_cache_usage,
        );
        counter(
            &mut out,
            "vllm:prompt_tokens_total",
            "Prompt tokens processed.",
            self.prompt_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vllm:generation_tokens_total",
            "Tokens generated.",
            self.generation_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vllm:prefix_cache_hits_total",
            "Prompt tokens served from the prefix cache.",
            engine.cached_prompt_tokens,
        );
        let _ = writeln!(out, "# HELP vllm:request_success_total Requests finished, by reason.\n# TYPE vllm:request_success_total counter");
        for reason in ["stop", "length", "abort"] {
            let n = self
                .success
                .lock()
                .expect("metrics lock")
                .get(reason)
                .copied()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "vllm:request_success_total{{{labels},finished_reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP kaito:request_errors_total Requests answered with an error, by status and reason.\n# TYPE kaito:request_errors_total counter");
        for ((status, reason), n) in self.errors.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "kaito:request_errors_total{{{labels},status=\"{status}\",reason=\"{reason}\"}} {n}");
        }
        self.ttft.render(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            &labels,
        );
        self.itl.render(
            &mut out,
            "vllm:inter_token_latency_seconds",
            "Time between tokens.",
            &labels,
        );
        self.e2e.render(
            &mut out,
            "vllm:e2e_request_latency_seconds",
            "Request latency.",
            &labels,
        );
        self.queue.render(
            &mut out,
            "vllm:request_queue_time_seconds",
            "Time waiting for a slot.",
            &labels,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vllm_names_with_model_label() {
        let m = Metrics::new("smol");
        m.add_prompt_tokens(7);
        m.observe_ttft(Duration::from_millis(30));
        m.request_success("stop");
        let text = m.render(&EngineStats {
            running: 2,
            ..Default::default()
        });
        assert!(text.contains("vllm:num_requests_running{model_name=\"smol\"} 2"));
        assert!(text.contains("vllm:prompt_tokens_total{model_name=\"smol\"} 7"));
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{model_name=\"smol\",le=\"0.04\"} 1"
        ));
        assert!(text.contains("vllm:time_to_first_token_seconds_count{model_name=\"smol\"} 1"));
        assert!(text.contains(
            "vllm:request_success_total{model_name=\"smol\",finished_reason=\"stop\"} 1"
        ));
    }
}
