//! Statistics of one level and the comparison table.

use std::time::Duration;

use serde::Serialize;

use super::client::Outcome;
use super::WorkloadKind;

/// Figures of one target at one concurrency level.
#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    /// Target name.
    pub target: String,
    /// Workload.
    pub workload: String,
    /// Concurrent requests.
    pub concurrency: usize,
    /// Requests sent.
    pub requests: usize,
    /// Failed requests.
    pub errors: usize,
    /// First error text.
    pub first_error: Option<String>,
    /// Output tokens per second (all requests / wall time).
    pub output_tok_s: f64,
    /// Completed requests per second.
    pub requests_s: f64,
    /// TTFT median, ms.
    pub ttft_p50_ms: f64,
    /// TTFT 99th percentile, ms.
    pub ttft_p99_ms: f64,
    /// Time per output token median, ms.
    pub tpot_p50_ms: f64,
    /// Time per output token 99th percentile, ms.
    pub tpot_p99_ms: f64,
    /// Inter-token latency 99th percentile, ms.
    pub itl_p99_ms: f64,
    /// Wall time, s.
    pub wall_s: f64,
    /// CPU time the hypervisor took from the machine's cores during the level (all cores), ms;
    /// absent where the kernel does not say. Bursts of it make ITL tails.
    pub steal_ms: Option<f64>,
    /// Where in the level's alternation this target was measured (0 = first).
    pub position: usize,
}

impl LevelReport {
    /// A short progress line.
    pub fn one_line(&self) -> String {
        let mut line = format!(
            "{:.1} tok/s, {:.2} req/s, TTFT p50 {:.0} ms p99 {:.0} ms, TPOT p50 {:.1} ms, errors {}",
            self.output_tok_s, self.requests_s, self.ttft_p50_ms, self.ttft_p99_ms, self.tpot_p50_ms, self.errors
        );
        if let Some(steal) = self.steal_ms {
            line.push_str(&format!(", steal {steal:.0} ms"));
        }
        if let Some(e) = &self.first_error {
            line.push_str(&format!(" (first: {e})"));
        }
        line
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Summarizes one level.
pub fn summarize(
    target: &str,
    workload: WorkloadKind,
    concurrency: usize,
    wall: Duration,
    outcomes: &[Outcome],
) -> LevelReport {
    let ok: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_none()).collect();
    let tokens: u64 = ok.iter().map(|o| u64::from(o.tokens)).sum();
    let mut ttft: Vec<f64> = ok.iter().filter_map(|o| o.ttft.map(ms)).collect();
    let mut tpot: Vec<f64> = ok
        .iter()
        .filter(|o| o.tokens > 1)
        .filter_map(|o| {
            o.ttft
                .map(|t| (ms(o.e2e) - ms(t)) / f64::from(o.tokens - 1))
        })
        .collect();
    let mut itl: Vec<f64> = ok
        .iter()
        .flat_map(|o| o.itl.iter().copied().map(ms))
        .collect();
    let secs = wall.as_secs_f64().max(1e-9);
    LevelReport {
        target: target.to_owned(),
        workload: format!("{workload:?}").to_lowercase(),
        concurrency,
        requests: outcomes.len(),
        errors: outcomes.len() - ok.len(),
        first_error: outcomes.iter().find_map(|o| o.error.clone()),
        output_tok_s: tokens as f64 / secs,
        requests_s: ok.len() as f64 / secs,
        ttft_p50_ms: percentile(&mut ttft, 50.0),
        ttft_p99_ms: percentile(&mut ttft, 99.0),
        tpot_p50_ms: percentile(&mut tpot, 50.0),
        tpot_p99_ms: percentile(&mut tpot, 99.0),
        itl_p99_ms: percentile(&mut itl, 99.0),
        wall_s: secs,
        steal_ms: None,
        position: 0,
    }
}

/// A Markdown table; with two or more targets, ratios of the first target to each other one.
pub fn table(reports: &[LevelReport]) -> String {
    let mut out = String::from(
        "| target | conc | req | err | out tok/s | req/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | ITL p99 ms |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} |\n",
            r.target,
            r.concurrency,
            r.requests,
            r.errors,
            r.output_tok_s,
            r.requests_s,
            r.ttft_p50_ms,
            r.ttft_p99_ms,
            r.tpot_p50_ms,
            r.tpot_p99_ms,
            r.itl_p99_ms
        ));
    }
    let first = reports.first().map(|r| r.target.clone());
    let mut others: Vec<String> = Vec::new();
    for r in reports {
        if Some(&r.target) != first.as_ref() && !others.contains(&r.target) {
            others.push(r.target.clone());
        }
    }
    if let (Some(first), false) = (first, others.is_empty()) {
        out.push_str(&format!(
            "\n| conc | vs | tok/s ratio ({first} ÷ other) | TTFT p99 ratio ({first} ÷ other) |\n|---|---|---|---|\n"
        ));
        for other in &others {
            for a in reports.iter().filter(|r| r.target == first) {
                if let Some(b) = reports
                    .iter()
                    .find(|r| &r.target == other && r.concurrency == a.concurrency)
                {
                    out.push_str(&format!(
                        "| {} | {} | {:.2} | {:.2} |\n",
                        a.concurrency,
                        other,
                        a.output_tok_s / b.output_tok_s,
                        a.ttft_p99_ms / b.ttft_p99_ms
                    ));
                }
            }
        }
    }
    out
}
