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
