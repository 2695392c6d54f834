//! Which Hugging Face Llama tensor each GGUF tensor becomes: name, shape, and row order.
//!
//! ggml lists dimensions fastest-first (`[in, out]` for a projection); Hugging Face lists them
//! outermost-first (`[out, in]`). The bytes are the same row-major data, so the shape is reversed and
//! nothing moves, except the rows of `q_proj`/`k_proj`, which llama.cpp reorders for its RoPE.

use crate::model::gguf::{GgufHeader, GgufTensorInfo};

use super::hf_config::HfLlamaConfig;

/// How the rows of a tensor go from GGUF order to Hugging Face order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOrder {
    /// Unchanged.
    AsStored,
    /// Undo llama.cpp's RoPE permutation for a projection with `heads` heads.
    RopeHalves {
        /// Heads of the projection (query heads for `q_proj`, key/value heads for `k_proj`).
        heads: u64,
    },
}

/// One tensor of the conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMapping {
    /// The tensor in the GGUF file.
    pub gguf: GgufTensorInfo,
    /// Name in `model.safetensors`.
    pub hf_name: String,
    /// Hugging Face shape (outermost first).
    pub hf_shape: Vec<u64>,
    /// Row reordering to apply.
    pub row_order: RowOrder,
}

/// The per-block tensors of a GGUF `llama` model and their Hugging Face module paths, in HF order.
const BLOCK_MODULES: [(&str, &str); 9] = [
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// Where a tensor sorts in the output: embeddings, blocks in order, final norm, LM head.
type SortKey = (u8, u64, usize, u8);

/// Maps every tensor of a `llama` GGUF, checked against `config`, in the order a Hugging Face
/// checkpoint lists them. Errors on a tensor with no counterpart, a missing tensor or a wrong shape.
pub fn map_llama_tensors(
    header: &GgufHeader,
    config: &HfLlamaConfig,
) -> Result<Vec<TensorMapping>, String> {
    let mut mapped: Vec<(SortKey, TensorMapping)> = Vec::with_capacity(header.tensors.len());
    for tensor in &header.tensors {
        let (key, hf_name, expected, row_order) = map_name(&tensor.name, config)?;
        let hf_shape: Vec<u64> = tensor.dims.iter().rev().copied().collect();
        if hf_shape != expected {
            return Err(format!(
                "tensor `{}` has shape {hf_shape:?} (outermost first); the hyperparameters call for {expected:?}",
                tensor.name
            ));
        }
        mapped.push((
            key,
            TensorMapping {
                gguf: tensor.clone(),
                hf_name,
                hf_shape,
                row_order,
            },
        ));
    }
    let required = [
        "token_embd.weight".to_owned(),
        "output_norm.weight".to_owned(),
    ]
    .into_iter()
    .chain((0..config.num_hidden_layers).flat_map(|layer| {
        BLOCK_MODULES
            .iter()
            .map(move |(gguf, _)| format!("blk.{layer}.{gguf}.weight"))
    }));
    for name in required {
        if header.tensor(&name).is_none() {
            return Err(format!("GGUF lacks tensor `{name}`"));
        }
    }
    mapped.sort_by_key(|(key, _)| *key);
    Ok(mapped.into_iter().map(|(_, m)| m).collect())
}

/// (sort key, HF name, expected HF shape, row order) of GGUF tensor `name`.
fn map_name(
    name: &str,
    config: &HfLlamaConfig,
) -> Result<(SortKey, String, Vec<u64>, RowOrder), String> {
    let hidden = config.hidden_size;
    let vocab = config.vocab_size;
    let q_rows = config.num_attention_heads * config.head_dim;
    let kv_rows = config.num_key_value_heads * config.head_dim;
    let ffn = config.intermediate_size;
    let as_stored = RowOrder::AsStored;
    match name {
        "token_embd.weight" => {
            return Ok((
                (0, 0, 0, 0),
                "model.embed_tokens.weight".into(),
                vec![vocab, hidden],
                as_stored,
            ))
        }
        "output_norm.weight" => {
            return Ok((
                (2, 0, 0, 0),
                "model.norm.weight".into(),
                vec![hidden],
                as_stored,
            ))
        }
        "output.weight" => {
            return Ok((
                (3, 0, 0, 0),
                "lm_head.weight".into(),
                vec![vocab, hidden],
                as_stored,
            ))
        }
        _ => {}
    }
    let unknown = || format!("tensor `{name}` has no Hugging Face Llama counterpart");
    let rest = name.strip_prefix("blk.").ok_or_else(unknown)?;
    let (layer, rest) = rest.split_once('.').ok_or_else(unknown)?;
    let layer: u64 = layer.parse().map_err(|_| unknown())?;
    if layer >= config.num_hidden_layers {
        return Err(format!(
            "tensor `{name}` belongs to block {layer}, but the model has {} blocks",
            config.num_hidden_layers
        ));
    }
    let (module, suffix) = rest.rsplit_once('.').ok_or_else(unknown)?;
    let (index, (_, hf_module)) = BLOCK_MODULES
        .iter()
        .enumerate()
        .find(|(_, (gguf, _))| *gguf == module)
        .ok_or_else(unknown)?;
    let weight_shape = match module {
        "attn_norm" | "ffn_norm" => vec![hidden],
        "attn_q" => vec![q_rows, hidden],
        "attn_k" | "attn_v" => vec![kv_rows, hidden],
        "attn_output" => vec![hidden, q_rows],
        "ffn_gate" | "ffn_up" => vec![ffn, hidden],
        _ => vec![hidden, ffn], // ffn_down
    };
    let is_norm = weight_shape.len() == 1;
    let (suffix_key, shape) = match suffix {
        "weight" => (0, weight_shape),
        "bias" if !is_norm => (1, vec![weight_shape[0]]),
        _ => return Err(unknown()),
    };
    let row_order = match module {
        "attn_q" => RowOrder::RopeHalves {
            heads: config.num_attention_heads,
        },
        "attn_k" => RowOrder::RopeHalves {
            heads: config.num_key_value_heads,
        },
        _ => RowOrder::AsStored,
    };
    Ok((
        (1, layer, index, suffix_key),
        format!("model.layers.{layer}.{hf_module}.{suffix}"),
        shape,
        row_order,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::convert::dtype::OutputDType;
    use crate::model::gguf::{GgmlType, GgufValue};

    /// A two-block model: hidden 8, 2 heads of 4, 1 KV head, ffn 16, vocab 10.
    fn header(extra: &[(&str, &[u64])], skip: &str) -> GgufHeader {
        let mut h = GgufHeader::default();
        for (k, v) in [
            ("general.architecture", GgufValue::String("llama".into())),
            ("llama.embedding_length", GgufValue::UInt(8)),
            ("llama.feed_forward_length", GgufValue::UInt(16)),
            ("llama.block_count", GgufValue::UInt(2)),
            ("llama.attention.head_count", GgufValue::UInt(2)),
            ("llama.attention.head_count_kv", GgufValue::UInt(1)),
            ("llama.context_length", GgufValue::UInt(64)),
            ("llama.vocab_size", GgufValue::UInt(10)),
            (
                "llama.attention.layer_norm_rms_epsilon",
                GgufValue::Float(1e-6),
            ),
        ] {
            h.metadata.insert(k.into(), v);
        }
        let mut tensors: Vec<(String, Vec<u64>)> = vec![
            ("output_norm.weight".into(), vec![8]),
            ("token_embd.weight".into(), vec![8, 10]),
        ];
        for layer in 0..2 {
            for (module, dims) in [
                ("ffn_down", vec![16, 8]),
                ("attn_q", vec![8, 8]),
                ("attn_k", vec![8, 4]),
                ("attn_v", vec![8, 4]),
                ("attn_output", vec![8, 8]),
                ("attn_norm", vec![8]),
                ("ffn_norm", vec![8]),
                ("ffn_gate", vec![8, 16]),
                ("ffn_up", vec![8, 16]),
            ] {
                tensors.push((format!("blk.{layer}.{module}.weight"), dims));
            }
        }
        tensors.extend(extra.iter().map(|(n, d)| (n.to_string(), d.to_vec())));
        h.tensors = tensors
            .into_iter()
            .filter(|(name, _)| name != skip)
            .map(|(name, dims)| GgufTensorInfo {
                name,
                dims,
                ggml_type: GgmlType::F32,
                offset: 0,
            })
            .collect();
        h
    }

    fn map(h: &GgufHeader) -> Result<Vec<TensorMapping>, String> {
        let config = HfLlamaConfig::from_gguf(h, OutputDType::F32).unwrap();
        map_llama_tensors(h, &config)
    }

    #[test]
    fn maps_names_shapes_and_rope_rows_in_hf_order() {
        let h = header(
            &[("output.weight", &[8, 10]), ("blk.1.attn_q.bias", &[8])],
            "",
        );
        let mapped = map(&h).unwrap();
        let names: Vec<&str> = mapped.iter().map(|m| m.hf_name.as_str()).collect();
        assert_eq!(names[0], "model.embed_tokens.weight");
        assert_eq!(names[1], "model.layers.0.input_layernorm.weight");
        assert_eq!(names[2], "model.layers.0.self_attn.q_proj.weight");
        assert_eq!(names[9], "model.layers.0.mlp.down_proj.weight");
        assert_eq!(names[11], "model.layers.1.self_attn.q_proj.weight");
        assert_eq!(names[12], "model.layers.1.self_attn.q_proj.bias");
        assert_eq!(names[names.len() - 2], "model.norm.weight");
        assert_eq!(names[names.len() - 1], "lm_head.weight");
        let find = |n: &str| mapped.iter().find(|m| m.hf_name == n).unwrap();
        let k = find("model.layers.0.self_attn.k_proj.weight");
        assert_eq!(k.gguf.name, "blk.0.attn_k.weight");
        assert_eq!(k.hf_shape, vec![4, 8]);
        assert_eq!(k.row_order, RowOrder::RopeHalves { heads: 1 });
        let q_bias = find("model.layers.1.self_attn.q_proj.bias");
        assert_eq!(q_bias.row_order, RowOrder::RopeHalves { heads: 2 });
        assert_eq!(
            find("model.layers.0.mlp.down_proj.weight").hf_shape,
            vec![8, 16]
        );
        assert_eq!(
            find("model.layers.0.self_attn.v_proj.weight").row_order,
            RowOrder::AsStored
        );
    }

    #[test]
    fn rejects_unknown_missing_and_misshapen_tensors() {
        let err = map(&header(&[("blk.0.attn_norm.bias", &[8])], "")).unwrap_err();
        assert!(err.contains("`blk.0.attn_norm.bias` has no"), "{err}");
        let err = map(&header(&[("blk.0.ffn_gate_exps.weight", &[8])], "")).unwrap_err();
        assert!(err.contains("no Hugging Face Llama counterpart"), "{err}");
        let err = map(&header(&[("blk.2.attn_q.weight", &[8, 8])], "")).unwrap_err();
        assert!(err.contains("block 2"), "{err}");
        let err = map(&header(&[], "blk.1.ffn_up.weight")).unwrap_err();
        assert_eq!(err, "GGUF lacks tensor `blk.1.ffn_up.weight`");
        let mut h = header(&[], "blk.0.attn_k.weight");
        h.tensors.push(GgufTensorInfo {
            name: "blk.0.attn_k.weight".into(),
            dims: vec![8, 8],
            ggml_type: GgmlType::F32,
            offset: 0,
        });
        let err = map(&h).unwrap_err();
        assert!(err.contains("shape [8, 8]"), "{err}");
    }
}
