//! Converting a Hugging Face Llama-family safetensors checkpoint into kaito's quantized format
//! (see [`super::format`]).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use tch::Tensor;

use super::format::{self, QuantizationConfig};
use super::scheme::QuantScheme;
use super::stored::{tensor_bytes, StoredWeights};
use crate::error::{Error, Result};

/// What [`quantize_checkpoint`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuantReport {
    /// Module paths of the quantized linear layers, in checkpoint order.
    pub modules: Vec<String>,
    /// Layers whose input size was not a multiple of the group size: `(module, group used)`.
    pub smaller_groups: Vec<(String, i64)>,
    /// Tensors written unchanged (embeddings, norms, `lm_head`, ...).
    pub float_tensors: usize,
    /// Bytes of the quantized layers' weights in the source checkpoint.
    pub source_linear_bytes: u64,
    /// Bytes of the same layers after quantization (codes, scales, zero points).
    pub quantized_linear_bytes: u64,
    /// Bytes of all tensors written to `model.safetensors`.
    pub total_bytes: u64,
    /// Non-weight files copied from the source directory (file names).
    pub copied_files: Vec<String>,
}

/// Quantizes every decoder-layer linear weight of the checkpoint in `src_dir`
/// (see [`format::is_quantizable_linear`]) with `scheme` and writes the quantized checkpoint to
/// `dst_dir` (created if needed): `model.safetensors`, `quantization_config.json`, and copies of
/// the source's non-weight files (config, tokenizer, generation config, ...).
///
/// Reads `model.safetensors`, or the shards `model.safetensors.index.json` lists, one shard at a
/// time on the CPU; the quantized output is held in memory until it is written (about 0.3x of
/// the linear weights at INT4 plus the float tensors).
pub fn quantize_checkpoint(
    src_dir: &Path,
    dst_dir: &Path,
    scheme: QuantScheme,
) -> Result<QuantReport> {
    let io_error = |path: &Path, e: &dyn std::fmt::Display| Error::Checkpoint {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if !src_dir.join("config.json").is_file() {
        return Err(io_error(
            src_dir,
            &"no config.json: not a Hugging Face checkpoint",
        ));
    }
    let same_dir = match (src_dir.canonicalize(), dst_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same_dir {
        return Err(io_error(
            dst_dir,
            &"the destination must differ from the source",
        ));
    }
    let shards = safetensors_shards(src_dir)?;
    std::fs::create_dir_all(dst_dir).map_err(|e| io_error(dst_dir, &e))?;

    let mut report = QuantReport::default();
    let mut written: Vec<(String, Tensor)> = Vec::new();
    let mut names = HashSet::new();
    for shard in &shards {
        tracing::info!(shard = %shard.display(), %scheme, "quantizing");
        let tensors = Tensor::read_safetensors(shard).map_err(|e| io_error(shard, &e))?;
        for (name, tensor) in tensors {
            let module = name
                .strip_suffix(".weight")
                .filter(|_| format::is_quantizable_linear(&name) && tensor.dim() == 2);
            let Some(module) = module else {
                report.float_tensors += 1;
                written.push((name, tensor));
                continue;
            };
            let stored = StoredWeights::quantize(&tensor, scheme)
                .map_err(|e| Error::Quantization(format!("{name}: {e}")))?;
            if stored.scheme != scheme {
                if let Some(group) = stored.scheme.group_size() {
                    report.smaller_groups.push((module.to_string(), group));
                }
            }
            report.source_linear_bytes += tensor_bytes(&tensor);
            let parts = stored.tensors(module);
            report.quantized_linear_bytes +=
                parts.iter().map(|(_, t)| tensor_bytes(t)).sum::<u64>();
            report.modules.push(module.to_string());
            written.extend(parts);
        }
    }
    for (name, _) in &written {
        if !names.insert(name.as_str()) {
            return Err(io_error(src_dir, &format!("tensor {name} appears twice")));
        }
    }
    report.total_bytes = written.iter().map(|(_, t)| tensor_bytes(t)).sum();

    let model_path = dst_dir.join(format::MODEL_FILE);
    Tensor::write_safetensors(&written, &model_path).map_err(|e| io_error(&model_path, &e))?;
    drop(written);

    report.copied_files = copy_side_files(src_dir, dst_dir)?;
    let config = QuantizationConfig::new(scheme, report.modules.clone());
    format::write_quantization_config(dst_dir, &config)?;
    tracing::info!(
        modules = report.modules.len(),
        source_linear_bytes = report.source_linear_bytes,
        quantized_linear_bytes = report.quantized_linear_bytes,
        dst = %dst_dir.display(),
        "quantized checkpoint written"
    );
    Ok(report)
}

/// The safetensors files of a checkpoint: the shards of `model.safetensors.index.json`, else
/// `model.safetensors`, else every `*.safetensors` in the directory (sorted).
fn safetensors_shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let error = |path: &Path, message: String| Error::Checkpoint {
        path: path.display().to_string(),
        message,
    };
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| error(&index, e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| error(&index, e.to_string()))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| error(&index, "no weight_map object".into()))?;
        let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        if files.is_empty() {
            return Err(error(&index, "weight_map lists no files".into()));
        }
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| error(dir, e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(error(dir, "no safetensors weights".into()));
    }
    Ok(found)
}

/// Extensions of weight files, which are not copied.
const WEIGHT_EXTENSIONS: [&str; 8] = [
    "safetensors",
    "bin",
    "pt",
    "pth",
    "gguf",
    "ckpt",
    "h5",
    "msgpack",
];

/// Copies the regular files of `src` that are not weights (nor the shard index, nor a
/// quantization config) into `dst`; returns their names, sorted.
fn copy_side_files(src: &Path, dst: &Path) -> Result<Vec<String>> {
    let error = |path: &Path, e: std::io::Error| Error::Checkpoint {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut copied = Vec::new();
    for entry in std::fs::read_dir(src).map_err(|e| error(src, e))? {
        let path = entry.map_err(|e| error(src, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_weight = path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| WEIGHT_EXTENSIONS.contains(&x));
        let skipped = is_weight
            || name == "model.safetensors.index.json"
            || name == format::QUANTIZATION_CONFIG_FILE;
        if path.is_file() && !skipped {
            std::fs::copy(&path, dst.join(name)).map_err(|e| error(&path, e))?;
            copied.push(name.to_string());
        }
    }
    copied.sort();
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tch::{Device, Kind};

    use super::*;
    use crate::quant::format::read_quantization_config;
    use crate::quant::QuantLinear;

    /// A two-layer Llama-shaped checkpoint (bf16) in `dir`, in two shards with an index.
    fn write_tiny_llama(dir: &Path) -> HashMap<String, Tensor> {
        let (hidden, kv, ffn, vocab) = (64, 32, 128, 48);
        let mut tensors = vec![
            ("model.embed_tokens.weight".to_string(), vec![vocab, hidden]),
            ("model.norm.weight".to_string(), vec![hidden]),
            ("lm_head.weight".to_string(), vec![vocab, hidden]),
        ];
        for layer in 0..2 {
            let p = format!("model.layers.{layer}");
            for (name, shape) in [
                ("self_attn.q_proj.weight", vec![hidden, hidden]),
                ("self_attn.k_proj.weight", vec![kv, hidden]),
                ("self_attn.v_proj.weight", vec![kv, hidden]),
                ("self_attn.o_proj.weight", vec![hidden, hidden]),
                ("mlp.gate_proj.weight", vec![ffn, hidden]),
                ("mlp.up_proj.weight", vec![ffn, hidden]),
                ("mlp.down_proj.weight", vec![hidden, ffn]),
                ("input_layernorm.weight", vec![hidden]),
                ("post_attention_layernorm.weight", vec![hidden]),
            ] {
                tensors.push((format!("{p}.{name}"), shape));
            }
        }
        let tensors: Vec<(String, Tensor)> = tensors
            .into_iter()
            .map(|(name, shape)| {
                let t = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * 0.02;
                (name, t.to_kind(Kind::BFloat16))
            })
            .collect();
        let (first, second) = tensors.split_at(tensors.len() / 2);
        let mut weight_map = serde_json::Map::new();
        for (file, part) in [
            ("model-00001-of-00002.safetensors", first),
            ("model-00002-of-00002.safetensors", second),
        ] {
            Tensor::write_safetensors(part, dir.join(file)).unwrap();
            for (name, _) in part {
                weight_map.insert(name.clone(), file.into());
            }
        }
        let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"model_type":"llama"}"#).unwrap();
        std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
        std::fs::write(dir.join("pytorch_model.bin"), "not copied").unwrap();
        tensors.into_iter().collect()
    }

    #[test]
    fn quantizes_a_sharded_llama_checkpoint() {
        tch::set_num_threads(1);
        tch::manual_seed(9);
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let original = write_tiny_llama(src.path());
        for scheme in [QuantScheme::Int4 { group_size: 32 }, QuantScheme::Int8] {
            let report = quantize_checkpoint(src.path(), dst.path(), scheme).unwrap();
            assert_eq!(report.modules.len(), 14);
            assert_eq!(report.float_tensors, 3 + 2 * 2);
            assert!(report.smaller_groups.is_empty());
            assert_eq!(report.copied_files, ["config.json", "tokenizer.json"]);
            let ratio = report.quantized_linear_bytes as f64 / report.source_linear_bytes as f64;
            match scheme {
                // 4 bytes of scale per 64-wide row: 68 / 128.
                QuantScheme::Int8 => assert!((0.5..0.54).contains(&ratio), "{ratio}"),
                QuantScheme::Int4 { .. } => assert!(ratio < 0.3, "{ratio}"),
            }

            let config = read_quantization_config(dst.path()).unwrap().unwrap();
            assert_eq!(config.scheme().unwrap(), scheme);
            assert_eq!(config.modules, report.modules);
            let written: HashMap<String, Tensor> =
                Tensor::read_safetensors(dst.path().join(format::MODEL_FILE))
                    .unwrap()
                    .into_iter()
                    .collect();
            for (name, tensor) in &original {
                let module = name.strip_suffix(".weight").unwrap();
                if config.is_quantized(module) {
                    assert!(!written.contains_key(name), "{name}");
                    let layer =
                        QuantLinear::from_tensors(module, &written, scheme, Kind::Float).unwrap();
                    let err = (layer.dequantize() - tensor.to_kind(Kind::Float)).abs();
                    match scheme {
                        // Round to nearest: within half a step of 0.1 / 127.
                        QuantScheme::Int8 => {
                            assert!(err.max().double_value(&[]) <= 0.1 / 127.0 / 2.0, "{name}")
                        }
                        // The INT4 search may clip a group's extremes: bound the RMS error by
                        // that of rounding with a step of 0.2 / 15.
                        QuantScheme::Int4 { .. } => {
                            let rms = err.square().mean(Kind::Double).sqrt().double_value(&[]);
                            assert!(rms <= 0.2 / 15.0 / 12f64.sqrt(), "{name}: {rms}");
                        }
                    }
                } else {
                    assert!(written[name].equal(tensor), "{name} kept as is");
                }
            }
        }
    }

    #[test]
    fn needs_a_hugging_face_directory() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let err = quantize_checkpoint(src.path(), dst.path(), QuantScheme::Int8).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        std::fs::write(src.path().join("config.json"), "{}").unwrap();
        let err = quantize_checkpoint(src.path(), dst.path(), QuantScheme::Int8).unwrap_err();
        assert!(err.to_string().contains("safetensors"), "{err}");
        let err = quantize_checkpoint(src.path(), src.path(), QuantScheme::Int8).unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
    }
}
