//! The HTTP path with the engine mocked: request parsing, validation, templating, admission, the
//! per-token stop matcher and SSE serialization of a 64-token streamed answer (and a non-streamed one).
//!
//! `cargo bench -p kaito-benches --bench http_sse`
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{criterion_group, criterion_main, Criterion};
use kaito_core::infer::{AdmissionLimits, AppState, ModelHandle, ServerConfig};
use kaito_core::server;
use kaito_core::testing::ScriptedBackend;
use tower::ServiceExt;

fn body(stream: bool) -> String {
    serde_json::json!({
        "model": "bench",
        "max_tokens": 64,
        "temperature": 0,
        "stream": stream,
        "stop": ["\n\n"],
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "What is the capital of France?"}],
    })
    .to_string()
}

fn http(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let state = AppState::new(ServerConfig::default());
    let reply =
        "The capital of France is Paris. It lies on the Seine and is home to the Louvre museum. ";
    let model = ModelHandle::new(
        "bench",
        Arc::new(ScriptedBackend::new("bench", reply, Duration::ZERO)),
        AdmissionLimits {
            parallel: 4,
            max_queue: 64,
        },
    )
    .unwrap();
    state.models.insert(model);
    let router = server::router(state);
    let mut group = c.benchmark_group("chat_completion_64_tokens");
    for stream in [false, true] {
        let name = if stream { "sse" } else { "json" };
        let payload = body(stream);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let router = router.clone();
                let payload = payload.clone();
                async move {
                    let request = Request::post("/v1/chat/completions")
                        .header("content-type", "application/json")
                        .body(Body::from(payload))
                        .unwrap();
                    let response = router.oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    axum::body::to_bytes(response.into_body(), usize::MAX)
                        .await
                        .unwrap()
                        .len()
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, http);
criterion_main!(benches);
