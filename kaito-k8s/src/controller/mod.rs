//! kube-runtime controllers for Workspaces and InferenceSets, and the pieces to embed them.
//!
//! Reconcilers are free functions, `reconcile(Arc<K>, Arc<Context>) -> Result<Action>`, with an
//! `error_policy` that backs off per object; a custom controller can run them in its own
//! `kube::runtime::Controller` (see `examples/embed.rs`).

mod apply;
pub mod inferenceset;
pub mod leader;
pub mod metrics;
mod preheat;
pub mod runner;
pub mod status;
pub mod workspace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

pub use apply::{apply_if_changed, APPLIED_HASH};
pub use metrics::Metrics;

use crate::error::Error;
use crate::render::RenderOptions;

/// What every reconcile needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events on the reconciled objects.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Rendering options (auto-provisioning, images, NodeClass).
    pub render: RenderOptions,
    /// After this long in deletion, a cleanup that keeps failing gives up and removes the
    /// finalizer anyway (with a Warning Event), so deletion never hangs.
    pub cleanup_timeout: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("render", &self.render)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context with default options.
    pub fn new(client: Client) -> Self {
        Self::with_options(
            client,
            RenderOptions::default(),
            Arc::new(Metrics::default()),
        )
    }

    /// A context with the given options and metrics.
    pub fn with_options(client: Client, render: RenderOptions, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: "kaito-rs-controller".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            render,
            cleanup_timeout: Duration::from_secs(300),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an Event; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }

    fn next_backoff(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().unwrap();
        let n = f.entry(key.to_owned()).or_default();
        *n = (*n + 1).min(10);
        Duration::from_secs((5u64 << (*n - 1)).min(300))
    }

    fn reset_backoff(&self, key: &str) {
        self.failures.lock().unwrap().remove(key);
    }
}

/// The error policy of both controllers: count the error by reason and back off exponentially
/// per object (5 s, 10 s, 20 s, … up to 5 min).
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let kind = K::kind(&()).to_ascii_lowercase();
    ctx.metrics.failed(&kind, error.metric_label());
    let key = format!(
        "{kind}/{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    );
    let delay = ctx.next_backoff(&key);
    tracing::warn!(%error, object = %key, ?delay, "reconcile failed");
    Action::requeue(delay)
}
