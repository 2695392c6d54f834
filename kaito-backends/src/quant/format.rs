//! The on-disk format of kaito's pre-quantized checkpoints (`format_version` 2).
//!
//! A quantized checkpoint is a directory laid out like a Hugging Face checkpoint:
//!
//! ```text
//! config.json                 copied from the source checkpoint (unchanged)
//! tokenizer.json, tokenizer_config.json, generation_config.json, ...   copied
//! model.safetensors           all tensors, in one file
//! quantization_config.json    marks the directory as quantized (below)
//! ```
//!
//! In `model.safetensors`, every quantized linear layer `NAME` (a module path such as
//! `model.layers.0.self_attn.q_proj`) has no `NAME.weight`; instead it has:
//!
//! | tensor | INT8 | INT4 |
//! |---|---|---|
//! | `NAME.qweight` | `I8 [out, in]`: codes in `-127..=127` | `U8 [out, in/2]`: two codes in `0..=15` per byte, byte `b` of a row holding input `2b` in its high nibble and `2b + 1` in its low nibble |
//! | `NAME.scales` | `F32 [out]`: one scale per output channel | `F16 [out, in/G]`: one scale per group of `G` consecutive inputs |
//! | `NAME.zeros` | absent | `U8 [out, in/G]`: one zero point per group, in sixteenths of a code (`z = zeros / 16`, `0..=15.9375`) |
//!
//! and the weight is `W[o, i] = qweight[o, i] * scales[o]` (INT8) or
//! `W[o, i] = (q[o, i] - zeros[o, i / G] / 16) * scales[o, i / G]` (INT4, `q` the unpacked code).
//! `G` is `in / scales.shape[1]`: the configured `group_size` unless `in` is not a multiple of it,
//! in which case the quantizer halved it until it divided `in`. Every other tensor (embeddings,
//! norms, `lm_head`, biases) is kept as in the source, in its float dtype.
//!
//! `quantization_config.json`:
//!
//! ```json
//! {
//!   "quant_method": "kaito",
//!   "scheme": "int4",
//!   "group_size": 128,
//!   "format_version": 2,
//!   "modules": ["model.layers.0.self_attn.q_proj", "..."]
//! }
//! ```
//!
//! `scheme` is `"int8"` or `"int4"`; `group_size` is present for INT4 only; `modules` lists every
//! quantized linear layer (module paths, without `.weight`). A loader that finds this file with
//! `quant_method` `"kaito"` builds those layers with
//! [`QuantLinear::from_tensors`](super::QuantLinear::from_tensors) and everything else as usual.
//!
//! Version 1 stored integer INT4 zero points (`zeros` in `0..=15`, no `/ 16`); it is not read
//! (a loader would misread its zero points): quantize the source checkpoint again.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::scheme::{QuantScheme, DEFAULT_INT4_GROUP_SIZE};
use crate::error::{Error, Result};

/// The file that marks a directory as a kaito quantized checkpoint.
pub const QUANTIZATION_CONFIG_FILE: &str = "quantization_config.json";
/// The single weights file of a quantized checkpoint.
pub const MODEL_FILE: &str = "model.safetensors";
/// `quant_method` of this format.
pub const QUANT_METHOD: &str = "kaito";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 2;

/// Suffix of a quantized layer's codes.
pub(crate) const QWEIGHT: &str = "qweight";
/// Suffix of a quantized layer's scales.
pub(crate) const SCALES: &str = "scales";
/// Suffix of an INT4 layer's zero points.
pub(crate) const ZEROS: &str = "zeros";

/// The linear layers of a Llama-family decoder layer that are quantized.
pub const QUANTIZED_PROJECTIONS: [&str; 7] = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

/// The contents of `quantization_config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantizationConfig {
    /// Always `"kaito"` for this format.
    pub quant_method: String,
    /// `"int8"` or `"int4"`.
    pub scheme: String,
    /// INT4 group size as configured (a layer may use a smaller one, see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_size: Option<i64>,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Module paths of the quantized linear layers.
    pub modules: Vec<String>,
}

impl QuantizationConfig {
    /// The config of a checkpoint quantized with `scheme`, listing `modules`.
    pub fn new(scheme: QuantScheme, modules: Vec<String>) -> Self {
        QuantizationConfig {
            quant_method: QUANT_METHOD.into(),
            scheme: scheme.name().into(),
            group_size: scheme.group_size(),
            format_version: FORMAT_VERSION,
            modules,
        }
    }

    /// The scheme this config names.
    pub fn scheme(&self) -> Result<QuantScheme> {
        match self.scheme.parse::<QuantScheme>()? {
            QuantScheme::Int8 => Ok(QuantScheme::Int8),
            QuantScheme::Int4 { .. } => Ok(QuantScheme::Int4 {
                group_size: self.group_size.unwrap_or(DEFAULT_INT4_GROUP_SIZE),
            }),
        }
    }

    /// Whether `module` (a path without `.weight`) is one of the quantized layers.
    pub fn is_quantized(&self, module: &str) -> bool {
        self.modules.iter().any(|m| m == module)
    }
}

/// Whether a checkpoint tensor is a decoder-layer linear weight that gets quantized:
/// `*.layers.N.self_attn.{q,k,v,o}_proj.weight` or `*.layers.N.mlp.{gate,up,down}_proj.weight`.
pub fn is_quantizable_linear(tensor_name: &str) -> bool {
    let Some(module) = tensor_name.strip_suffix(".weight") else {
        return false;
    };
    module.contains(".layers.")
        && QUANTIZED_PROJECTIONS
            .iter()
            .any(|p| module.strip_suffix(p).is_some_and(|m| m.ends_with('.')))
}

/// Reads `dir/quantization_config.json`: `Ok(None)` when the file does not exist (a float
/// checkpoint); an error when it is unreadable, not kaito's format, or a newer version.
pub fn read_quantization_config(dir: &Path) -> Result<Option<QuantizationConfig>> {
    let path = dir.join(QUANTIZATION_CONFIG_FILE);
    let checkpoint_error = |message: String| Error::Checkpoint {
        path: path.display().to_string(),
        message,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(checkpoint_error(e.to_string())),
    };
    let config: QuantizationConfig =
        serde_json::from_str(&text).map_err(|e| checkpoint_error(e.to_string()))?;
    if config.quant_method != QUANT_METHOD {
        return Err(checkpoint_error(format!(
            "quant_method {:?} is not kaito's format ({QUANT_METHOD:?})",
            config.quant_method
        )));
    }
    if config.format_version != FORMAT_VERSION {
        return Err(checkpoint_error(format!(
            "format_version {} is not supported (this build reads {FORMAT_VERSION})",
            config.format_version
        )));
    }
    config
        .scheme()
        .map_err(|e| checkpoint_error(e.to_string()))?;
    Ok(Some(config))
}

/// Writes `dir/quantization_config.json`.
pub fn write_quantization_config(dir: &Path, config: &QuantizationConfig) -> Result<()> {
    let path = dir.join(QUANTIZATION_CONFIG_FILE);
    let text = serde_json::to_string_pretty(config).expect("config serializes");
    std::fs::write(&path, text + "\n").map_err(|e| Error::Checkpoint {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_decoder_linear_weights_only() {
        assert!(is_quantizable_linear(
            "model.layers.0.self_attn.q_proj.weight"
        ));
        assert!(is_quantizable_linear(
            "model.layers.31.mlp.down_proj.weight"
        ));
        assert!(!is_quantizable_linear(
            "model.layers.0.self_attn.q_proj.bias"
        ));
        assert!(!is_quantizable_linear("model.embed_tokens.weight"));
        assert!(!is_quantizable_linear("lm_head.weight"));
        assert!(!is_quantizable_linear(
            "model.layers.0.input_layernorm.weight"
        ));
        assert!(!is_quantizable_linear(
            "model.layers.0.mlp.xgate_proj.weight"
        ));
    }

    #[test]
    fn config_round_trips_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_quantization_config(dir.path()).unwrap().is_none());
        let config = QuantizationConfig::new(
            QuantScheme::Int4 { group_size: 64 },
            vec!["model.layers.0.mlp.up_proj".into()],
        );
        write_quantization_config(dir.path(), &config).unwrap();
        let read = read_quantization_config(dir.path()).unwrap().unwrap();
        assert_eq!(read, config);
        assert_eq!(read.scheme().unwrap(), QuantScheme::Int4 { group_size: 64 });
        assert!(read.is_quantized("model.layers.0.mlp.up_proj"));

        let int8 = QuantizationConfig::new(QuantScheme::Int8, vec![]);
        let json = serde_json::to_value(&int8).unwrap();
        assert!(json.get("group_size").is_none());

        let mut other = config.clone();
        other.quant_method = "gptq".into();
        write_quantization_config(dir.path(), &other).unwrap();
        let err = read_quantization_config(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("gptq"), "{err}");
    }
}
