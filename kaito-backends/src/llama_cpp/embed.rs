//! Embeddings: a second llama.cpp context with mean pooling, created on first use.

use std::num::NonZeroU32;

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::error::{Error, Result};

pub(super) struct Embedder<'m> {
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
}

impl<'m> Embedder<'m> {
    pub(super) fn new(
        model: &'m LlamaModel,
        backend: &LlamaBackend,
        ctx_size: u32,
        threads: i32,
    ) -> Result<Self> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(ctx_size))
            .with_n_batch(ctx_size)
            .with_n_ubatch(ctx_size)
            .with_n_seq_max(1)
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::Mean)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model
            .new_context(backend, params)
            .map_err(|e| Error::Context(e.to_string()))?;
        Ok(Self {
            ctx,
            batch: LlamaBatch::new(ctx_size as usize, 1),
        })
    }

    /// Mean-pooled, L2-normalised embedding of each input.
    pub(super) fn embed(&mut self, inputs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(inputs.len());
        for input in inputs {
            self.ctx.clear_kv_cache();
            self.batch.clear();
            for (pos, token) in input.iter().enumerate() {
                self.batch
                    .add(LlamaToken(*token as i32), pos as i32, &[0], true)
                    .map_err(|e| Error::Decode(e.to_string()))?;
            }
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| Error::Decode(e.to_string()))?;
            let embedding = self
                .ctx
                .embeddings_seq_ith(0)
                .map_err(|_| Error::Decode("no pooled embedding".into()))?;
            let norm = embedding
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
                .sqrt()
                .max(1e-12);
            out.push(embedding.iter().map(|v| v / norm).collect());
        }
        Ok(out)
    }
}
