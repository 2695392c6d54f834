//! `config.json` of a Llama-family Hugging Face checkpoint (Llama, Mistral, Qwen2, SmolLM2).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Architectures the decoder implements (`model_type` in config.json).
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["llama", "mistral", "qwen2"];

/// How positions are scaled before RoPE (`rope_scaling`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor` (`"type": "linear"`).
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent scaling (`"rope_type": "llama3"`).
    Llama3 {
        /// Scale of the low frequencies.
        factor: f64,
        /// Wavelength bound (in original context lengths) below which frequencies are kept.
        low_freq_factor: f64,
        /// Wavelength bound above which frequencies are fully scaled.
        high_freq_factor: f64,
        /// The training context the bounds refer to.
        original_max_position_embeddings: f64,
    },
}

/// The decoder's shape and numerics.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `model_type`.
    pub model_type: String,
    /// Hidden size.
    pub hidden_size: i64,
    /// MLP inner size.
    pub intermediate_size: i64,
    /// Decoder layers.
    pub num_hidden_layers: i64,
    /// Query heads.
    pub num_attention_heads: i64,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: i64,
    /// Size of one head.
    pub head_dim: i64,
    /// Vocabulary size.
    pub vocab_size: i64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE position scaling.
    pub rope_scaling: RopeScaling,
    /// Longest context the model was trained for.
    pub max_position_embeddings: i64,
    /// Output projection shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry a bias (Qwen2).
    pub attention_bias: bool,
    /// Sliding-window attention span (Mistral); `None` = full attention.
    pub sliding_window: Option<i64>,
    /// End-of-sequence token ids listed in config.json.
    pub eos_token_ids: Vec<u32>,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    hidden_size: i64,
    intermediate_size: i64,
    num_hidden_layers: i64,
    num_attention_heads: i64,
    num_key_value_heads: Option<i64>,
    head_dim: Option<i64>,
    vocab_size: i64,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    rope_theta: f64,
    rope_scaling: Option<Value>,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: i64,
    #[serde(default)]
    tie_word_embeddings: bool,
    attention_bias: Option<bool>,
    sliding_window: Option<i64>,
    #[serde(default)]
    use_sliding_window: Option<bool>,
    hidden_act: Option<String>,
    eos_token_id: Option<Value>,
    bos_token_id: Option<u32>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_positions() -> i64 {
    2048
}

/// Token ids from a JSON number or array of numbers.
pub(super) fn token_ids(value: Option<&Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as u32))
            .collect(),
        _ => Vec::new(),
    }
}

impl LlamaConfig {
    /// Reads and checks `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::ModelLoad {
            path: path.display().to_string(),
            message: format!("cannot read config.json: {e}"),
        })?;
        Self::from_json(&text).map_err(|message| Error::ModelLoad {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses config.json text; the error names the offending field.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de)
            .map_err(|e| format!("config.json: {}: {}", e.path(), e.inner()))?;
        let model_type = raw
            .model_type
            .clone()
            .or_else(|| {
                raw.architectures
                    .first()
                    .map(|a| a.trim_end_matches("ForCausalLM").to_lowercase())
            })
            .ok_or("config.json: no `model_type`")?;
        if !SUPPORTED_MODEL_TYPES.contains(&model_type.as_str()) {
            return Err(format!(
                "config.json: model_type `{model_type}` is not supported by the torch backend (supported: {})",
                SUPPORTED_MODEL_TYPES.join(", ")
            ));
        }
        if let Some(act) = &raw.hidden_act {
            if act != "silu" {
                return Err(format!(
                    "config.json: hidden_act `{act}` is not supported (only silu)"
                ));
            }
        }
        let positive = |name: &str, v: i64| {
            if v > 0 {
                Ok(v)
            } else {
                Err(format!("config.json: {name} must be positive, got {v}"))
            }
        };
        let heads = positive("num_attention_heads", raw.num_attention_heads)?;
        let hidden = positive("hidden_size", raw.hidden_size)?;
        let kv_heads = positive(
            "num_key_value_heads",
            raw.num_key_value_heads.unwrap_or(heads),
        )?;
        if heads % kv_heads != 0 {
            return Err(format!(
                "config.json: num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})"
            ));
        }
        let head_dim = match raw.head_dim {
            Some(d) => positive("head_dim", d)?,
            None if hidden % heads == 0 => hidden / heads,
            None => {
                return Err(format!(
                    "config.json: hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads})"
                ))
            }
        };
        if head_dim % 2 != 0 {
            return Err(format!("config.json: head_dim ({head_dim}) must be even"));
        }
        let sliding_window = match (model_type.as_str(), raw.use_sliding_window) {
            (_, Some(false)) => None,
            ("qwen2", None) => None,
            _ => raw.sliding_window,
        };
        Ok(Self {
            attention_bias: raw.attention_bias.unwrap_or(model_type == "qwen2"),
            model_type,
            hidden_size: hidden,
            intermediate_size: positive("intermediate_size", raw.intermediate_size)?,
            num_hidden_layers: positive("num_hidden_layers", raw.num_hidden_layers)?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            vocab_size: positive("vocab_size", raw.vocab_size)?,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta: raw.rope_theta,
            rope_scaling: rope_scaling(raw.rope_scaling.as_ref())?,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings,
            sliding_window,
            eos_token_ids: token_ids(raw.eos_token_id.as_ref()),
            bos_token_id: raw.bos_token_id,
        })
    }

    /// Number of weights (embeddings counted once when tied).
    pub fn parameter_count(&self) -> u64 {
        let (h, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let q = h * self.num_attention_heads * self.head_dim;
        let kv = 2 * h * self.num_key_value_heads * self.head_dim;
        let layer = q + kv + q + 3 * h * i + 2 * h;
        let output = if self.tie_word_embeddings { 0 } else { v * h };
        (v * h + self.num_hidden_layers * layer + h + output) as u64
    }
}

fn rope_scaling(value: Option<&Value>) -> std::result::Result<RopeScaling, String> {
    let Some(Value::Object(map)) = value else {
        return Ok(RopeScaling::None);
    };
    let kind = map
        .get("rope_type")
        .or_else(|| map.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let number = |key: &str| {
        map.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("config.json: rope_scaling.{key} is missing"))
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: number("factor")?,
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: number("factor")?,
            low_freq_factor: number("low_freq_factor")?,
            high_freq_factor: number("high_freq_factor")?,
            original_max_position_embeddings: number("original_max_position_embeddings")?,
        }),
        other => Err(format!(
            "config.json: rope_scaling type `{other}` is not supported (supported: default, linear, llama3)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":576,
        "intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,
        "vocab_size":49152,"rms_norm_eps":1e-5,"rope_theta":100000.0,"max_position_embeddings":8192,
        "tie_word_embeddings":true,"hidden_act":"silu","eos_token_id":2,"bos_token_id":1,"rope_scaling":null}"#;

    #[test]
    fn reads_smollm2() {
        let c = LlamaConfig::from_json(SMOLLM2).unwrap();
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.num_key_value_heads, 3);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.rope_scaling, RopeScaling::None);
        assert_eq!(c.eos_token_ids, vec![2]);
        // SmolLM2-135M: 134.5M weights.
        assert_eq!(c.parameter_count(), 134_515_008);
    }

    #[test]
    fn qwen2_has_qkv_bias_and_llama3_scaling_parses() {
        let qwen = SMOLLM2.replace("\"llama\"", "\"qwen2\"");
        assert!(LlamaConfig::from_json(&qwen).unwrap().attention_bias);
        let scaled = SMOLLM2.replace(
            "\"rope_scaling\":null",
            r#""rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}"#,
        );
        assert!(matches!(
            LlamaConfig::from_json(&scaled).unwrap().rope_scaling,
            RopeScaling::Llama3 { factor, .. } if factor == 8.0
        ));
    }

    #[test]
    fn unsupported_things_are_named() {
        let gpt = SMOLLM2.replace("\"llama\"", "\"gpt_neox\"");
        let e = LlamaConfig::from_json(&gpt).unwrap_err();
        assert!(e.contains("gpt_neox") && e.contains("llama"), "{e}");
        let yarn = SMOLLM2.replace(
            "\"rope_scaling\":null",
            r#""rope_scaling":{"type":"yarn","factor":4.0}"#,
        );
        assert!(LlamaConfig::from_json(&yarn).unwrap_err().contains("yarn"));
        let bad = SMOLLM2.replace("\"hidden_size\":576", "\"hidden_size\":\"wide\"");
        assert!(LlamaConfig::from_json(&bad)
            .unwrap_err()
            .contains("hidden_size"));
        let odd = SMOLLM2.replace("\"num_key_value_heads\":3", "\"num_key_value_heads\":4");
        assert!(LlamaConfig::from_json(&odd)
            .unwrap_err()
            .contains("num_key_value_heads"));
    }
}
