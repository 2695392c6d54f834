//! One engine step of greedy decoding, per engine, on the same SmolLM2-135M-Instruct weights and
//! one thread: llama-cpp (Q4_1 GGUF), torch (f32) and quant (int8, int4 quantized at load from
//! the f32 checkpoint), with 1 and 4 sequences decoding together.
//!
//! ```text
//! eval "$(scripts/libtorch-env.sh)"
//! cargo bench -p kaito-benches --features quant --bench decode_step
//! ```
//!
//! `KAITO_TEST_MODEL` names the GGUF (default: the bundled preset, fetched into the cache once);
//! `KAITO_TEST_HF_DIR` the Hugging Face checkpoint of it (default: converted from the GGUF into
//! the cache once, as the backend tests do).
//!
//! A measured iteration is one decode step: every sequence gets one new token. Each run starts
//! the sequences (engine defaults: batching, prefix reuse), waits until all have their first token
//! (prompt processing is not timed), then times the remaining 16 to 256 steps through the
//! `Backend` trait's token streams. The reported throughput is tokens per second (batch × steps).
#![allow(missing_docs)] // criterion_group! generates undocumented items.

#[path = "../kaito-backends/tests/test_models/mod.rs"]
mod test_models;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use futures::StreamExt;
use kaito_core::chat_template::ChatTemplate;
use kaito_core::{Backend, EngineConfig, GenerateRequest, GenerationEvent, SamplingParams};

/// Decode steps timed per run at least: a few steps at either end of a run may see fewer than
/// `batch` sequences decoding, so short runs are stretched and their time scaled to the count
/// criterion asked for.
const MIN_STEPS_PER_RUN: u64 = 16;
/// Decode steps timed per run at most (runs are repeated to reach criterion's iteration count);
/// prompt plus steps stay well inside the 1024-token context.
const MAX_STEPS_PER_RUN: u64 = 256;

/// Questions the sequences of one run answer (one each).
const QUESTIONS: [&str; 4] = [
    "Write a long story about a dragon.",
    "Describe the history of Paris.",
    "Explain how rain forms.",
    "List the planets and describe each.",
];

/// The engine configuration of every engine here: one thread, four sequences, serving defaults.
#[cfg_attr(not(any(feature = "llama-cpp", feature = "torch")), allow(dead_code))]
fn engine_config() -> EngineConfig {
    EngineConfig::default()
        .with_threads(1)
        .with_parallel(4)
        .with_ctx_size(1024)
}

/// The engines compiled in, by label, each loaded once.
fn engines() -> Vec<(&'static str, Arc<dyn Backend>)> {
    #[allow(unused_mut)] // Empty without engine features.
    let mut engines: Vec<(&'static str, Arc<dyn Backend>)> = Vec::new();
    #[cfg(feature = "llama-cpp")]
    {
        let gguf = test_models::gguf();
        let backend = kaito_backends::load(&gguf, "smollm2", &engine_config())
            .unwrap_or_else(|e| panic!("llama-cpp: {e}"));
        engines.push(("llama-cpp-q4_1", backend));
    }
    #[cfg(feature = "torch")]
    {
        let dir = test_models::hf_dir();
        let mut config = engine_config();
        config.backend = kaito_core::BackendKind::Torch;
        let backend =
            kaito_backends::load(&dir, "smollm2", &config).unwrap_or_else(|e| panic!("torch: {e}"));
        engines.push(("torch-f32", backend));
        #[cfg(feature = "quant")]
        for (label, scheme) in [("quant-int8", "int8"), ("quant-int4", "int4")] {
            let mut config = engine_config();
            config.backend = kaito_core::BackendKind::Quant;
            config.quantization = Some(scheme.to_owned());
            let backend = kaito_backends::load(&dir, "smollm2", &config)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            engines.push((label, backend));
        }
    }
    engines
}

/// The chat prompts of [`QUESTIONS`], through the model's template.
fn prompts(backend: &dyn Backend) -> Vec<Vec<u32>> {
    let template = ChatTemplate::for_model(backend.model()).expect("chat template");
    QUESTIONS
        .iter()
        .map(|q| {
            let messages = [
                serde_json::json!({"role": "system", "content": "You are a helpful assistant."}),
                serde_json::json!({"role": "user", "content": q}),
            ];
            let text = template.render(&messages, None, true).expect("render");
            backend.tokenize(&text, true, true).expect("tokenize")
        })
        .collect()
}

/// Runs `batch` sequences to `steps` decode steps after their first token; returns the time of
/// those steps.
async fn timed_run(
    backend: &dyn Backend,
    prompts: &[Vec<u32>],
    batch: usize,
    steps: u64,
) -> Duration {
    let mut streams: Vec<_> = prompts[..batch]
        .iter()
        .map(|prompt| {
            backend
                .generate(
                    GenerateRequest::new("bench", prompt.clone(), steps as u32 + 1).with_sampling(
                        SamplingParams {
                            ignore_eos: true,
                            ..SamplingParams::greedy()
                        },
                    ),
                )
                .expect("generate")
        })
        .collect();
    for stream in &mut streams {
        loop {
            match stream.next().await.expect("open").expect("no error") {
                GenerationEvent::Token(_) => break,
                GenerationEvent::Started { .. } => {}
                GenerationEvent::Finished { .. } => panic!("finished before its first token"),
            }
        }
    }
    let start = Instant::now();
    let tokens = futures::future::join_all(streams.into_iter().map(|mut stream| async move {
        let mut tokens = 0u64;
        while let Some(event) = stream.next().await {
            match event.expect("no error") {
                GenerationEvent::Token(_) => tokens += 1,
                GenerationEvent::Finished { .. } => break,
                GenerationEvent::Started { .. } => {}
            }
        }
        tokens
    }))
    .await;
    let elapsed = start.elapsed();
    assert!(tokens.iter().all(|&t| t == steps), "{tokens:?} ≠ {steps}");
    elapsed
}

fn decode_step(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("decode_step");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (label, backend) in engines() {
        let prompts = prompts(&*backend);
        for batch in [1usize, 4] {
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(
                BenchmarkId::new(label, format!("batch{batch}")),
                &batch,
                |b, &batch| {
                    b.to_async(&rt).iter_custom(|steps| {
                        let backend = backend.clone();
                        let prompts = prompts.clone();
                        async move {
                            let mut total = Duration::ZERO;
                            let mut left = steps;
                            while left > 0 {
                                let run = left.min(MAX_STEPS_PER_RUN);
                                let timed = run.max(MIN_STEPS_PER_RUN);
                                let elapsed = timed_run(&*backend, &prompts, batch, timed).await;
                                total += elapsed.mul_f64(run as f64 / timed as f64);
                                left -= run;
                            }
                            total
                        }
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, decode_step);
criterion_main!(benches);
