//! OpenAI wire types: requests as clients send them, responses as clients expect them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A string or a list of strings (`stop`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl StringOrList {
    /// As a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

/// Sampling fields shared by chat and text completions (copied out of either request).
#[derive(Debug, Clone, Default)]
pub struct SamplingFields {
    /// New-token limit.
    pub max_tokens: Option<i64>,
    /// 0..2.
    pub temperature: Option<f32>,
    /// (0, 1].
    pub top_p: Option<f32>,
    /// ≥ 0 (extension).
    pub top_k: Option<i64>,
    /// [0, 1] (extension).
    pub min_p: Option<f32>,
    /// RNG seed.
    pub seed: Option<i64>,
    /// Stop strings.
    pub stop: Option<StringOrList>,
    /// −2..2.
    pub presence_penalty: Option<f32>,
    /// −2..2.
    pub frequency_penalty: Option<f32>,
    /// Number of choices.
    pub n: Option<i64>,
    /// Stream as server-sent events.
    pub stream: bool,
    /// `{"include_usage": true}`.
    pub stream_options: Option<StreamOptions>,
    /// Generate exactly `max_tokens`.
    pub ignore_eos: bool,
}

/// Declares a request struct with the sampling fields inline (not `flatten`, so type errors name the field).
macro_rules! with_sampling_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            /// New-token limit.
            pub max_tokens: Option<i64>,
            /// 0..2.
            pub temperature: Option<f32>,
            /// (0, 1].
            pub top_p: Option<f32>,
            /// ≥ 0 (extension).
            pub top_k: Option<i64>,
            /// [0, 1] (extension).
            pub min_p: Option<f32>,
            /// RNG seed.
            pub seed: Option<i64>,
            /// Stop strings.
            pub stop: Option<StringOrList>,
            /// −2..2.
            pub presence_penalty: Option<f32>,
            /// −2..2.
            pub frequency_penalty: Option<f32>,
            /// Number of choices.
            pub n: Option<i64>,
            /// Stream as server-sent events.
            #[serde(default)]
            pub stream: bool,
            /// `{"include_usage": true}`.
            pub stream_options: Option<StreamOptions>,
            /// Extension (vLLM, llama.cpp): generate exactly `max_tokens`, ignoring end-of-generation.
            #[serde(default)]
            pub ignore_eos: bool,
        }

        impl $name {
            /// The sampling fields.
            pub fn sampling(&self) -> SamplingFields {
                SamplingFields {
                    max_tokens: self.max_tokens,
                    temperature: self.temperature,
                    top_p: self.top_p,
                    top_k: self.top_k,
                    min_p: self.min_p,
                    seed: self.seed,
                    stop: self.stop.clone(),
                    presence_penalty: self.presence_penalty,
                    frequency_penalty: self.frequency_penalty,
                    n: self.n,
                    stream: self.stream,
                    stream_options: self.stream_options.clone(),
                    ignore_eos: self.ignore_eos,
                }
            }
        }
    };
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a final usage chunk.
    #[serde(default)]
    pub include_usage: bool,
}

with_sampling_fields! {
/// `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct ChatCompletionRequest {
    /// Model id.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Value>,
    /// Newer name for `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    /// Return logprobs of the sampled tokens.
    #[serde(default)]
    pub logprobs: bool,
    /// Alternatives per position (0..20); needs `logprobs`.
    pub top_logprobs: Option<i64>,
    /// `{"type": "text" | "json_object" | "json_schema", ...}`.
    pub response_format: Option<Value>,
    /// Function tools.
    pub tools: Option<Vec<Value>>,
    /// `none`, `auto`, `required` or `{"type":"function","function":{"name":...}}`.
    pub tool_choice: Option<Value>,
}
}

with_sampling_fields! {
/// `POST /v1/completions` body.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct CompletionRequest {
    /// Model id.
    pub model: String,
    /// Prompt text (or a one-element list of text).
    pub prompt: Value,
    /// Alternatives per position (0..5).
    pub logprobs: Option<i64>,
    /// Echo the prompt before the completion.
    #[serde(default)]
    pub echo: bool,
}
}

/// `POST /v1/embeddings` body.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct EmbeddingRequest {
    /// Model id.
    pub model: String,
    /// A string, a list of strings, a token list or a list of token lists.
    pub input: Value,
    /// `float` (default) or `base64`.
    pub encoding_format: Option<String>,
    /// Truncate to this many dimensions.
    pub dimensions: Option<i64>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Sum.
    pub total_tokens: u32,
    /// Prompt tokens served from cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PromptTokensDetails {
    /// Prompt tokens reused from the prefix cache.
    pub cached_tokens: u32,
}

impl Usage {
    /// Usage from counts.
    pub fn new(prompt: u32, completion: u32, cached: u32) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: cached,
            }),
        }
    }
}

/// A model listed by `GET /v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCard {
    /// Id.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Always `kaito`.
    pub owned_by: &'static str,
    /// Context window of one sequence.
    pub max_model_len: u32,
}
