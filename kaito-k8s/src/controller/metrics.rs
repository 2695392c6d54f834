//! Prometheus metrics of the controllers: reconciles, errors by reason, duration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds, seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Counters and histograms, rendered in the Prometheus text format.
#[derive(Default)]
pub struct Metrics {
    reconciles: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<BTreeMap<(String, String), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
    leader: Mutex<bool>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Counts one reconcile of `controller` that took `took`.
    pub fn reconciled(&self, controller: &str, took: Duration) {
        *self
            .reconciles
            .lock()
            .unwrap()
            .entry(controller.to_owned())
            .or_default() += 1;
        let mut d = self.durations.lock().unwrap();
        let h = d.entry(controller.to_owned()).or_insert_with(|| Histogram {
            counts: vec![0; BUCKETS.len()],
            ..Default::default()
        });
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Counts one failed reconcile.
    pub fn failed(&self, controller: &str, reason: &str) {
        *self
            .errors
            .lock()
            .unwrap()
            .entry((controller.to_owned(), reason.to_owned()))
            .or_default() += 1;
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        *self.leader.lock().unwrap() = leading;
    }

    /// Reconciles counted so far for `controller`.
    pub fn reconcile_count(&self, controller: &str) -> u64 {
        self.reconciles
            .lock()
            .unwrap()
            .get(controller)
            .copied()
            .unwrap_or(0)
    }

    /// Errors counted so far for `controller` and `reason`.
    pub fn error_count(&self, controller: &str, reason: &str) -> u64 {
        self.errors
            .lock()
            .unwrap()
            .get(&(controller.to_owned(), reason.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP kaito_reconciles_total Reconciles run.\n# TYPE kaito_reconciles_total counter\n");
        for (c, n) in self.reconciles.lock().unwrap().iter() {
            let _ = writeln!(out, "kaito_reconciles_total{{controller=\"{c}\"}} {n}");
        }
        out.push_str("# HELP kaito_reconcile_errors_total Reconciles that failed, by reason.\n# TYPE kaito_reconcile_errors_total counter\n");
        for ((c, r), n) in self.errors.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "kaito_reconcile_errors_total{{controller=\"{c}\",reason=\"{r}\"}} {n}"
            );
        }
        out.push_str("# HELP kaito_reconcile_duration_seconds Reconcile duration.\n# TYPE kaito_reconcile_duration_seconds histogram\n");
        for (c, h) in self.durations.lock().unwrap().iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "kaito_reconcile_duration_seconds_bucket{{controller=\"{c}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "kaito_reconcile_duration_seconds_bucket{{controller=\"{c}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "kaito_reconcile_duration_seconds_sum{{controller=\"{c}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "kaito_reconcile_duration_seconds_count{{controller=\"{c}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP kaito_leader Whether this replica holds the leader Lease.\n# TYPE kaito_leader gauge\n");
        let _ = writeln!(
            out,
            "kaito_leader {}",
            u8::from(*self.leader.lock().unwrap())
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.reconciled("workspace", Duration::from_millis(30));
        m.failed("workspace", "Conflict");
        let text = m.render();
        assert!(text.contains("kaito_reconciles_total{controller=\"workspace\"} 1"));
        assert!(text.contains(
            "kaito_reconcile_errors_total{controller=\"workspace\",reason=\"Conflict\"} 1"
        ));
        assert!(text.contains(
            "kaito_reconcile_duration_seconds_bucket{controller=\"workspace\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "kaito_reconcile_duration_seconds_bucket{controller=\"workspace\",le=\"0.025\"} 0"
        ));
    }
}
