//! Test support: [`ScriptedBackend`], an engine without a model that answers every request with a
//! fixed text, one byte-token at a time. For testing and benchmarking the server, SSE and
//! scheduling paths without loading weights.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{
    Backend, Capabilities, EngineStats, FinishReason, Footprint, GenerateRequest, GeneratedToken,
    GenerationEvent, GenerationStream, Health,
};
use crate::error::{Error, Result};
use crate::model::ModelInfo;

/// A byte-level "model": token id = byte value; answers with `reply`, up to `max_tokens`.
pub struct ScriptedBackend {
    info: ModelInfo,
    reply: Vec<u8>,
    delay: Duration,
    running: Arc<AtomicUsize>,
}

impl ScriptedBackend {
    /// Answers `reply` to everything; `delay` between tokens (zero: as fast as the channel goes).
    pub fn new(id: &str, reply: &str, delay: Duration) -> Self {
        Self {
            info: ModelInfo {
                id: id.to_owned(),
                path: "scripted".into(),
                architecture: "scripted".into(),
                display_name: None,
                parameters: 0,
                context_length: Some(4096),
                quantization: None,
                layers: None,
                heads: None,
                kv_heads: None,
                embedding_length: Some(4),
                vocab_size: Some(256),
                chat_template: None,
                bos_token: None,
                eos_token: None,
                file_size: 0,
            },
            reply: reply.as_bytes().to_vec(),
            delay,
            running: Arc::new(AtomicUsize::new(0)),
        }
    }
}

struct RunningGuard(Arc<AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Backend for ScriptedBackend {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn model(&self) -> &ModelInfo {
        &self.info
    }
    fn context_size(&self) -> u32 {
        4096
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            embeddings: true,
            constrained_decoding: false,
            logprobs: false,
        }
    }
    fn stats(&self) -> EngineStats {
        EngineStats {
            running: self.running.load(Ordering::SeqCst),
            ..EngineStats::default()
        }
    }
    fn health(&self) -> Health {
        Health::Healthy
    }
    fn footprint(&self) -> Footprint {
        // No weights, no cache: a reply held in memory.
        Footprint {
            weights_bytes: self.reply.len() as u64,
            ..Footprint::default()
        }
    }
    fn tokenize(&self, text: &str, _add_special: bool, _parse_special: bool) -> Result<Vec<u32>> {
        Ok(text.bytes().map(u32::from).collect())
    }
    fn detokenize(&self, tokens: &[u32]) -> Result<String> {
        Ok(
            String::from_utf8_lossy(&tokens.iter().map(|t| *t as u8).collect::<Vec<_>>())
                .into_owned(),
        )
    }
    fn generate(&self, request: GenerateRequest) -> Result<GenerationStream> {
        let (sender, stream) = GenerationStream::channel();
        let reply = self.reply.clone();
        let delay = self.delay;
        self.running.fetch_add(1, Ordering::SeqCst);
        let guard = RunningGuard(self.running.clone());
        tokio::spawn(async move {
            let _guard = guard;
            sender.send(Ok(GenerationEvent::Started {
                queue_time: Duration::ZERO,
                cached_prompt_tokens: 0,
            }));
            let n = (request.max_tokens as usize).min(if request.sampling.ignore_eos {
                usize::MAX
            } else {
                reply.len()
            });
            for i in 0..n {
                if sender.is_cancelled() {
                    return;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let byte = reply[i % reply.len().max(1)];
                let token = GeneratedToken {
                    id: u32::from(byte),
                    bytes: vec![byte],
                    logprob: None,
                };
                sender.send(Ok(GenerationEvent::Token(token)));
            }
            let reason = if n < reply.len() || request.sampling.ignore_eos {
                FinishReason::Length
            } else {
                FinishReason::Stop
            };
            sender.send(Ok(GenerationEvent::Finished { reason }));
        });
        Ok(stream)
    }
    async fn embed(&self, inputs: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>> {
        if inputs.iter().any(Vec::is_empty) {
            return Err(Error::request("input", "empty input"));
        }
        Ok(inputs.iter().map(|_| vec![0.5, 0.5, 0.5, 0.5]).collect())
    }
}
