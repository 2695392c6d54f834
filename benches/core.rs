//! Hot paths of the server that need no model: stop-string matching per token, chat templating,
//! parameter validation, request parsing and metrics rendering.
//!
//! `cargo bench -p kaito-benches`
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use kaito_core::api::openai::ChatCompletionRequest;
use kaito_core::api::params;
use kaito_core::chat_template::ChatTemplate;
use kaito_core::metrics::Metrics;
use kaito_core::stop::StopMatcher;
use kaito_core::EngineStats;
use serde_json::json;

fn stop_matcher(c: &mut Criterion) {
    let pieces: Vec<&[u8]> = "The capital of France is Paris. It is a large city on the Seine."
        .split_inclusive(' ')
        .map(str::as_bytes)
        .collect();
    c.bench_function("stop_matcher_256_tokens_2_stops", |b| {
        b.iter(|| {
            let mut m = StopMatcher::new(vec!["\n\n".into(), "<END>".into()]);
            let mut n = 0;
            for _ in 0..16 {
                for p in &pieces {
                    n += m.push(black_box(p)).text.len();
                }
            }
            n
        })
    });
}

fn chat_template(c: &mut Criterion) {
    let t = ChatTemplate::new(None, None, None).unwrap();
    let messages = vec![
        json!({"role": "system", "content": "You are a helpful assistant."}),
        json!({"role": "user", "content": "What is the capital of France?"}),
        json!({"role": "assistant", "content": "Paris."}),
        json!({"role": "user", "content": "And of Italy?"}),
    ];
    c.bench_function("chatml_render_4_messages", |b| {
        b.iter(|| t.render(black_box(&messages), None, true).unwrap())
    });
}

fn request_parsing(c: &mut Criterion) {
    let body =
        json!({"model": "m", "temperature": 0.7, "max_tokens": 64, "stop": ["\n"], "stream": true,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        .to_string();
    c.bench_function("parse_and_validate_chat_request", |b| {
        b.iter(|| {
            let req: ChatCompletionRequest = serde_json::from_str(black_box(&body)).unwrap();
            params::validate(&req.sampling(), req.max_completion_tokens).unwrap()
        })
    });
}

fn metrics(c: &mut Criterion) {
    let m = std::sync::Arc::new(Metrics::new("smollm2"));
    for i in 0..1000 {
        m.observe_ttft(std::time::Duration::from_millis(i));
    }
    c.bench_function("metrics_render", |b| {
        b.iter(|| m.render(black_box(&EngineStats::default())))
    });
}

criterion_group!(
    benches,
    stop_matcher,
    chat_template,
    request_parsing,
    metrics
);
criterion_main!(benches);
