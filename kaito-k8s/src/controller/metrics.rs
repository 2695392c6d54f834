//! Prometheus metrics of the controllers: reconciles, errors by reason, duration, leadership;
//! kept in a `prometheus-client` registry and written by [`kaito_core::metrics::encode`], the same
//! writer as the server's.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use kaito_core::metrics::{encode, Exposition};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The metric names (counters without the `_total` their samples get).
pub mod names {
    /// Counter: reconciles run, by `controller`.
    pub const RECONCILES: &str = "kaito_reconciles";
    /// Counter: reconciles that failed, by `controller` and `reason`.
    pub const RECONCILE_ERRORS: &str = "kaito_reconcile_errors";
    /// Histogram: reconcile duration, seconds, by `controller`.
    pub const RECONCILE_DURATION: &str = "kaito_reconcile_duration_seconds";
    /// Gauge: 1 while this replica holds the leader Lease.
    pub const LEADER: &str = "kaito_leader";
}

/// Histogram bucket bounds, seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

type ControllerLabel = [(&'static str, String); 1];
type ErrorLabels = [(&'static str, String); 2];

fn duration_histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

/// The controllers' counters and histograms.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Family::<ControllerLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations: Family<ControllerLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let leader = Gauge::<i64, AtomicI64>::default();
        let mut registry = Registry::default();
        registry.register(names::RECONCILES, "Reconciles run.", reconciles.clone());
        registry.register(
            names::RECONCILE_ERRORS,
            "Reconciles that failed, by reason.",
            errors.clone(),
        );
        registry.register(
            names::RECONCILE_DURATION,
            "Reconcile duration.",
            durations.clone(),
        );
        registry.register(
            names::LEADER,
            "Whether this replica holds the leader Lease.",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            durations,
            leader,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn controller_label(controller: &str) -> ControllerLabel {
    [("controller", controller.to_owned())]
}

fn error_labels(controller: &str, reason: &str) -> ErrorLabels {
    [
        ("controller", controller.to_owned()),
        ("reason", reason.to_owned()),
    ]
}

impl Metrics {
    /// Counts one reconcile of `controller` that took `took`.
    pub fn reconciled(&self, controller: &str, took: Duration) {
        let label = controller_label(controller);
        self.reconciles.get_or_create(&label).inc();
        self.durations
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// Counts one failed reconcile.
    pub fn failed(&self, controller: &str, reason: &str) {
        self.errors
            .get_or_create(&error_labels(controller, reason))
            .inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Reconciles counted so far for `controller`.
    pub fn reconcile_count(&self, controller: &str) -> u64 {
        self.reconciles
            .get(&controller_label(controller))
            .map_or(0, |c| c.get())
    }

    /// Errors counted so far for `controller` and `reason`.
    pub fn error_count(&self, controller: &str, reason: &str) -> u64 {
        self.errors
            .get(&error_labels(controller, reason))
            .map_or(0, |c| c.get())
    }

    /// The exposition in `format`.
    pub fn render_as(&self, format: Exposition) -> String {
        encode(&self.registry, format)
    }

    /// The classic Prometheus text exposition.
    pub fn render(&self) -> String {
        self.render_as(Exposition::Text)
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
        assert!(text.contains("kaito_leader 0"), "{text}");
        assert!(text.contains("kaito_reconciles_total{controller=\"workspace\"} 1"));
        assert!(text.contains(
            "kaito_reconcile_errors_total{controller=\"workspace\",reason=\"Conflict\"} 1"
        ));
        assert!(text.contains(
            "kaito_reconcile_duration_seconds_bucket{le=\"0.05\",controller=\"workspace\"} 1"
        ));
        assert!(text.contains(
            "kaito_reconcile_duration_seconds_bucket{le=\"0.025\",controller=\"workspace\"} 0"
        ));
    }
}
