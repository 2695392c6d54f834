//! Cross-check of the two engines on the same weights: the torch backend runs SmolLM2 converted
//! from the GGUF (`kaito convert`, dequantized to f32) and must choose the same greedy tokens as
//! llama.cpp does on the GGUF, for the first 32 tokens of several prompts (or up to where both
//! end the answer, which `ignore_eos` writes past). Where they part, the
//! two candidates must be a near-tie (llama.cpp multiplies Q4_1 weights by 8-bit-quantized
//! activations, torch by f32 ones, so their logits differ by a little: measured median 0.02, max
//! 0.21 in logprob over the agreeing steps). `scripts/reference-forward.py` (numpy, float64) gives
//! the torch engine's logprobs to 1e-4 at the parting points, so the parting is llama.cpp's rounding,
//! not a decoder bug.
#![cfg(all(feature = "llama-cpp", feature = "torch"))]

mod test_models;

use std::sync::Arc;

use futures::StreamExt;
use kaito_core::{Backend, EngineConfig, GenerateRequest, GenerationEvent, SamplingParams};

fn config() -> EngineConfig {
    EngineConfig::default()
        .with_ctx_size(512)
        .with_parallel(1)
        .with_deterministic(true)
}

/// Greedy tokens and, per step, the top-5 (token, logprob).
async fn greedy(backend: &Arc<dyn Backend>, prompt: &str) -> Vec<(u32, Vec<(u32, f32)>)> {
    let tokens = backend.tokenize(prompt, false, true).unwrap();
    let mut stream = backend
        .generate(
            GenerateRequest::new("cross-check", tokens, 32)
                .with_sampling(SamplingParams {
                    ignore_eos: true,
                    ..SamplingParams::greedy()
                })
                .with_logprobs(Some(5)),
        )
        .unwrap();
    let mut out = Vec::new();
    while let Some(event) = stream.next().await {
        if let GenerationEvent::Token(t) = event.unwrap() {
            let top = t.logprob.unwrap().top;
            out.push((t.id, top.into_iter().map(|(id, _, lp)| (id, lp)).collect()));
        }
    }
    out
}

fn chat(user: &str) -> String {
    format!("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_tokens_match_llama_cpp_or_part_at_a_near_tie() {
    let gguf = test_models::gguf();
    let hf = test_models::hf_dir();
    let llama = kaito_backends::load(&gguf, "gguf", &config()).unwrap();
    let torch = kaito_backends::load(&hf, "hf", &config()).unwrap();
    assert_eq!(torch.name(), "torch");
    let prompts = [
        chat("What is the capital of France?"),
        chat("Write a haiku about the sea."),
        chat("List three prime numbers."),
        "The quick brown fox".to_owned(),
        "def fibonacci(n):".to_owned(),
    ];
    let im_end = llama.tokenize("<|im_end|>", false, true).unwrap()[0];
    let mut identical = 0;
    // |logprob(llama.cpp) − logprob(torch)| of the shared greedy token, over the agreeing steps.
    let mut deviations = Vec::new();
    for prompt in &prompts {
        let a = greedy(&llama, prompt).await;
        let b = greedy(&torch, prompt).await;
        assert_eq!(a.len(), 32);
        assert_eq!(b.len(), 32);
        // Compared up to where both would end the answer: `ignore_eos` never samples <|im_end|>,
        // and past it the model writes on with nothing left to say, near-ties at every token.
        let end = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x.1[0].0 == im_end && y.1[0].0 == im_end)
            .unwrap_or(32);
        let parts = a.iter().zip(&b).take(end).position(|(x, y)| x.0 != y.0);
        for (x, y) in a.iter().zip(&b).take(parts.unwrap_or(end)) {
            deviations.push((x.1[0].1 - y.1[0].1).abs());
        }
        match parts {
            None => identical += 1,
            Some(step) => {
                // Both engines' own margin between their choice and the other's at that step.
                let margin = |top: &[(u32, f32)], other: u32| {
                    let chosen = top[0].1;
                    top.iter()
                        .find(|(id, _)| *id == other)
                        .map_or(f32::INFINITY, |(_, lp)| chosen - lp)
                };
                let (la, lb) = (&a[step], &b[step]);
                let m = margin(&la.1, lb.0).min(margin(&lb.1, la.0));
                eprintln!(
                    "{prompt:?}: parts at token {step} (llama.cpp {} vs torch {}), logprob margin {m:.4}\n  prompt+generated {:?}\n  llama.cpp top {:?}\n  torch top {:?}",
                    la.0,
                    lb.0,
                    llama.tokenize(prompt, false, true).unwrap().into_iter().chain(a[..step].iter().map(|t| t.0)).collect::<Vec<_>>(),
                    la.1,
                    lb.1
                );
                assert!(
                    m < 0.25,
                    "{prompt:?}: the engines part at token {step} ({} vs {}) with a margin of {m} — not a near-tie",
                    la.0,
                    lb.0
                );
            }
        }
    }
    deviations.sort_by(f32::total_cmp);
    let median = deviations[deviations.len() / 2];
    let max = deviations[deviations.len() - 1];
    eprintln!(
        "{identical}/{} prompts identical for 32 tokens or to the end of their answer; chosen-token logprob deviation over {} agreeing steps: median {median:.4}, max {max:.4}",
        prompts.len(),
        deviations.len()
    );
    assert!(
        identical >= 2,
        "only {identical} of {} prompts gave identical greedy runs",
        prompts.len()
    );
}
