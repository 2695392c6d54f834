//! Models: where weights come from ([`ModelSource`]) and what they are ([`ModelInfo`]).

pub mod catalogue;
pub mod convert;
#[cfg(feature = "fetch")]
#[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
pub mod fetch;
pub mod gguf;
mod oci_reference;
pub mod plan;
pub mod store;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use catalogue::Preset;
use gguf::{GgufHeader, GgufValue};
pub use oci_reference::OciReference;

/// Where a model's weights come from, as a user names them. More sources will come (OCI
/// registries): match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSource {
    /// A local GGUF file, or a Hugging Face checkpoint directory (`config.json` + safetensors).
    Path(PathBuf),
    /// `hf:ORG/REPO/FILE.gguf[@REVISION]`: a file in a Hugging Face repository.
    HuggingFace {
        /// `ORG/REPO`.
        repo: String,
        /// Path of the file in the repository.
        file: String,
        /// Branch, tag or commit; `main` by default.
        revision: String,
    },
    /// A catalogue preset.
    Preset(&'static Preset),
    /// `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]`: an artifact in an OCI registry
    /// (fetched with feature `oci`).
    Oci(OciReference),
}

impl ModelSource {
    /// Parses `hf:ORG/REPO/FILE[@REV]`, `oci://…`, a preset name or else a local path. Pure:
    /// nothing is read; [`ModelSource::check_local`] tells whether a path is a model.
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        if spec.starts_with("oci://") {
            return OciReference::parse(spec).map(ModelSource::Oci);
        }
        if let Some(rest) = spec.strip_prefix("hf:") {
            let (path, revision) = match rest.rsplit_once('@') {
                Some((p, r)) if !r.is_empty() => (p, r.to_owned()),
                _ => (rest, "main".to_owned()),
            };
            let parts: Vec<&str> = path.splitn(3, '/').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) || path.contains("..") {
                return Err(Error::spec(
                    "model",
                    format!("`{spec}` is not of the form hf:ORG/REPO/FILE.gguf"),
                ));
            }
            return Ok(ModelSource::HuggingFace {
                repo: format!("{}/{}", parts[0], parts[1]),
                file: parts[2].to_owned(),
                revision,
            });
        }
        if let Some(preset) = catalogue::find_preset(spec) {
            return Ok(ModelSource::Preset(preset));
        }
        if spec.is_empty() {
            return Err(Error::spec("model", "the model is empty"));
        }
        Ok(ModelSource::Path(PathBuf::from(spec)))
    }

    /// For a local path, whether it is a model: a GGUF file or a checkpoint directory with
    /// `config.json`. A path that does not exist is [`Error::ModelNotFound`] (naming the presets,
    /// in case a preset name was misspelt). Other sources are checked when fetched.
    pub fn check_local(&self) -> Result<()> {
        let ModelSource::Path(path) = self else {
            return Ok(());
        };
        if path.is_file() {
            return Ok(());
        }
        if path.is_dir() {
            if path.join("config.json").is_file() {
                return Ok(());
            }
            return Err(Error::ModelLoad {
                path: path.clone(),
                message: "is a directory without config.json (neither a GGUF file nor a Hugging Face checkpoint)".to_owned(),
            });
        }
        if path.exists() {
            return Err(Error::ModelLoad {
                path: path.clone(),
                message: "is not a file".to_owned(),
            });
        }
        Err(Error::ModelNotFound {
            name: path.display().to_string(),
            presets: catalogue::preset_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        })
    }

    /// The name the OpenAI API serves this model under by default.
    pub fn default_served_name(&self) -> String {
        match self {
            ModelSource::Path(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".to_owned()),
            ModelSource::HuggingFace { repo, file, .. } => {
                let stem = Path::new(file)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned());
                stem.unwrap_or_else(|| repo.clone())
            }
            ModelSource::Preset(p) => p.name.to_owned(),
            ModelSource::Oci(r) => r.default_served_name(),
        }
    }
}

/// What a model file is, read from its GGUF header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Name served by the API.
    pub id: String,
    /// The weights file.
    pub path: PathBuf,
    /// `general.architecture` (`llama`, `qwen2`, ...).
    pub architecture: String,
    /// `general.name`, if present.
    pub display_name: Option<String>,
    /// Number of weights.
    pub parameters: u64,
    /// Training context length.
    pub context_length: Option<u32>,
    /// Quantization (`Q4_1`, `F16`, ...).
    pub quantization: Option<String>,
    /// Transformer blocks.
    pub layers: Option<u32>,
    /// Attention heads.
    pub heads: Option<u32>,
    /// Key/value heads (GQA).
    pub kv_heads: Option<u32>,
    /// Hidden size.
    pub embedding_length: Option<u32>,
    /// Vocabulary size.
    pub vocab_size: Option<u32>,
    /// Jinja chat template (`tokenizer.chat_template`).
    pub chat_template: Option<String>,
    /// Beginning-of-sequence token text.
    pub bos_token: Option<String>,
    /// End-of-sequence token text.
    pub eos_token: Option<String>,
    /// File size in bytes.
    pub file_size: u64,
}

/// Memory a model needs to serve, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// Weights (the file size).
    pub weights: u64,
    /// KV cache for the requested tokens (f16 keys and values).
    pub kv_cache: u64,
    /// Sum.
    pub total: u64,
}

impl ModelInfo {
    /// Reads the GGUF header at `path`; `id` is the served name.
    pub fn from_gguf(path: &Path, id: impl Into<String>) -> Result<Self> {
        let header = GgufHeader::read(path)?;
        let architecture = header
            .architecture()
            .ok_or_else(|| Error::ModelLoad {
                path: path.to_owned(),
                message: "GGUF has no general.architecture".to_owned(),
            })?
            .to_owned();
        let u32_of = |suffix: &str| header.arch_u64(suffix).and_then(|v| u32::try_from(v).ok());
        let token = |key: &str| {
            header
                .get(key)
                .and_then(GgufValue::as_u64)
                .and_then(|id| header.token_text(id))
                .map(str::to_owned)
        };
        let vocab_size =
            u32_of("vocab_size").or_else(|| match header.get("tokenizer.ggml.tokens") {
                Some(GgufValue::StringArray(t)) => u32::try_from(t.len()).ok(),
                _ => None,
            });
        let (parameters, file_size) = split_totals(path, &header);
        Ok(Self {
            id: id.into(),
            path: path.to_owned(),
            display_name: header
                .get("general.name")
                .and_then(GgufValue::as_str)
                .map(str::to_owned),
            parameters,
            context_length: u32_of("context_length"),
            quantization: header
                .get("general.file_type")
                .and_then(GgufValue::as_u64)
                .map(|t| gguf::file_type_name(t).to_owned()),
            layers: u32_of("block_count"),
            heads: u32_of("attention.head_count"),
            kv_heads: u32_of("attention.head_count_kv").or_else(|| u32_of("attention.head_count")),
            embedding_length: u32_of("embedding_length"),
            vocab_size,
            chat_template: header
                .get("tokenizer.chat_template")
                .and_then(GgufValue::as_str)
                .map(str::to_owned),
            bos_token: token("tokenizer.ggml.bos_token_id"),
            eos_token: token("tokenizer.ggml.eos_token_id"),
            file_size,
            architecture,
        })
    }

    /// Dimension of one attention head.
    pub fn head_dim(&self) -> Option<u32> {
        Some(self.embedding_length? / self.heads?.max(1))
    }

    /// Bytes of f16 KV cache per token: 2 (K and V) × layers × kv_heads × head_dim × 2 bytes.
    pub fn kv_bytes_per_token(&self) -> Option<u64> {
        Some(
            2 * u64::from(self.layers?)
                * u64::from(self.kv_heads?)
                * u64::from(self.head_dim()?)
                * 2,
        )
    }

    /// Memory to serve `tokens` tokens of KV cache in total (all sequences).
    pub fn memory_estimate(&self, tokens: u64) -> MemoryEstimate {
        let kv_cache = self.kv_bytes_per_token().unwrap_or(0) * tokens;
        MemoryEstimate {
            weights: self.file_size,
            kv_cache,
            total: self.file_size + kv_cache,
        }
    }
}

/// The cache directory: `$KAITO_CACHE_DIR`, else `$XDG_CACHE_HOME/kaito`, else `~/.cache/kaito`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KAITO_CACHE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("kaito");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("kaito")
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Parameters and bytes of the GGUF model at `path`: of all its shards when it is one shard of a
/// split model (`NAME-0000K-of-0000N.gguf`, the others beside it), else of the file.
fn split_totals(path: &Path, header: &GgufHeader) -> (u64, u64) {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut parameters = header.parameter_count;
    let mut bytes = size(path);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if let Some(shard) = gguf::SplitShard::parse(name) {
        for k in (1..=shard.count).filter(|&k| k != shard.number) {
            let other = path.with_file_name(shard.sibling(k));
            if let Ok(h) = GgufHeader::read(&other) {
                parameters += h.parameter_count;
                bytes += size(&other);
            }
        }
    }
    (parameters, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hf_references() {
        let s = ModelSource::parse("hf:TheOrg/the-repo/sub/model.Q4_0.gguf@v1").unwrap();
        assert_eq!(
            s,
            ModelSource::HuggingFace {
                repo: "TheOrg/the-repo".into(),
                file: "sub/model.Q4_0.gguf".into(),
                revision: "v1".into()
            }
        );
        assert_eq!(s.default_served_name(), "model.Q4_0");
        assert!(matches!(
            ModelSource::parse("hf:only/two"),
            Err(Error::InvalidSpec { .. })
        ));
        let oci = ModelSource::parse("oci://127.0.0.1:5000/smollm2:q4").unwrap();
        assert_eq!(oci.default_served_name(), "smollm2:q4");
        assert!(ModelSource::parse("oci://127.0.0.1:5000/Bad").is_err());
    }

    #[test]
    fn presets_and_unknown_names() {
        assert!(matches!(
            ModelSource::parse("SmolLM2-135M-Instruct"),
            Ok(ModelSource::Preset(_))
        ));
        let unknown = ModelSource::parse("no-such-model-anywhere").unwrap();
        let err = unknown.check_local().unwrap_err();
        assert!(err.to_string().contains("smollm2-135m-instruct"), "{err}");
    }
}
