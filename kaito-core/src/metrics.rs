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

    fn render_series(&self, out: &mut String, name: &str, labels: &str) {
        let s = self.state.lock().expect("histogram lock");
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

    /// Prometheus text exposition of one model, with its engine's live figures.
    pub fn render(&self, engine: &EngineStats) -> String {
        render_all(&[(self, *engine)])
    }

    fn labels(&self) -> String {
        format!(
            "model_name=\"{}\"",
            self.model_name.replace('\\', "\\\\").replace('"', "\\\"")
        )
    }
}

/// A metric family: name, help, and how to read one model's value.
type Family<F> = (&'static str, &'static str, F);
type GaugeOf = fn(&EngineStats) -> f64;
type CounterOf = fn(&Metrics, &EngineStats) -> u64;
type HistogramOf = fn(&Metrics) -> &Histogram;

/// Prometheus text exposition of every model's metrics, each with its engine's live figures: one
/// family per metric name, a series per model.
pub fn render_all(models: &[(&Metrics, EngineStats)]) -> String {
    let labelled: Vec<(String, &Metrics, &EngineStats)> =
        models.iter().map(|(m, e)| (m.labels(), *m, e)).collect();
    let mut out = String::with_capacity(8192 * models.len().max(1));
    let family = |out: &mut String, name: &str, help: &str, kind: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let gauges: [Family<GaugeOf>; 4] = [
        (
            "vllm:num_requests_running",
            "Requests being decoded.",
            |e| e.running as f64,
        ),
        (
            "vllm:num_requests_waiting",
            "Requests waiting for a sequence slot.",
            |e| e.waiting as f64,
        ),
        ("vllm:kv_cache_usage_perc", "KV-cache usage, 0 to 1.", |e| {
            e.kv_cache_usage
        }),
        (
            "vllm:gpu_cache_usage_perc",
            "KV-cache usage, 0 to 1 (older name).",
            |e| e.kv_cache_usage,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, help, "gauge");
        for (labels, _, engine) in &labelled {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(engine));
        }
    }
    let counters: [Family<CounterOf>; 3] = [
        (
            "vllm:prompt_tokens_total",
            "Prompt tokens processed.",
            |m, _| m.prompt_tokens.load(Ordering::Relaxed),
        ),
        (
            "vllm:generation_tokens_total",
            "Tokens generated.",
            |m, _| m.generation_tokens.load(Ordering::Relaxed),
        ),
        (
            "vllm:prefix_cache_hits_total",
            "Prompt tokens served from the prefix cache.",
            |_, e| e.cached_prompt_tokens,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, help, "counter");
        for (labels, metrics, engine) in &labelled {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value(metrics, engine));
        }
    }
    family(
        &mut out,
        "vllm:request_success_total",
        "Requests finished, by reason.",
        "counter",
    );
    for (labels, metrics, _) in &labelled {
        let success = metrics.success.lock().expect("metrics lock");
        for reason in ["stop", "length", "abort"] {
            let n = success.get(reason).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "vllm:request_success_total{{{labels},finished_reason=\"{reason}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "kaito:request_errors_total",
        "Requests answered with an error, by status and reason.",
        "counter",
    );
    for (labels, metrics, _) in &labelled {
        for ((status, reason), n) in metrics.errors.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "kaito:request_errors_total{{{labels},status=\"{status}\",reason=\"{reason}\"}} {n}"
            );
        }
    }
    let histograms: [Family<HistogramOf>; 4] = [
        (
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            |m| &m.ttft,
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Time between tokens.",
            |m| &m.itl,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "Request latency.",
            |m| &m.e2e,
        ),
        (
            "vllm:request_queue_time_seconds",
            "Time waiting for a slot.",
            |m| &m.queue,
        ),
    ];
    for (name, help, histogram) in histograms {
        family(&mut out, name, help, "histogram");
        for (labels, metrics, _) in &labelled {
            histogram(metrics).render_series(&mut out, name, labels);
        }
    }
    out
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
