//! `kaito._kaito.Engine`: a loaded model with its chat template, generating in-process.
//!
//! Every call that touches the engine releases the GIL. Non-streaming generation is collected
//! in Rust; streaming hands out a [`Generation`] that Python iterates (blocking or `async`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use kaito_core::api::params;
use kaito_core::infer::generation::{self, ChoiceEvent, Job};
use kaito_core::infer::{Admission, ModelHandle, ModelLease};
use kaito_core::model::plan::LoadOptions;
use kaito_core::{Error, Result};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{json, Value};

use crate::convert::{from_json, sampling_fields, to_json};
use crate::error::IntoPyResult;
use crate::plan;
use crate::runtime::{spawn_with_callback, wait, Task};
use crate::workspace::PyWorkspace;

/// One choice's result: (text, finish_reason, completion_tokens).
type ChoiceOut = (String, Option<&'static str>, u32);
/// A streamed event: (choice index, text, finish_reason once finished, completion_tokens once finished).
type EventOut = (u32, String, Option<&'static str>, Option<u32>);

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// A loaded model.
#[pyclass(frozen, module = "kaito._kaito", name = "Engine")]
pub struct Engine {
    pub(crate) model: Arc<ModelHandle>,
    /// Whether the engine decodes batch-invariant (`deterministic=`).
    deterministic: bool,
}

/// Python's list of message dicts (as JSON) → chat-template input, by the server's rules.
fn normalize_messages(messages: &Value) -> Result<Vec<Value>> {
    let list = messages
        .as_array()
        .ok_or_else(|| Error::request("messages", "`messages` must be a list of dicts"))?;
    kaito_core::api::messages::normalize(list)
}

impl Engine {
    /// Validates sampling, tokenizes, fits the context and takes admission slots.
    fn prepare(
        model: &ModelLease,
        prompt: &str,
        fields: &kaito_core::api::openai::SamplingFields,
    ) -> Result<(Job, Admission)> {
        let v = params::validate(fields, None)?;
        let backend = model.backend();
        if prompt.is_empty() {
            return Err(Error::request("prompt", "the prompt is empty"));
        }
        let tokens = backend.tokenize(prompt, true, true)?;
        let id = format!("py-{}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed));
        let (job, admission) =
            generation::prepare(model, id, tokens, v.max_tokens, &v, None, None)?;
        Ok((job, admission))
    }

    fn start(
        &self,
        py: Python<'_>,
        prompt: &str,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(BoxStream<'static, ChoiceEvent>, u32, u32)> {
        let fields = sampling_fields(kwargs)?;
        let model = self.model.lease();
        py.detach(|| {
            let (job, admission) = Self::prepare(&model, prompt, &fields)?;
            let (prompt_tokens, n) = (job.prompt.len() as u32, job.n);
            let events = generation::start(&model, job, admission)?;
            Ok((events, prompt_tokens, n))
        })
        .py(py)
    }

    async fn embed_inner(model: ModelLease, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(Error::request("input", "`texts` is empty"));
        }
        let backend = model.backend();
        let tokens = texts
            .iter()
            .map(|t| backend.tokenize(t, true, false))
            .collect::<Result<Vec<_>>>()?;
        if let Some(i) = tokens
            .iter()
            .position(|t| t.len() as u32 > backend.context_size())
        {
            return Err(Error::request(
                format!("input[{i}]"),
                format!(
                    "input[{i}] has {} tokens; the context holds {}",
                    tokens[i].len(),
                    backend.context_size()
                ),
            ));
        }
        let _admission = model.admit(1)?;
        backend.embed(tokens).await
    }
}

fn collected(out: Vec<generation::Collected>) -> Vec<ChoiceOut> {
    out.into_iter()
        .map(|c| {
            (
                c.text,
                c.finish_reason.map(|r| r.as_str()),
                c.completion_tokens,
            )
        })
        .collect()
}

#[pymethods]
impl Engine {
    /// Resolves, fetches (when needed) and loads a model, then generates one warm-up token.
    #[new]
    #[pyo3(signature = (model=None, *, workspace=None, backend=None, threads=None, ctx_size=None, parallel=None, max_queue=None, cache_dir=None, cache_max_gib=None, cache_tiers=None, served_name=None, deterministic=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: Option<String>,
        workspace: Option<PyRef<'_, PyWorkspace>>,
        backend: Option<String>,
        threads: Option<u32>,
        ctx_size: Option<u32>,
        parallel: Option<u32>,
        max_queue: Option<u32>,
        cache_dir: Option<PathBuf>,
        cache_max_gib: Option<f64>,
        cache_tiers: Option<Vec<PathBuf>>,
        served_name: Option<String>,
        deterministic: Option<bool>,
    ) -> PyResult<Self> {
        let options = LoadOptions {
            model,
            workspace: workspace.map(|w| w.workspace.clone()),
            backend,
            threads,
            ctx_size,
            parallel,
            max_queue,
            cache_dir,
            cache_max_gib,
            cache_tiers: cache_tiers.unwrap_or_default(),
            served_name,
            deterministic,
            ..LoadOptions::default()
        };
        let plan = plan::resolve(options).py(py)?;
        let deterministic = plan.engine.deterministic;
        let model = wait(py, plan::load(plan))?.py(py)?;
        Ok(Engine {
            model,
            deterministic,
        })
    }

    /// The model id (the served name).
    #[getter]
    fn model(&self) -> String {
        self.model.name().to_owned()
    }

    /// Context window of one sequence, in tokens.
    #[getter]
    fn context_size(&self) -> u32 {
        self.model.backend().context_size()
    }

    /// Model metadata read from the weights, as a dict.
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let backend = self.model.backend();
        let mut value = serde_json::to_value(backend.model()).unwrap_or_default();
        value["backend"] = json!(backend.name());
        value["context_size"] = json!(backend.context_size());
        value["deterministic"] = json!(self.deterministic);
        from_json(py, &value)
    }

    /// Renders OpenAI-shaped messages with the model's chat template (generation prompt added).
    fn chat_prompt(&self, py: Python<'_>, messages: &Bound<'_, PyList>) -> PyResult<String> {
        let value = to_json(messages.as_any())?;
        let model = self.model.clone();
        py.detach(|| {
            let messages = normalize_messages(&value)?;
            model.template().render(&messages, None, true)
        })
        .py(py)
    }

    /// Generates every choice for `prompt` (already templated) and returns
    /// `(prompt_tokens, [(text, finish_reason, completion_tokens), ...])`.
    #[pyo3(signature = (prompt, **sampling))]
    fn complete(
        &self,
        py: Python<'_>,
        prompt: &str,
        sampling: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(u32, Vec<ChoiceOut>)> {
        let (events, prompt_tokens, n) = self.start(py, prompt, sampling)?;
        let out = wait(py, generation::collect(events, n))?.py(py)?;
        Ok((prompt_tokens, collected(out)))
    }

    /// Like [`Engine::complete`], but returns at once and calls `callback(ok, value)` from the
    /// runtime when done.
    #[pyo3(signature = (prompt, callback, **sampling))]
    fn complete_async(
        &self,
        py: Python<'_>,
        prompt: &str,
        callback: Py<PyAny>,
        sampling: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Task> {
        let (events, prompt_tokens, n) = self.start(py, prompt, sampling)?;
        Ok(spawn_with_callback(
            async move {
                let out = generation::collect(events, n).await?;
                Ok((prompt_tokens, collected(out)))
            },
            callback,
        ))
    }

    /// Starts generating and returns the event stream.
    #[pyo3(signature = (prompt, **sampling))]
    fn stream(
        &self,
        py: Python<'_>,
        prompt: &str,
        sampling: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Generation> {
        let (events, prompt_tokens, n) = self.start(py, prompt, sampling)?;
        Ok(Generation {
            events: Arc::new(tokio::sync::Mutex::new(Some(events))),
            cancel: tokio::sync::watch::channel(false).0,
            prompt_tokens,
            n,
        })
    }

    /// Text to token ids.
    #[pyo3(signature = (text, *, add_special=true, parse_special=false))]
    fn tokenize(
        &self,
        py: Python<'_>,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> PyResult<Vec<u32>> {
        let model = self.model.clone();
        py.detach(|| model.backend().tokenize(text, add_special, parse_special))
            .py(py)
    }

    /// Token ids to text.
    fn detokenize(&self, py: Python<'_>, tokens: Vec<u32>) -> PyResult<String> {
        let model = self.model.clone();
        py.detach(|| model.backend().detokenize(&tokens)).py(py)
    }

    /// Mean-pooled, L2-normalised embeddings, one per text.
    fn embed(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<f32>>> {
        wait(py, Self::embed_inner(self.model.lease(), texts))?.py(py)
    }

    /// Like [`Engine::embed`], calling `callback(ok, value)` when done.
    fn embed_async(&self, texts: Vec<String>, callback: Py<PyAny>) -> Task {
        spawn_with_callback(Self::embed_inner(self.model.lease(), texts), callback)
    }

    fn __repr__(&self) -> String {
        format!("Engine(model={:?})", self.model.name())
    }
}

/// The events of one running generation. Dropping or closing it cancels the generation.
#[pyclass(frozen, module = "kaito._kaito", name = "Generation")]
pub struct Generation {
    events: Arc<tokio::sync::Mutex<Option<BoxStream<'static, ChoiceEvent>>>>,
    cancel: tokio::sync::watch::Sender<bool>,
    /// Tokens in the prompt.
    #[pyo3(get)]
    prompt_tokens: u32,
    /// Choices.
    #[pyo3(get)]
    n: u32,
}

async fn next_event(
    events: Arc<tokio::sync::Mutex<Option<BoxStream<'static, ChoiceEvent>>>>,
    mut cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<EventOut>> {
    let mut guard = events.lock().await;
    let event = {
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        tokio::select! {
            event = stream.next() => Some(event),
            _ = cancel.wait_for(|c| *c) => None,
        }
    };
    let out = match event {
        // Closed while waiting.
        None | Some(None) => None,
        Some(Some(ChoiceEvent::Delta { index, text, .. })) => Some((index, text, None, None)),
        Some(Some(ChoiceEvent::Finished {
            index,
            reason,
            completion_tokens,
            ..
        })) => Some((
            index,
            String::new(),
            Some(reason.as_str()),
            Some(completion_tokens),
        )),
        Some(Some(ChoiceEvent::Failed(e))) => {
            *guard = None;
            return Err(e);
        }
    };
    if out.is_none() {
        // Done or closed: drop the stream now, which cancels the engine work and releases the
        // admission slot.
        *guard = None;
    }
    Ok(out)
}

#[pymethods]
impl Generation {
    /// The next event `(index, text, finish_reason, completion_tokens)`, or `None` at the end.
    fn next_event(&self, py: Python<'_>) -> PyResult<Option<EventOut>> {
        wait(py, next_event(self.events.clone(), self.cancel.subscribe()))?.py(py)
    }

    /// Like [`Generation::next_event`], calling `callback(ok, value)` when the event arrives.
    fn next_event_async(&self, callback: Py<PyAny>) -> Task {
        spawn_with_callback(
            next_event(self.events.clone(), self.cancel.subscribe()),
            callback,
        )
    }

    /// Cancels the generation (idempotent, never blocks): a pending `next_event` returns `None`.
    fn close(&self) {
        self.cancel.send_replace(true);
        if let Ok(mut events) = self.events.try_lock() {
            events.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_must_be_a_list_and_follow_the_server_s_rules() {
        for (bad, param) in [
            (json!({"role": "user"}), "messages"),
            (json!([]), "messages"),
            (
                json!([{"role": "user", "content": [{"text": "no type"}]}]),
                "messages[0].content[0]",
            ),
        ] {
            match normalize_messages(&bad) {
                Err(Error::InvalidRequest { param: Some(p), .. }) => assert_eq!(p, param),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let calls =
            json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
        let ok = normalize_messages(&json!([
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": calls},
        ]))
        .unwrap();
        assert_eq!(ok[1]["tool_calls"], calls);
    }
}
