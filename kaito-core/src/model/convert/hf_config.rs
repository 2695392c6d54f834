//! `config.json` and `generation_config.json` of a Hugging Face `LlamaForCausalLM`, from GGUF metadata.

use serde::Serialize;
use serde_json::{json, Value};

use crate::model::gguf::{GgufHeader, GgufValue};

use super::dtype::OutputDType;

/// The `config.json` of a Hugging Face Llama checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HfLlamaConfig {
    /// `["LlamaForCausalLM"]`.
    pub architectures: Vec<String>,
    /// `llama`.
    pub model_type: String,
    /// Width of the residual stream (`{arch}.embedding_length`).
    pub hidden_size: u64,
    /// Width of the MLP (`{arch}.feed_forward_length`).
    pub intermediate_size: u64,
    /// Transformer blocks (`{arch}.block_count`).
    pub num_hidden_layers: u64,
    /// Query heads.
    pub num_attention_heads: u64,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: u64,
    /// Dimension of one head.
    pub head_dim: u64,
    /// `silu`.
    pub hidden_act: String,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// RoPE scaling (`null` unless the GGUF scales RoPE).
    pub rope_scaling: Option<Value>,
    /// Training context length.
    pub max_position_embeddings: u64,
    /// Rows of the embedding matrix.
    pub vocab_size: u64,
    /// `true` when the GGUF has no `output.weight` (the LM head reuses the embeddings).
    pub tie_word_embeddings: bool,
    /// Whether q/k/v/o projections have biases.
    pub attention_bias: bool,
    /// Whether the MLP projections have biases.
    pub mlp_bias: bool,
    /// Always 0: inference only.
    pub attention_dropout: f64,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u64>,
    /// End-of-sequence token id.
    pub eos_token_id: Option<u64>,
    /// Padding token id.
    pub pad_token_id: Option<u64>,
    /// Element type of the weights (`float32`, `bfloat16`, `float16`).
    pub torch_dtype: String,
    /// Always `true`.
    pub use_cache: bool,
}

impl HfLlamaConfig {
    /// Reads the hyperparameters of a `llama` GGUF. Errors name the missing or unsupported key.
    pub fn from_gguf(header: &GgufHeader, dtype: OutputDType) -> Result<Self, String> {
        let arch = header.architecture().unwrap_or("");
        if arch != "llama" {
            return Err(format!(
                "architecture `{arch}` is not supported: the converter writes Llama checkpoints from `llama` GGUFs"
            ));
        }
        let required = |suffix: &str| {
            header
                .arch_u64(suffix)
                .filter(|v| *v > 0)
                .ok_or_else(|| format!("GGUF lacks {arch}.{suffix}"))
        };
        let hidden_size = required("embedding_length")?;
        let num_attention_heads = required("attention.head_count")?;
        let num_key_value_heads = header
            .arch_u64("attention.head_count_kv")
            .unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(format!(
                "{num_attention_heads} attention heads do not share {num_key_value_heads} key/value heads evenly"
            ));
        }
        let head_dim = match header.arch_u64("attention.key_length") {
            Some(k) => k,
            None if hidden_size % num_attention_heads == 0 => hidden_size / num_attention_heads,
            None => {
                return Err(format!(
                "embedding length {hidden_size} is not a multiple of {num_attention_heads} heads"
            ))
            }
        };
        if let Some(v) = header.arch_u64("attention.value_length") {
            if v != head_dim {
                return Err(format!(
                    "value heads of {v} and key heads of {head_dim} differ, which Llama does not allow"
                ));
            }
        }
        if let Some(rotary) = header.arch_u64("rope.dimension_count") {
            if rotary != head_dim {
                return Err(format!(
                    "RoPE rotates {rotary} of {head_dim} head dimensions; Llama rotates all of them"
                ));
            }
        }
        let rms_norm_eps = header
            .arch_value("attention.layer_norm_rms_epsilon")
            .and_then(GgufValue::as_f64)
            .ok_or_else(|| format!("GGUF lacks {arch}.attention.layer_norm_rms_epsilon"))?;
        let rope_theta = header
            .arch_value("rope.freq_base")
            .and_then(GgufValue::as_f64)
            .unwrap_or(10_000.0);
        let vocab_size = match header.arch_u64("vocab_size") {
            Some(v) => v,
            None => match header.get("tokenizer.ggml.tokens") {
                Some(GgufValue::StringArray(tokens)) => tokens.len() as u64,
                _ => return Err(format!("GGUF lacks {arch}.vocab_size and a vocabulary")),
            },
        };
        let has_tensor = |suffix: &str| header.tensors.iter().any(|t| t.name.ends_with(suffix));
        let token_id = |key: &str| header.get(key).and_then(GgufValue::as_u64);
        Ok(Self {
            architectures: vec!["LlamaForCausalLM".to_owned()],
            model_type: "llama".to_owned(),
            hidden_size,
            intermediate_size: required("feed_forward_length")?,
            num_hidden_layers: required("block_count")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            hidden_act: "silu".to_owned(),
            rms_norm_eps: shortest_f32(rms_norm_eps),
            rope_theta: shortest_f32(rope_theta),
            rope_scaling: rope_scaling(header)?,
            max_position_embeddings: required("context_length")?,
            vocab_size,
            tie_word_embeddings: header.tensor("output.weight").is_none(),
            attention_bias: has_tensor(".attn_q.bias"),
            mlp_bias: has_tensor(".ffn_up.bias"),
            attention_dropout: 0.0,
            bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
            eos_token_id: token_id("tokenizer.ggml.eos_token_id"),
            pad_token_id: token_id("tokenizer.ggml.padding_token_id"),
            torch_dtype: dtype.torch_name().to_owned(),
            use_cache: true,
        })
    }

    /// `generation_config.json`: the special token ids generation stops and pads with.
    pub fn generation_config(&self) -> Value {
        let mut config = json!({});
        for (key, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
            ("pad_token_id", self.pad_token_id),
        ] {
            if let Some(id) = id {
                config[key] = json!(id);
            }
        }
        config
    }
}

/// GGUF stores floats as f32: `1e-5` arrives as 9.99999974e-6. Writes the shortest decimal that reads
/// back as the same f32, which is the value the original config held.
fn shortest_f32(value: f64) -> f64 {
    let single = value as f32;
    single.to_string().parse().unwrap_or(value)
}

/// `rope_scaling` from `{arch}.rope.scaling.*` (or the older `{arch}.rope.scale_linear`).
fn rope_scaling(header: &GgufHeader) -> Result<Option<Value>, String> {
    let factor = header
        .arch_value("rope.scaling.factor")
        .and_then(GgufValue::as_f64);
    let kind = header
        .arch_value("rope.scaling.type")
        .and_then(GgufValue::as_str);
    if header.tensor("rope_freqs.weight").is_some() {
        return Err(
            "the GGUF scales RoPE with a rope_freqs.weight tensor (Llama 3.1 style), which config.json cannot express from GGUF metadata".to_owned(),
        );
    }
    match (kind, factor) {
        (None | Some("none"), _) => Ok(header
            .arch_value("rope.scale_linear")
            .and_then(GgufValue::as_f64)
            .filter(|f| *f != 1.0)
            .map(|f| json!({"rope_type": "linear", "factor": shortest_f32(f)}))),
        (Some("linear"), Some(f)) => Ok(Some(
            json!({"rope_type": "linear", "factor": shortest_f32(f)}),
        )),
        (Some("yarn"), Some(f)) => {
            let original = header
                .arch_u64("rope.scaling.original_context_length")
                .ok_or("YaRN RoPE scaling without rope.scaling.original_context_length")?;
            Ok(Some(json!({
                "rope_type": "yarn",
                "factor": shortest_f32(f),
                "original_max_position_embeddings": original,
            })))
        }
        (Some(other), _) => Err(format!(
            "RoPE scaling `{other}` is not supported (none, linear and yarn with a factor are)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(entries: &[(&str, GgufValue)]) -> GgufHeader {
        let mut h = GgufHeader::default();
        h.metadata.insert(
            "general.architecture".into(),
            GgufValue::String("llama".into()),
        );
        for (k, v) in entries {
            h.metadata.insert((*k).to_owned(), v.clone());
        }
        h
    }

    fn smollm2_like() -> Vec<(&'static str, GgufValue)> {
        vec![
            ("llama.embedding_length", GgufValue::UInt(576)),
            ("llama.feed_forward_length", GgufValue::UInt(1536)),
            ("llama.block_count", GgufValue::UInt(30)),
            ("llama.attention.head_count", GgufValue::UInt(9)),
            ("llama.attention.head_count_kv", GgufValue::UInt(3)),
            ("llama.context_length", GgufValue::UInt(8192)),
            ("llama.vocab_size", GgufValue::UInt(49152)),
            ("llama.rope.freq_base", GgufValue::Float(100000.0)),
            ("llama.rope.dimension_count", GgufValue::UInt(64)),
            (
                "llama.attention.layer_norm_rms_epsilon",
                GgufValue::Float(f64::from(1e-5f32)),
            ),
            ("tokenizer.ggml.bos_token_id", GgufValue::UInt(1)),
            ("tokenizer.ggml.eos_token_id", GgufValue::UInt(2)),
        ]
    }

    #[test]
    fn reads_llama_hyperparameters() {
        let config = HfLlamaConfig::from_gguf(&header(&smollm2_like()), OutputDType::BF16).unwrap();
        assert_eq!(config.head_dim, 64);
        assert_eq!(config.num_key_value_heads, 3);
        assert_eq!(config.rms_norm_eps, 1e-5);
        assert_eq!(config.rope_theta, 100000.0);
        assert_eq!(config.rope_scaling, None);
        assert!(config.tie_word_embeddings);
        assert_eq!(config.torch_dtype, "bfloat16");
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["rope_scaling"], Value::Null);
        assert_eq!(json["pad_token_id"], Value::Null);
        assert_eq!(
            config.generation_config(),
            json!({"bos_token_id": 1, "eos_token_id": 2})
        );
    }

    #[test]
    fn rope_scaling_and_rejections() {
        let mut entries = smollm2_like();
        entries.push((
            "llama.rope.scaling.type",
            GgufValue::String("linear".into()),
        ));
        entries.push(("llama.rope.scaling.factor", GgufValue::Float(4.0)));
        let config = HfLlamaConfig::from_gguf(&header(&entries), OutputDType::F32).unwrap();
        assert_eq!(
            config.rope_scaling,
            Some(json!({"rope_type": "linear", "factor": 4.0}))
        );

        let mut entries = smollm2_like();
        entries.push(("llama.rope.dimension_count", GgufValue::UInt(32)));
        let err = HfLlamaConfig::from_gguf(&header(&entries), OutputDType::F32).unwrap_err();
        assert!(err.contains("rotates 32 of 64"), "{err}");

        let mut h = header(&smollm2_like());
        h.tensors.push(crate::model::gguf::GgufTensorInfo {
            name: "rope_freqs.weight".into(),
            dims: vec![32],
            ggml_type: crate::model::gguf::GgmlType::F32,
            offset: 0,
        });
        let err = HfLlamaConfig::from_gguf(&h, OutputDType::F32).unwrap_err();
        assert!(err.contains("rope_freqs.weight"), "{err}");

        let mut h = header(&smollm2_like());
        h.metadata.insert(
            "general.architecture".into(),
            GgufValue::String("qwen2".into()),
        );
        let err = HfLlamaConfig::from_gguf(&h, OutputDType::F32).unwrap_err();
        assert!(err.contains("`qwen2` is not supported"), "{err}");

        let entries: Vec<_> = smollm2_like()
            .into_iter()
            .filter(|(k, _)| *k != "llama.block_count")
            .collect();
        let err = HfLlamaConfig::from_gguf(&header(&entries), OutputDType::F32).unwrap_err();
        assert_eq!(err, "GGUF lacks llama.block_count");
    }
}
