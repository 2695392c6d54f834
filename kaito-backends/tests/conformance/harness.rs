//! What every check stands on: the engines under test (each loaded once per test binary), one
//! shared tokio runtime, request builders, and a router around an engine for the HTTP checks.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use kaito_core::chat_template::ChatTemplate;
use kaito_core::infer::{AdmissionLimits, AppState, ModelHandle, ServerConfig};
use kaito_core::server;
use kaito_core::{
    Backend, EngineConfig, FinishReason, GenerateRequest, GenerationEvent, GenerationStream,
    SamplingParams,
};
use serde_json::{json, Value};
use tower::ServiceExt;

/// The API model id every engine is served under.
pub const SERVED_NAME: &str = "smollm2";
/// The system message of every chat prompt.
pub const SYSTEM: &str = "You are a helpful assistant.";
/// The question whose greedy answer names Paris.
pub const CAPITAL_QUESTION: &str = "What is the capital of France?";
/// The longest a single check may take before it counts as an engine hang.
const CHECK_DEADLINE: Duration = Duration::from_secs(600);

/// What one engine is expected to do where engines legitimately differ.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// `Backend::name()`.
    pub engine: &'static str,
    /// Whether `response_format` / grammars are honoured (otherwise a 400 naming it).
    pub constrained_decoding: bool,
    /// What `ModelInfo::quantization` reports, compared case-insensitively.
    pub quantization: &'static str,
}

/// An engine under test.
pub struct Subject {
    /// Test-module name, for messages.
    pub label: &'static str,
    /// The engine.
    pub backend: Arc<dyn Backend>,
    /// Where it may differ from the others.
    pub expect: Expect,
    template: ChatTemplate,
    /// Checks on one engine run one at a time: some read engine-wide figures (`stats().running`).
    exclusive: Mutex<()>,
}

/// The engine configuration of the whole suite: 1 thread, 4 sequences of 1024 tokens, and
/// batch-invariant decoding so that outputs can be compared across runs and batch shapes.
pub fn engine_config() -> EngineConfig {
    EngineConfig::default()
        .with_threads(1)
        .with_parallel(4)
        .with_ctx_size(1024)
        .with_deterministic(true)
}

impl Subject {
    /// Loads `label`'s engine with `load` (called once, from the first check that needs it).
    pub fn load(
        label: &'static str,
        expect: Expect,
        load: impl FnOnce() -> kaito_core::Result<Arc<dyn Backend>>,
    ) -> Self {
        let backend = load().unwrap_or_else(|e| panic!("{label}: loading the model failed: {e}"));
        let template = ChatTemplate::for_model(backend.model())
            .unwrap_or_else(|e| panic!("{label}: the model's chat template does not compile: {e}"));
        Self {
            label,
            backend,
            expect,
            template,
            exclusive: Mutex::new(()),
        }
    }

    /// The engine, as `&dyn Backend`.
    pub fn engine(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The chat prompt text of `user` after the system message, through the model's template.
    pub fn chat_text(&self, user: &str) -> String {
        let messages = [
            json!({"role": "system", "content": SYSTEM}),
            json!({"role": "user", "content": user}),
        ];
        self.template
            .render(&messages, None, true)
            .unwrap_or_else(|e| panic!("{}: rendering a chat prompt: {e}", self.label))
    }

    /// [`Subject::chat_text`] as token ids (special markers parsed, as the server does).
    pub fn chat_prompt(&self, user: &str) -> Vec<u32> {
        self.backend
            .tokenize(&self.chat_text(user), true, true)
            .unwrap_or_else(|e| panic!("{}: tokenizing a chat prompt: {e}", self.label))
    }

    /// Starts a request that must be accepted.
    pub fn start(&self, request: GenerateRequest) -> GenerationStream {
        self.backend
            .generate(request)
            .unwrap_or_else(|e| panic!("{}: generate refused a valid request: {e}", self.label))
    }

    /// Runs a request to its end.
    pub async fn complete(&self, request: GenerateRequest) -> Completion {
        drain(self.engine(), self.start(request)).await
    }

    /// An HTTP router serving this engine, ready (the OpenAI server as `kaito serve` builds it).
    pub fn router(&self) -> axum::Router {
        let state = AppState::new(ServerConfig::default());
        let model = ModelHandle::new(
            SERVED_NAME,
            self.backend.clone(),
            AdmissionLimits::from(&engine_config()),
        )
        .unwrap_or_else(|e| panic!("{}: server state: {e}", self.label));
        state.models.insert(model);
        state.set_ready();
        server::router(state)
    }
}

/// Runs `check` on `subject` on the shared runtime, alone on that engine, within a deadline.
pub fn run<F, Fut>(subject: &'static Subject, check: F)
where
    F: FnOnce(&'static Subject) -> Fut,
    Fut: Future<Output = ()>,
{
    // A check that failed while holding the lock leaves it poisoned; the engine is still usable.
    let _alone = subject
        .exclusive
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    runtime().block_on(async {
        if tokio::time::timeout(CHECK_DEADLINE, check(subject))
            .await
            .is_err()
        {
            panic!(
                "{}: the check did not finish within {CHECK_DEADLINE:?} (engine hang?)",
                subject.label
            );
        }
    });
}

/// The one runtime every check runs on (engines outlive any single test).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// A generation request.
pub fn request(prompt: Vec<u32>, max_tokens: u32, sampling: SamplingParams) -> GenerateRequest {
    GenerateRequest::new("conformance", prompt, max_tokens).with_sampling(sampling)
}

/// Greedy decoding that runs to `max_tokens` whatever the model says.
pub fn greedy_to_the_end() -> SamplingParams {
    SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy()
    }
}

/// Sampling at temperature 0.8 with `seed`, to `max_tokens`.
pub fn seeded(seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        seed: Some(seed),
        ignore_eos: true,
        ..SamplingParams::default()
    }
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated tokens, detokenized.
    pub text: String,
    /// The generated token ids.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub reason: FinishReason,
}

/// Reads a stream to its `Finished` event; errors and a stream that just stops fail the check.
pub async fn drain(b: &dyn Backend, stream: GenerationStream) -> Completion {
    read_to_end(b, stream, false).await
}

/// [`drain`] for a stream whose `Started` event (and maybe some tokens) were already read.
pub async fn drain_rest(b: &dyn Backend, stream: GenerationStream) -> Completion {
    read_to_end(b, stream, true).await
}

async fn read_to_end(
    b: &dyn Backend,
    mut stream: GenerationStream,
    mut started: bool,
) -> Completion {
    let mut tokens = Vec::new();
    loop {
        let event = stream
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream closed without Finished after {tokens:?}"))
            .unwrap_or_else(|e| panic!("engine error mid-stream after {tokens:?}: {e}"));
        match event {
            GenerationEvent::Started { .. } => {
                assert!(!started, "two Started events");
                started = true;
            }
            GenerationEvent::Token(t) => {
                assert!(started, "a token before Started");
                tokens.push(t.id);
            }
            GenerationEvent::Finished { reason } => {
                assert!(
                    stream.next().await.is_none(),
                    "events after Finished ({reason:?})"
                );
                let text = b.detokenize(&tokens).expect("detokenize generated ids");
                return Completion {
                    text,
                    tokens,
                    reason,
                };
            }
        }
    }
}

/// A request the engine must refuse: the error from `generate`, or the stream's first error —
/// before it produced any token. Returns the error.
pub async fn refusal(b: &dyn Backend, request: GenerateRequest) -> kaito_core::Error {
    let mut stream = match b.generate(request) {
        Err(e) => return e,
        Ok(s) => s,
    };
    loop {
        match stream.next().await {
            Some(Err(e)) => return e,
            Some(Ok(GenerationEvent::Started { .. })) => {}
            Some(Ok(other)) => panic!("the engine accepted the request and produced {other:?}"),
            None => panic!("the stream closed without an error or a token"),
        }
    }
}

/// Sends `body` to `path` and returns (status, JSON body).
pub async fn post(router: &axum::Router, path: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("response body");
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status}: the body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}

/// A chat-completions body asking `user` after the system message, greedy, with `extra` fields.
pub fn chat_body(user: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": SERVED_NAME,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user},
        ],
    });
    body.as_object_mut().expect("object").extend(
        extra
            .as_object()
            .expect("extra fields are an object")
            .clone(),
    );
    body
}

/// The OpenAI error object of a 4xx body, checked for its shape.
pub fn openai_error(body: &Value) -> &serde_json::Map<String, Value> {
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no `error` object: {body}"));
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
    assert!(error["type"].is_string(), "error without a type: {body}");
    assert!(error.contains_key("param"), "error without param: {body}");
    error
}
