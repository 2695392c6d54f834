//! GGUF → Hugging Face checkpoint conversion: a `llama` GGUF becomes a `LlamaForCausalLM` directory
//! (`model.safetensors`, `config.json`, `generation_config.json`, `tokenizer.json`,
//! `tokenizer_config.json`) that Hugging Face-style loaders such as the libtorch engine read.
//!
//! Weights are dequantized (private module `dequant`), renamed and reshaped (`tensor_map`), and the
//! query/key rows are put back in Hugging Face RoPE order (`rope_permutation`). The directory is
//! written as `OUT.partial` and renamed to `OUT` when complete.
//!
//! ```no_run
//! use kaito_core::model::convert::{convert_gguf_to_hf, ConvertOptions, OutputDType};
//! # fn main() -> kaito_core::Result<()> {
//! let options = ConvertOptions::default().with_dtype(OutputDType::BF16);
//! let report = convert_gguf_to_hf("model.gguf".as_ref(), "model-hf".as_ref(), &options)?;
//! println!("{} tensors in {}", report.tensors, report.out_dir.display());
//! # Ok(())
//! # }
//! ```

mod dequant;
mod dtype;
mod float16;
mod hf_config;
mod hf_tokenizer;
mod rope_permutation;
mod safetensors;
mod staged_dir;
mod tensor_map;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::gguf::GgufFile;

pub use dtype::OutputDType;
pub use hf_config::HfLlamaConfig;
use hf_tokenizer::HfTokenizer;
use safetensors::{SafetensorsEntry, SafetensorsWriter};
use staged_dir::StagedDir;
use tensor_map::{map_llama_tensors, RowOrder};

/// The weights file.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Every file a conversion writes.
pub const OUTPUT_FILES: [&str; 5] = [
    WEIGHTS_FILE,
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

/// How to convert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Element type of the written weights (default f32).
    pub dtype: OutputDType,
    /// Replace an existing non-empty output directory.
    pub force: bool,
}

impl ConvertOptions {
    /// Sets the element type of the written weights.
    pub fn with_dtype(mut self, dtype: OutputDType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Allows replacing an existing non-empty output directory.
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    /// The checkpoint directory.
    pub out_dir: PathBuf,
    /// Names of the files in it ([`OUTPUT_FILES`]).
    pub files: Vec<String>,
    /// Tensors in `model.safetensors`.
    pub tensors: usize,
    /// Weights in `model.safetensors`.
    pub parameters: u64,
    /// Size of `model.safetensors` in bytes.
    pub weights_bytes: u64,
    /// Element type of the weights.
    pub dtype: OutputDType,
    /// The `config.json` written.
    pub config: HfLlamaConfig,
}

/// Converts the `llama` GGUF at `gguf` into a Hugging Face checkpoint directory at `out_dir`.
///
/// Everything the GGUF needs is checked before anything is written: architecture, tokenizer, tensor
/// names, shapes and types. Errors: [`Error::ModelLoad`] for a GGUF that cannot be converted (naming the
/// key or tensor), [`Error::Io`] for the file system — with kind `AlreadyExists` when `out_dir` is not
/// empty and `options.force` is not set.
#[tracing::instrument(skip(options), fields(dtype = %options.dtype))]
pub fn convert_gguf_to_hf(
    gguf: &Path,
    out_dir: &Path,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    let mut file = GgufFile::open(gguf)?;
    let header = file.header().clone();
    let unconvertible = |message: String| Error::ModelLoad {
        path: gguf.to_owned(),
        message,
    };
    let config = HfLlamaConfig::from_gguf(&header, options.dtype).map_err(unconvertible)?;
    let tokenizer = HfTokenizer::from_gguf(&header).map_err(unconvertible)?;
    if tokenizer.vocabulary_size() as u64 > config.vocab_size {
        return Err(unconvertible(format!(
            "the vocabulary has {} tokens but the embeddings only {} rows",
            tokenizer.vocabulary_size(),
            config.vocab_size
        )));
    }
    let tokenizer_json = tokenizer.tokenizer_json().map_err(unconvertible)?;
    let tokenizer_config = tokenizer.tokenizer_config_json(config.max_position_embeddings);
    let mappings = map_llama_tensors(&header, &config).map_err(unconvertible)?;
    for mapping in &mappings {
        let ty = mapping.gguf.ggml_type;
        if !dequant::SUPPORTED_TYPES.contains(&ty) {
            let supported: Vec<String> = dequant::SUPPORTED_TYPES
                .iter()
                .map(ToString::to_string)
                .collect();
            return Err(unconvertible(format!(
                "tensor `{}` has type {ty}, which the converter cannot dequantize (it handles {})",
                mapping.gguf.name,
                supported.join(", ")
            )));
        }
    }

    let staged = StagedDir::create(out_dir, options.force)?;
    let weights_path = staged.path().join(WEIGHTS_FILE);
    let io_error = |what: &Path| {
        let context = format!("writing {}", what.display());
        move |e| Error::io(context, e)
    };
    let entries: Vec<SafetensorsEntry> = mappings
        .iter()
        .map(|m| SafetensorsEntry {
            name: m.hf_name.clone(),
            dtype: options.dtype,
            shape: m.hf_shape.clone(),
        })
        .collect();
    let parameters = entries
        .iter()
        .map(|e| e.shape.iter().product::<u64>())
        .sum();
    let weights_file = File::create(&weights_path).map_err(io_error(&weights_path))?;
    let mut writer = SafetensorsWriter::new(
        BufWriter::with_capacity(8 << 20, weights_file),
        entries,
        &[("format", "pt")],
    )
    .map_err(io_error(&weights_path))?;
    let mut encoded = Vec::new();
    for mapping in &mappings {
        let tensor = &mapping.gguf;
        let raw = file.read_tensor_data(tensor)?;
        let mut values = dequant::dequantize(tensor.ggml_type, &raw).ok_or_else(|| {
            unconvertible(format!(
                "tensor `{}` of type {} has {} bytes, not whole blocks",
                tensor.name,
                tensor.ggml_type,
                raw.len()
            ))
        })?;
        if let RowOrder::RopeHalves { heads } = mapping.row_order {
            let row_len = mapping.hf_shape.get(1).copied().unwrap_or(1) as usize;
            values = rope_permutation::hf_rows_from_gguf(&values, row_len, heads as usize)
                .ok_or_else(|| {
                    unconvertible(format!(
                        "tensor `{}` does not split into {heads} heads of an even size",
                        tensor.name
                    ))
                })?;
        }
        encoded.clear();
        options.dtype.encode(&values, &mut encoded);
        writer
            .write_tensor(&mapping.hf_name, &encoded)
            .map_err(io_error(&weights_path))?;
        tracing::debug!(gguf = %tensor.name, hf = %mapping.hf_name, ty = %tensor.ggml_type, "converted");
    }
    let weights_file = writer
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(io_error(&weights_path))?;
    weights_file.sync_all().map_err(io_error(&weights_path))?;
    let weights_bytes = weights_file
        .metadata()
        .map_err(io_error(&weights_path))?
        .len();

    let config_json = serde_json::to_value(&config).map_err(|e| unconvertible(e.to_string()))?;
    for (name, document) in [
        ("config.json", &config_json),
        ("generation_config.json", &config.generation_config()),
        ("tokenizer.json", &tokenizer_json),
        ("tokenizer_config.json", &tokenizer_config),
    ] {
        write_json(&staged.path().join(name), document)?;
    }
    let out_dir = staged.commit()?;
    tracing::debug!(out = %out_dir.display(), tensors = mappings.len(), parameters, "converted GGUF to a Hugging Face checkpoint");
    Ok(ConvertReport {
        out_dir,
        files: OUTPUT_FILES.iter().map(|f| (*f).to_owned()).collect(),
        tensors: mappings.len(),
        parameters,
        weights_bytes,
        dtype: options.dtype,
        config,
    })
}

/// Writes `document` as pretty JSON with a final newline, synced to disk.
fn write_json(path: &Path, document: &Value) -> Result<()> {
    let context = || format!("writing {}", path.display());
    let mut bytes = serde_json::to_vec_pretty(document).expect("JSON values serialize");
    bytes.push(b'\n');
    let mut file = File::create(path).map_err(|e| Error::io(context(), e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(context(), e))
}
