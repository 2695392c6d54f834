//! Prometheus metrics under vLLM's names (`vllm:*`, labelled `model_name`), so KEDA, llm-d's
//! endpoint picker and other tools built for vLLM read them unchanged. Each model keeps its own
//! [`Metrics`]; [`render_all`] writes one family per metric name with a series per model, through
//! the Prometheus project's `prometheus-client` (OpenMetrics text, or the classic text format
//! for scrapers that do not ask for OpenMetrics).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::backend::EngineStats;

/// The metric names. Counters are named without `_total`, which the exposition appends to
/// their samples (`vllm:prompt_tokens` → `vllm:prompt_tokens_total`).
pub mod names {
    /// Gauge: requests being decoded.
    pub const NUM_REQUESTS_RUNNING: &str = "vllm:num_requests_running";
    /// Gauge: requests waiting for a sequence slot.
    pub const NUM_REQUESTS_WAITING: &str = "vllm:num_requests_waiting";
    /// Gauge: KV-cache usage, 0 to 1.
    pub const KV_CACHE_USAGE: &str = "vllm:kv_cache_usage_perc";
    /// Gauge: the same, under vLLM's older name.
    pub const GPU_CACHE_USAGE: &str = "vllm:gpu_cache_usage_perc";
    /// Counter: prompt tokens processed.
    pub const PROMPT_TOKENS: &str = "vllm:prompt_tokens";
    /// Counter: tokens generated.
    pub const GENERATION_TOKENS: &str = "vllm:generation_tokens";
    /// Counter: prompt tokens served from the prefix cache.
    pub const PREFIX_CACHE_HITS: &str = "vllm:prefix_cache_hits";
    /// Counter: requests finished, by `finished_reason`.
    pub const REQUEST_SUCCESS: &str = "vllm:request_success";
    /// Counter: requests answered with an error, by `status` and `reason`.
    pub const REQUEST_ERRORS: &str = "kaito:request_errors";
    /// Histogram: time to first token, seconds.
    pub const TIME_TO_FIRST_TOKEN: &str = "vllm:time_to_first_token_seconds";
    /// Histogram: time between two tokens of one stream, seconds.
    pub const INTER_TOKEN_LATENCY: &str = "vllm:inter_token_latency_seconds";
    /// Histogram: whole-request latency, seconds.
    pub const E2E_REQUEST_LATENCY: &str = "vllm:e2e_request_latency_seconds";
    /// Histogram: time waiting for a sequence slot, seconds.
    pub const REQUEST_QUEUE_TIME: &str = "vllm:request_queue_time_seconds";
}

/// The label naming the model of every series.
pub const MODEL_LABEL: &str = "model_name";

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

/// The finish reasons always exposed (at 0 until seen), as vLLM does.
const FINISH_REASONS: [&str; 3] = ["stop", "length", "abort"];

/// One model's metrics.
#[derive(Debug)]
pub struct Metrics {
    model_name: String,
    prompt_tokens: Counter,
    generation_tokens: Counter,
    success: Mutex<BTreeMap<&'static str, Counter>>,
    errors: Mutex<BTreeMap<(u16, &'static str), Counter>>,
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
    queue: Histogram,
}

impl Metrics {
    /// Metrics labelled with `model_name`.
    pub fn new(model_name: impl Into<String>) -> Self {
        let success = FINISH_REASONS
            .iter()
            .map(|r| (*r, Counter::default()))
            .collect();
        Self {
            model_name: model_name.into(),
            prompt_tokens: Counter::default(),
            generation_tokens: Counter::default(),
            success: Mutex::new(success),
            errors: Mutex::new(BTreeMap::new()),
            ttft: Histogram::new(TTFT_BUCKETS.iter().copied()),
            itl: Histogram::new(ITL_BUCKETS.iter().copied()),
            e2e: Histogram::new(LATENCY_BUCKETS.iter().copied()),
            queue: Histogram::new(LATENCY_BUCKETS.iter().copied()),
        }
    }

    /// The model these metrics are labelled with.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// Counts prompt tokens of an admitted request.
    pub fn add_prompt_tokens(&self, n: u64) {
        self.prompt_tokens.inc_by(n);
    }
    /// Counts generated tokens.
    pub fn add_generation_tokens(&self, n: u64) {
        self.generation_tokens.inc_by(n);
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
        self.success
            .lock()
            .expect("metrics lock")
            .entry(finished_reason)
            .or_default()
            .inc();
    }
    /// A request answered with HTTP error `status` for `reason` (an OpenAI error code or type).
    pub fn request_error(&self, status: u16, reason: &'static str) {
        self.errors
            .lock()
            .expect("metrics lock")
            .entry((status, reason))
            .or_default()
            .inc();
    }

    /// Prometheus text exposition of one model, with its engine's live figures.
    pub fn render(self: &Arc<Self>, engine: &EngineStats) -> String {
        render_all(&[(self.clone(), *engine)], Exposition::Text)
    }
}

/// Which text format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`): typed counters, `# EOF`.
    OpenMetrics,
    /// The classic text format (`text/plain; version=0.0.4`) for scrapers that do not ask for
    /// OpenMetrics: the same lines without `# EOF`.
    Text,
}

impl Exposition {
    /// The format a scraper's `Accept` header asks for.
    pub fn for_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Exposition::OpenMetrics,
            _ => Exposition::Text,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Exposition::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Every model's metrics with its engine's live figures, read at scrape time.
#[derive(Debug)]
struct ModelsCollector(Vec<(Arc<Metrics>, EngineStats)>);

type CountOf = fn(&EngineStats) -> i64;
type GaugeOf = fn(&EngineStats) -> f64;
type CounterOf = fn(&Metrics, &EngineStats) -> u64;
type HistogramOf = fn(&Metrics) -> &Histogram;

impl Collector for ModelsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let models = &self.0;
        let label = |m: &Metrics| [(MODEL_LABEL, m.model_name.clone())];
        let gauge_kind = ConstGauge::new(0i64).metric_type();
        let counts: [(&str, &str, CountOf); 2] = [
            (
                names::NUM_REQUESTS_RUNNING,
                "Requests being decoded.",
                |e| e.running as i64,
            ),
            (
                names::NUM_REQUESTS_WAITING,
                "Requests waiting for a sequence slot.",
                |e| e.waiting as i64,
            ),
        ];
        for (name, help, value) in counts {
            let mut family = encoder.encode_descriptor(name, help, None, gauge_kind)?;
            for (m, e) in models {
                let labels = label(m);
                ConstGauge::new(value(e)).encode(family.encode_family(&labels)?)?;
            }
        }
        let gauges: [(&str, &str, GaugeOf); 2] = [
            (names::KV_CACHE_USAGE, "KV-cache usage, 0 to 1.", |e| {
                e.kv_cache_usage
            }),
            (
                names::GPU_CACHE_USAGE,
                "KV-cache usage, 0 to 1 (older name).",
                |e| e.kv_cache_usage,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, gauge_kind)?;
            for (m, e) in models {
                let labels = label(m);
                ConstGauge::new(value(e)).encode(family.encode_family(&labels)?)?;
            }
        }
        let counters: [(&str, &str, CounterOf); 3] = [
            (names::PROMPT_TOKENS, "Prompt tokens processed.", |m, _| {
                m.prompt_tokens.get()
            }),
            (names::GENERATION_TOKENS, "Tokens generated.", |m, _| {
                m.generation_tokens.get()
            }),
            (
                names::PREFIX_CACHE_HITS,
                "Prompt tokens served from the prefix cache.",
                |_, e| e.cached_prompt_tokens,
            ),
        ];
        let counter_kind = ConstCounter::new(0u64).metric_type();
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, counter_kind)?;
            for (m, e) in models {
                let labels = label(m);
                ConstCounter::new(value(m, e)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            names::REQUEST_SUCCESS,
            "Requests finished, by reason.",
            None,
            counter_kind,
        )?;
        for (m, _) in models {
            for (reason, counter) in m.success.lock().expect("metrics lock").iter() {
                let labels = [
                    (MODEL_LABEL, m.model_name.clone()),
                    ("finished_reason", (*reason).to_owned()),
                ];
                counter.encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            names::REQUEST_ERRORS,
            "Requests answered with an error, by status and reason.",
            None,
            counter_kind,
        )?;
        for (m, _) in models {
            for ((status, reason), counter) in m.errors.lock().expect("metrics lock").iter() {
                let labels = [
                    (MODEL_LABEL, m.model_name.clone()),
                    ("status", status.to_string()),
                    ("reason", (*reason).to_owned()),
                ];
                counter.encode(family.encode_family(&labels)?)?;
            }
        }
        let histograms: [(&str, &str, HistogramOf); 4] = [
            (names::TIME_TO_FIRST_TOKEN, "Time to first token.", |m| {
                &m.ttft
            }),
            (names::INTER_TOKEN_LATENCY, "Time between tokens.", |m| {
                &m.itl
            }),
            (names::E2E_REQUEST_LATENCY, "Request latency.", |m| &m.e2e),
            (names::REQUEST_QUEUE_TIME, "Time waiting for a slot.", |m| {
                &m.queue
            }),
        ];
        for (name, help, histogram) in histograms {
            let kind = Histogram::new([1.0]).metric_type();
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (m, _) in models {
                let labels = label(m);
                histogram(m).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Prometheus exposition of every model's metrics, each with its engine's live figures: one
/// family per metric name, a series per model.
pub fn render_all(models: &[(Arc<Metrics>, EngineStats)], format: Exposition) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ModelsCollector(models.to_vec())));
    encode(&registry, format)
}

/// Writes `registry` in `format` (also the controller's metrics).
pub fn encode(registry: &Registry, format: Exposition) -> String {
    let mut out = String::with_capacity(8192);
    let written = match format {
        Exposition::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
        Exposition::Text => prometheus_client::encoding::text::encode_registry(&mut out, registry),
    };
    // Writing into a String cannot fail.
    debug_assert!(written.is_ok());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vllm_names_with_model_label() {
        let m = Arc::new(Metrics::new("smol"));
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
            "vllm:time_to_first_token_seconds_bucket{le=\"0.04\",model_name=\"smol\"} 1"
        ));
        assert!(text.contains("vllm:time_to_first_token_seconds_count{model_name=\"smol\"} 1"));
        assert!(text.contains(
            "vllm:request_success_total{model_name=\"smol\",finished_reason=\"stop\"} 1"
        ));
        assert!(text.contains("# TYPE vllm:prompt_tokens counter"));
        assert!(!text.contains("# EOF"));
        let open = render_all(&[(m, EngineStats::default())], Exposition::OpenMetrics);
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
