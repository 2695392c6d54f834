//! Loading and unloading the real SmolLM2 model many times in one process returns the memory: a
//! process that swaps models (a registry loading and unloading them) must not grow with each swap.
//! One test in its own binary, so that no other test's allocations move the process's RSS. It
//! also checks what `Backend::footprint` reports and what `Backend::shutdown` does to requests.
#![cfg(feature = "llama-cpp")]

mod test_models;

use std::sync::Arc;

use futures::StreamExt;
use kaito_core::{Backend, EngineConfig, GenerateRequest, GenerationEvent, SamplingParams};

/// Cycles measured after the warm-up cycles.
const CYCLES: usize = 50;
/// What the process may have grown by after them (allocator arenas, llama.cpp's lazily built
/// tables); one leaked model would be ~100 MiB, one leaked context several MiB each cycle.
const MARGIN_KIB: u64 = 24 * 1024;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn request(backend: &dyn Backend, max_tokens: u32) -> GenerateRequest {
    let prompt = backend
        .tokenize("Write a long story about a lighthouse.", true, false)
        .expect("tokenize");
    // Every token counts: the model's end-of-text does not end it early.
    GenerateRequest::new("cycle", prompt, max_tokens).with_sampling(SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy()
    })
}

/// Drains a generation; returns its tokens and the error it ended with, if any.
async fn drain(backend: &dyn Backend, max_tokens: u32) -> (usize, Option<String>) {
    let mut stream = backend
        .generate(request(backend, max_tokens))
        .expect("generate");
    let mut tokens = 0;
    while let Some(event) = stream.next().await {
        match event {
            Ok(GenerationEvent::Token(_)) => tokens += 1,
            Ok(GenerationEvent::Finished { .. }) => return (tokens, None),
            Ok(GenerationEvent::Started { .. }) => {}
            Err(e) => return (tokens, Some(e.to_string())),
        }
    }
    (tokens, None)
}

#[test]
fn loading_and_unloading_fifty_times_returns_the_memory() {
    let path = test_models::gguf();
    // Two sequences, so that the prefix cache (kept from finished prompts) holds something too.
    let config = EngineConfig::default()
        .with_threads(1)
        .with_ctx_size(256)
        .with_parallel(2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cycle = || {
        let backend: Arc<dyn Backend> =
            kaito_backends::load(&path, "smollm2", &config).expect("load model");
        let (tokens, error) = runtime.block_on(drain(&*backend, 4));
        assert_eq!((tokens, error), (4, None));
        backend.shutdown();
        drop(backend);
    };

    // What the engine holds: the weights (about the file's size), a KV cache of 2 × 256 cells
    // (SmolLM2-135M: 30 layers, 3 KV heads of 64, f16 keys and values), and, once a request
    // finished, its prompt's KV in the prefix cache.
    let backend = kaito_backends::load(&path, "smollm2", &config).expect("load model");
    let file = std::fs::metadata(&path).expect("model file").len();
    let footprint = backend.footprint();
    assert!(
        footprint.weights_bytes > file / 2 && footprint.weights_bytes <= file,
        "{footprint:?} for a {file}-byte file"
    );
    assert_eq!(footprint.kv_cache_bytes, 2 * 256 * 30 * 3 * 64 * 2 * 2);
    assert_eq!(footprint.prefix_cache_bytes, 0);
    runtime.block_on(drain(&*backend, 2));
    assert!(backend.footprint().prefix_cache_bytes > 0);

    // A request running when the engine shuts down ends with an error saying so; later requests
    // are refused; a second shutdown does nothing.
    let running = {
        let backend = backend.clone();
        runtime.spawn(async move { drain(&*backend, 200).await })
    };
    runtime.block_on(async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    });
    backend.shutdown();
    let (tokens, error) = runtime.block_on(running).expect("join");
    assert!(
        tokens < 200,
        "the generation ran to its end ({tokens} tokens)"
    );
    let error = error.unwrap_or_else(|| {
        panic!("the running request ended without an error after {tokens} tokens")
    });
    assert!(error.contains("shut down"), "{error}");
    let refused = backend.generate(request(&*backend, 1));
    assert!(refused.is_err(), "a request after shutdown was accepted");
    backend.shutdown();
    drop(backend);

    // Warm-up cycles: the allocator's arenas and llama.cpp's one-time state settle.
    for _ in 0..5 {
        cycle();
    }
    let before = rss_kib();
    for _ in 0..CYCLES {
        cycle();
    }
    let after = rss_kib();
    println!("RSS after warm-up {before} KiB, after {CYCLES} more load/unload cycles {after} KiB");
    assert!(
        after <= before + MARGIN_KIB,
        "RSS grew from {before} KiB to {after} KiB over {CYCLES} load/unload cycles (margin {MARGIN_KIB} KiB)"
    );
}
