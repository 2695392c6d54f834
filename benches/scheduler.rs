//! Per-step engine work besides the forward pass: the continuous-batching step planner, and
//! log-probabilities (log-sum-exp + top-k) over a 49,152-token vocabulary (SmolLM2's).
//!
//! `cargo bench -p kaito-benches --bench scheduler`
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use kaito_backends::logprobs::top_logprobs;
use kaito_backends::scheduler::{plan_step, SeqProgress};

fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_step");
    for sequences in [8usize, 32, 128] {
        // Half decoding, half in prefill with long prompts.
        let seqs: Vec<SeqProgress> = (0..sequences)
            .map(|i| {
                if i % 2 == 0 {
                    SeqProgress {
                        decoding: true,
                        prompt_len: 100,
                        prefilled: 100,
                    }
                } else {
                    SeqProgress {
                        decoding: false,
                        prompt_len: 2000,
                        prefilled: i * 10,
                    }
                }
            })
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(sequences), &seqs, |b, seqs| {
            b.iter(|| plan_step(black_box(seqs), 512))
        });
    }
    group.finish();
}

fn logprobs(c: &mut Criterion) {
    let logits: Vec<f32> = (0..49_152u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761)) % 1000) as f32 / 100.0)
        .collect();
    c.bench_function("top_logprobs_vocab_49152_k5", |b| {
        b.iter(|| top_logprobs(black_box(&logits), 5))
    });
}

criterion_group!(benches, plan, logprobs);
criterion_main!(benches);
