//! The models a process serves, by name: how a request finds its engine.
//!
//! A [`ModelRegistry`] maps served names to slots that are loading, ready or failed. A request
//! resolves its `model` field with [`ModelRegistry::get`] into a [`ModelLease`]: the loaded
//! [`ModelHandle`] (engine, chat template, admission limits, metrics), held for as long as the
//! request runs. Leases count the requests in flight on a model and record when it was last used;
//! [`ModelRegistry::unload`] takes a model out of the registry at once (new requests get 404) and
//! hands its engine back only when the last lease is gone. Loading goes through a [`ModelLoader`]
//! that the caller injects, so this crate never depends on an engine.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::backend::Backend;
use crate::chat_template::ChatTemplate;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::store::Hold;
use crate::model::ModelInfo;

/// How many requests a model takes at once: `parallel` decoding, `max_queue` more waiting; beyond
/// that requests get 503. From the engine's own settings (`AdmissionLimits::from(&EngineConfig)`), so
/// that admission and the engine cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Requests decoded at once (the engine's parallel sequences).
    pub parallel: usize,
    /// Requests that may wait beyond `parallel`.
    pub max_queue: usize,
}

impl From<&crate::engine::EngineConfig> for AdmissionLimits {
    fn from(engine: &crate::engine::EngineConfig) -> Self {
        Self {
            parallel: engine.parallel as usize,
            max_queue: engine.max_queue as usize,
        }
    }
}

/// What a [`ModelLoader`] gives back: the engine, its admission limits and the hold on its
/// weights in the model store.
pub struct LoadedModel {
    /// The engine, loaded.
    pub backend: Arc<dyn Backend>,
    /// Its admission limits.
    pub limits: AdmissionLimits,
    /// Keeps the weights from eviction while the model is served; `None` outside the store.
    pub weights: Option<Hold>,
}

/// Loads a model by served name (the CLI and the Python bindings load through `kaito-backends`).
#[async_trait::async_trait]
pub trait ModelLoader: Send + Sync {
    /// Loads the model served as `name`.
    async fn load(&self, name: &str) -> Result<LoadedModel>;
}

/// A loaded model as the server serves it.
pub struct ModelHandle {
    name: String,
    backend: Arc<dyn Backend>,
    template: ChatTemplate,
    limits: AdmissionLimits,
    metrics: Arc<Metrics>,
    /// The weights' hold in the model store, released with the handle.
    weights: Option<Hold>,
    /// Admission slots taken (a request with `n` choices takes `n`).
    in_flight: Arc<AtomicUsize>,
    /// Leases alive.
    leases: AtomicUsize,
    /// Unix milliseconds of the last lease.
    last_used_ms: AtomicU64,
    released: Notify,
}

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHandle")
            .field("name", &self.name)
            .field("backend", &self.backend.name())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ModelHandle {
    /// A handle serving `backend` as `name`; compiles the model's chat template.
    pub fn new(
        name: impl Into<String>,
        backend: Arc<dyn Backend>,
        limits: AdmissionLimits,
    ) -> Result<Self> {
        let name = name.into();
        let template = ChatTemplate::for_model(backend.model())?;
        Ok(Self {
            metrics: Arc::new(Metrics::new(name.clone())),
            name,
            backend,
            template,
            limits,
            weights: None,
            in_flight: Arc::new(AtomicUsize::new(0)),
            leases: AtomicUsize::new(0),
            last_used_ms: AtomicU64::new(0),
            released: Notify::new(),
        })
    }

    /// Keeps `weights` (the model store's hold on this model's files) until the handle is dropped.
    pub fn holding(mut self, weights: Option<Hold>) -> Self {
        self.weights = weights;
        self
    }

    /// The served name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The model's metadata.
    pub fn info(&self) -> &ModelInfo {
        self.backend.model()
    }

    /// The compiled chat template.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Admission limits.
    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// This model's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A lease on this model, as [`ModelRegistry::get`] gives (for front ends that hold one model
    /// without a registry, such as the CLI's chat).
    pub fn lease(self: &Arc<Self>) -> ModelLease {
        ModelLease::new(self.clone())
    }

    /// Requests holding a lease on this model now.
    pub fn leases(&self) -> usize {
        self.leases.load(Ordering::SeqCst)
    }

    /// Unix milliseconds of the last request (0: none yet).
    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }

    /// Takes `slots` admission slots, or [`Error::Overloaded`] when `parallel + max_queue` are taken.
    pub fn admit(&self, slots: usize) -> Result<Admission> {
        let limit = self.limits.parallel + self.limits.max_queue;
        let mut current = self.in_flight.load(Ordering::SeqCst);
        loop {
            if current + slots > limit {
                let running = current.min(self.limits.parallel);
                return Err(Error::Overloaded {
                    running,
                    waiting: current - running,
                });
            }
            match self.in_flight.compare_exchange(
                current,
                current + slots,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Ok(Admission {
                        counter: self.in_flight.clone(),
                        slots,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// Held while a request is admitted; releases its slots on drop.
#[derive(Debug)]
pub struct Admission {
    counter: Arc<AtomicUsize>,
    slots: usize,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.slots, Ordering::SeqCst);
    }
}

/// A request's hold on a model: derefs to the [`ModelHandle`]; while any lease lives,
/// [`ModelRegistry::unload`] waits.
#[derive(Debug)]
pub struct ModelLease {
    handle: Arc<ModelHandle>,
}

impl ModelLease {
    fn new(handle: Arc<ModelHandle>) -> Self {
        handle.leases.fetch_add(1, Ordering::SeqCst);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        handle.last_used_ms.store(now, Ordering::Relaxed);
        Self { handle }
    }
}

impl Clone for ModelLease {
    fn clone(&self) -> Self {
        self.handle.leases.fetch_add(1, Ordering::SeqCst);
        Self {
            handle: self.handle.clone(),
        }
    }
}

impl Deref for ModelLease {
    type Target = ModelHandle;
    fn deref(&self) -> &ModelHandle {
        &self.handle
    }
}

impl Drop for ModelLease {
    fn drop(&mut self) {
        if self.handle.leases.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.handle.released.notify_waiters();
        }
    }
}

/// Where a served name stands.
#[derive(Debug, Clone)]
pub enum ModelSlot {
    /// Being loaded: requests get 503 and may retry.
    Loading,
    /// Serving.
    Ready(Arc<ModelHandle>),
    /// Loading failed: requests get 503 naming the reason.
    Failed(String),
}

#[derive(Debug)]
struct Entry {
    slot: ModelSlot,
    /// From the moment the name is announced, so that requests refused while it loads count too.
    metrics: Arc<Metrics>,
}

/// The models of one process, by served name.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    entries: RwLock<BTreeMap<String, Entry>>,
    /// The first name announced: error answers count under it.
    default_model: RwLock<Option<String>>,
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().expect("model registry lock")
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().expect("model registry lock")
    }

    /// Sets `name`'s slot with `metrics`, or the metrics it had (new ones for a new name).
    fn set(&self, name: &str, slot: ModelSlot, metrics: Option<Arc<Metrics>>) {
        let mut entries = self.write();
        let metrics = metrics
            .or_else(|| entries.get(name).map(|e| e.metrics.clone()))
            .unwrap_or_else(|| Arc::new(Metrics::new(name)));
        entries.insert(name.to_owned(), Entry { slot, metrics });
        drop(entries);
        let mut default = self.default_model.write().expect("model registry lock");
        if default.is_none() {
            *default = Some(name.to_owned());
        }
    }

    /// Announces `name` as loading: requests for it get 503 until it is ready.
    pub fn begin_loading(&self, name: impl Into<String>) {
        self.set(&name.into(), ModelSlot::Loading, None);
    }

    /// Serves `handle` under its name, replacing whatever slot had that name; the metrics of a
    /// name announced as loading carry over.
    pub fn insert(&self, mut handle: ModelHandle) -> Arc<ModelHandle> {
        if let Some(entry) = self.read().get(&handle.name) {
            handle.metrics = entry.metrics.clone();
        }
        self.insert_shared(Arc::new(handle))
    }

    /// Serves a handle that is also used elsewhere (its admission slots and metrics are shared
    /// with that use, as when Python serves over HTTP the model it also calls directly).
    pub fn insert_shared(&self, handle: Arc<ModelHandle>) -> Arc<ModelHandle> {
        self.set(
            &handle.name,
            ModelSlot::Ready(handle.clone()),
            Some(handle.metrics.clone()),
        );
        handle
    }

    /// Loads `name` with `loader` and serves it; the slot is loading meanwhile, failed after an error.
    pub async fn load(&self, name: &str, loader: &dyn ModelLoader) -> Result<Arc<ModelHandle>> {
        self.begin_loading(name);
        let loaded = loader
            .load(name)
            .await
            .and_then(|m| Ok(ModelHandle::new(name, m.backend, m.limits)?.holding(m.weights)));
        match loaded {
            Ok(handle) => Ok(self.insert(handle)),
            Err(e) => {
                self.set(name, ModelSlot::Failed(e.to_string()), None);
                Err(e)
            }
        }
    }

    /// Resolves a request's `model` into a lease on it.
    pub fn get(&self, name: &str) -> Result<ModelLease> {
        match self.read().get(name).map(|e| &e.slot) {
            Some(ModelSlot::Ready(handle)) => Ok(ModelLease::new(handle.clone())),
            Some(ModelSlot::Loading) => Err(Error::NotReady),
            Some(ModelSlot::Failed(reason)) => Err(Error::Engine(format!(
                "model `{name}` failed to load: {reason}"
            ))),
            None => Err(Error::UnknownModel {
                requested: name.to_owned(),
                served: self.names(),
            }),
        }
    }

    /// Every served name, loading or not, in order.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The models that are ready, in name order.
    pub fn ready(&self) -> Vec<Arc<ModelHandle>> {
        self.read()
            .values()
            .filter_map(|e| match &e.slot {
                ModelSlot::Ready(handle) => Some(handle.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every served name with where it stands, in order (one look at the registry).
    pub fn slots(&self) -> Vec<(String, ModelSlot)> {
        self.read()
            .iter()
            .map(|(name, e)| (name.clone(), e.slot.clone()))
            .collect()
    }

    /// Where error answers count: under the first model announced, or, once that is unloaded,
    /// the first by name still served (`None` while none is).
    pub fn error_metrics(&self) -> Option<Arc<Metrics>> {
        let entries = self.read();
        let default = self.default_model.read().expect("model registry lock");
        default
            .as_deref()
            .and_then(|name| entries.get(name))
            .or_else(|| entries.values().next())
            .map(|e| e.metrics.clone())
    }

    /// Prometheus exposition of every announced model: its metrics, with its engine's live
    /// figures once loaded.
    pub fn render_metrics(&self, format: crate::metrics::Exposition) -> String {
        let entries = self.read();
        let models: Vec<(Arc<Metrics>, crate::backend::EngineStats)> = entries
            .values()
            .map(|e| {
                let stats = match &e.slot {
                    ModelSlot::Ready(handle) => handle.backend.stats(),
                    _ => Default::default(),
                };
                (e.metrics.clone(), stats)
            })
            .collect();
        crate::metrics::render_all(&models, format)
    }

    /// Takes `name` out of the registry (new requests for it get 404 at once), waits until no
    /// request holds it, and returns its handle, the last one: dropping it (or calling the
    /// engine's shutdown) frees the engine.
    pub async fn unload(&self, name: &str) -> Result<Arc<ModelHandle>> {
        let slot = self.write().remove(name).map(|e| e.slot);
        let handle = match slot {
            Some(ModelSlot::Ready(handle)) => handle,
            Some(_) => return Err(Error::NotReady),
            None => {
                return Err(Error::UnknownModel {
                    requested: name.to_owned(),
                    served: self.names(),
                })
            }
        };
        loop {
            {
                let released = handle.released.notified();
                tokio::pin!(released);
                // Registered before the check, so that a release in between is not missed.
                released.as_mut().enable();
                if handle.leases() != 0 {
                    released.await;
                    continue;
                }
            }
            return Ok(handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScriptedBackend;

    fn handle(name: &str, parallel: usize, max_queue: usize) -> ModelHandle {
        let backend: Arc<dyn Backend> =
            Arc::new(ScriptedBackend::new("m", "hi", std::time::Duration::ZERO));
        ModelHandle::new(
            name,
            backend,
            AdmissionLimits {
                parallel,
                max_queue,
            },
        )
        .expect("handle")
    }

    #[test]
    fn a_request_finds_its_model_or_learns_what_is_served() {
        let registry = ModelRegistry::new();
        registry.insert(handle("a", 1, 0));
        registry.begin_loading("b");
        assert_eq!(registry.get("a").expect("ready").name(), "a");
        assert!(matches!(registry.get("b"), Err(Error::NotReady)));
        match registry.get("c") {
            Err(Error::UnknownModel { requested, served }) => {
                assert_eq!(requested, "c");
                assert_eq!(served, vec!["a".to_owned(), "b".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(registry.ready().len(), 1);
    }

    #[test]
    fn leases_count_requests_and_record_use() {
        let registry = ModelRegistry::new();
        let model = registry.insert(handle("a", 1, 0));
        assert_eq!(model.last_used_ms(), 0);
        let lease = registry.get("a").expect("lease");
        let again = lease.clone();
        assert_eq!(model.leases(), 2);
        assert!(model.last_used_ms() > 0);
        drop((lease, again));
        assert_eq!(model.leases(), 0);
    }

    #[test]
    fn admission_is_per_model() {
        let registry = ModelRegistry::new();
        registry.insert(handle("a", 1, 1));
        registry.insert(handle("b", 1, 0));
        let a = registry.get("a").expect("a");
        let b = registry.get("b").expect("b");
        let _first = a.admit(2).expect("parallel + queue");
        assert!(matches!(
            a.admit(1),
            Err(Error::Overloaded {
                running: 1,
                waiting: 1
            })
        ));
        // The other model's slots are its own.
        let held = b.admit(1).expect("b has a slot");
        assert!(b.admit(1).is_err());
        drop(held);
        assert!(b.admit(1).is_ok());
    }

    #[tokio::test]
    async fn unload_waits_for_the_last_request_and_refuses_new_ones() {
        let registry = Arc::new(ModelRegistry::new());
        registry.insert(handle("a", 1, 0));
        let lease = registry.get("a").expect("lease");
        let unloading = tokio::spawn({
            let registry = registry.clone();
            async move { registry.unload("a").await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // Gone for new requests at once…
        assert!(matches!(registry.get("a"), Err(Error::UnknownModel { .. })));
        // …but not handed back while a request holds it.
        assert!(!unloading.is_finished());
        drop(lease);
        let handle = unloading.await.expect("join").expect("unloaded");
        assert_eq!(handle.leases(), 0);
        assert_eq!(Arc::strong_count(&handle), 1);
    }

    struct FailingLoader;

    #[async_trait::async_trait]
    impl ModelLoader for FailingLoader {
        async fn load(&self, name: &str) -> Result<LoadedModel> {
            Err(Error::ModelNotFound {
                name: name.to_owned(),
                presets: Vec::new(),
            })
        }
    }

    struct ScriptLoader;

    #[async_trait::async_trait]
    impl ModelLoader for ScriptLoader {
        async fn load(&self, _name: &str) -> Result<LoadedModel> {
            Ok(LoadedModel {
                weights: None,
                backend: Arc::new(ScriptedBackend::new("m", "hi", std::time::Duration::ZERO)),
                limits: AdmissionLimits {
                    parallel: 1,
                    max_queue: 0,
                },
            })
        }
    }

    #[tokio::test]
    async fn loading_goes_through_the_injected_loader() {
        let registry = ModelRegistry::new();
        let model = registry.load("a", &ScriptLoader).await.expect("loaded");
        assert_eq!(model.name(), "a");
        assert!(registry.get("a").is_ok());
        let err = registry.load("broken", &FailingLoader).await.unwrap_err();
        assert!(matches!(err, Error::ModelNotFound { .. }));
        match registry.get("broken") {
            Err(Error::Engine(message)) => assert!(message.contains("failed to load"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
