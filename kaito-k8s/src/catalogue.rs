//! The facts the estimator needs about every preset: KAITO's GPU presets (the names in KAITO's
//! `supported_models.yaml`) and the GGUF presets our own runtime serves on CPU.
//!
//! Figures come from each model's Hugging Face `config.json` and the size of its published
//! weights (rounded); they are sizing inputs, not a promise about any file.

use kaito_core::model::catalogue as local;

const GB: u64 = 1_000_000_000;

/// Storage type of the published weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// bfloat16, 2 bytes a parameter.
    Bf16,
    /// 8-bit float (DeepSeek, Mistral Large 3).
    Fp8,
    /// MXFP4 mixture-of-experts weights (gpt-oss).
    Mxfp4,
    /// A GGUF quantization (`Q4_1`, ...).
    Gguf(&'static str),
}

impl Dtype {
    /// Bytes per KV-cache element the runtime uses with these weights: vLLM keeps bf16/fp16
    /// and llama.cpp f16 by default, whatever the weights' type.
    pub fn kv_bytes(self) -> u64 {
        2
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::Fp8 => "fp8",
            Dtype::Mxfp4 => "mxfp4",
            Dtype::Gguf(q) => q,
        }
    }
}

/// Which runtime serves a preset by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// vLLM on GPUs, as KAITO runs it.
    Vllm,
    /// Our `kaito serve` (llama.cpp, GGUF, CPU).
    Kaito,
}

impl Runtime {
    /// The `kaito.sh/runtime` annotation value.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Vllm => "vllm",
            Runtime::Kaito => "kaito",
        }
    }
}

/// Sizing facts of one preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelFacts {
    /// Preset name (`inference.preset.name`).
    pub name: &'static str,
    /// Hugging Face repository the weights come from.
    pub repo: &'static str,
    /// Architecture (`architectures[0]` in `config.json`).
    pub architecture: &'static str,
    /// Parameters, in billions.
    pub params_billion: f64,
    /// Size of the published weights in bytes.
    pub weights_bytes: u64,
    /// Transformer layers.
    pub layers: u64,
    /// Key/value heads.
    pub kv_heads: u64,
    /// Head dimension.
    pub head_dim: u64,
    /// Longest context the model supports.
    pub max_context: u64,
    /// Weight storage type.
    pub dtype: Dtype,
    /// Hugging Face requires a token (`presetOptions.modelAccessSecret`).
    pub gated: bool,
    /// Default runtime.
    pub runtime: Runtime,
}

macro_rules! gpu {
    ($name:literal, $repo:literal, $arch:literal, $params:expr, $gb:expr, $layers:expr, $kv:expr, $hd:expr, $ctx:expr, $dtype:ident, $gated:expr) => {
        ModelFacts {
            name: $name,
            repo: $repo,
            architecture: $arch,
            params_billion: $params,
            weights_bytes: ($gb as f64 * GB as f64) as u64,
            layers: $layers,
            kv_heads: $kv,
            head_dim: $hd,
            max_context: $ctx,
            dtype: Dtype::$dtype,
            gated: $gated,
            runtime: Runtime::Vllm,
        }
    };
}

/// KAITO's GPU presets.
pub const GPU_PRESETS: &[ModelFacts] = &[
    gpu!(
        "llama-3.1-8b-instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "LlamaForCausalLM",
        8.03,
        16.1,
        32,
        8,
        128,
        131072,
        Bf16,
        true
    ),
    gpu!(
        "llama-3.3-70b-instruct",
        "meta-llama/Llama-3.3-70B-Instruct",
        "LlamaForCausalLM",
        70.6,
        141.1,
        80,
        8,
        128,
        131072,
        Bf16,
        true
    ),
    gpu!(
        "deepseek-r1-0528",
        "deepseek-ai/DeepSeek-R1-0528",
        "DeepseekV3ForCausalLM",
        671.0,
        688.6,
        61,
        128,
        128,
        163840,
        Fp8,
        false
    ),
    gpu!(
        "deepseek-v3-0324",
        "deepseek-ai/DeepSeek-V3-0324",
        "DeepseekV3ForCausalLM",
        671.0,
        688.6,
        61,
        128,
        128,
        163840,
        Fp8,
        false
    ),
    gpu!(
        "falcon-7b",
        "tiiuae/falcon-7b",
        "FalconForCausalLM",
        7.2,
        14.4,
        32,
        1,
        64,
        2048,
        Bf16,
        false
    ),
    gpu!(
        "falcon-7b-instruct",
        "tiiuae/falcon-7b-instruct",
        "FalconForCausalLM",
        7.2,
        14.4,
        32,
        1,
        64,
        2048,
        Bf16,
        false
    ),
    gpu!(
        "falcon-40b",
        "tiiuae/falcon-40b",
        "FalconForCausalLM",
        41.8,
        83.7,
        60,
        8,
        64,
        2048,
        Bf16,
        false
    ),
    gpu!(
        "falcon-40b-instruct",
        "tiiuae/falcon-40b-instruct",
        "FalconForCausalLM",
        41.8,
        83.7,
        60,
        8,
        64,
        2048,
        Bf16,
        false
    ),
    gpu!(
        "mistral-7b",
        "mistralai/Mistral-7B-v0.3",
        "MistralForCausalLM",
        7.25,
        14.5,
        32,
        8,
        128,
        32768,
        Bf16,
        false
    ),
    gpu!(
        "mistral-7b-instruct",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "MistralForCausalLM",
        7.25,
        14.5,
        32,
        8,
        128,
        32768,
        Bf16,
        false
    ),
    gpu!(
        "ministral-3-3b-instruct",
        "mistralai/Ministral-3-3B-Instruct-2512",
        "Mistral3ForConditionalGeneration",
        3.8,
        7.7,
        26,
        8,
        128,
        262144,
        Bf16,
        false
    ),
    gpu!(
        "ministral-3-8b-instruct",
        "mistralai/Ministral-3-8B-Instruct-2512",
        "Mistral3ForConditionalGeneration",
        8.9,
        17.8,
        34,
        8,
        128,
        262144,
        Bf16,
        false
    ),
    gpu!(
        "ministral-3-14b-instruct",
        "mistralai/Ministral-3-14B-Instruct-2512",
        "Mistral3ForConditionalGeneration",
        13.9,
        27.8,
        40,
        8,
        128,
        262144,
        Bf16,
        false
    ),
    gpu!(
        "mistral-large-3-675b-instruct",
        "mistralai/Mistral-Large-3-675B-Instruct-2512",
        "MistralLarge3ForCausalLM",
        675.0,
        682.0,
        61,
        128,
        128,
        262144,
        Fp8,
        false
    ),
    gpu!(
        "phi-2",
        "microsoft/phi-2",
        "PhiForCausalLM",
        2.78,
        5.6,
        32,
        32,
        80,
        2048,
        Bf16,
        false
    ),
    gpu!(
        "phi-3-mini-4k-instruct",
        "microsoft/Phi-3-mini-4k-instruct",
        "Phi3ForCausalLM",
        3.82,
        7.6,
        32,
        32,
        96,
        4096,
        Bf16,
        false
    ),
    gpu!(
        "phi-3-mini-128k-instruct",
        "microsoft/Phi-3-mini-128k-instruct",
        "Phi3ForCausalLM",
        3.82,
        7.6,
        32,
        32,
        96,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "phi-3-medium-4k-instruct",
        "microsoft/Phi-3-medium-4k-instruct",
        "Phi3ForCausalLM",
        14.0,
        28.0,
        40,
        10,
        128,
        4096,
        Bf16,
        false
    ),
    gpu!(
        "phi-3-medium-128k-instruct",
        "microsoft/Phi-3-medium-128k-instruct",
        "Phi3ForCausalLM",
        14.0,
        28.0,
        40,
        10,
        128,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "phi-3.5-mini-instruct",
        "microsoft/Phi-3.5-mini-instruct",
        "Phi3ForCausalLM",
        3.82,
        7.6,
        32,
        32,
        96,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "phi-4-mini-instruct",
        "microsoft/Phi-4-mini-instruct",
        "Phi3ForCausalLM",
        3.84,
        7.7,
        32,
        8,
        128,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "phi-4",
        "microsoft/phi-4",
        "Phi3ForCausalLM",
        14.7,
        29.3,
        40,
        10,
        128,
        16384,
        Bf16,
        false
    ),
    gpu!(
        "qwen2.5-coder-7b-instruct",
        "Qwen/Qwen2.5-Coder-7B-Instruct",
        "Qwen2ForCausalLM",
        7.62,
        15.2,
        28,
        4,
        128,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "qwen2.5-coder-32b-instruct",
        "Qwen/Qwen2.5-Coder-32B-Instruct",
        "Qwen2ForCausalLM",
        32.8,
        65.5,
        64,
        8,
        128,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "deepseek-r1-distill-qwen-14b",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
        "Qwen2ForCausalLM",
        14.8,
        29.5,
        48,
        8,
        128,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "deepseek-r1-distill-llama-8b",
        "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        "LlamaForCausalLM",
        8.03,
        16.1,
        32,
        8,
        128,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "gemma-3-4b-instruct",
        "google/gemma-3-4b-it",
        "Gemma3ForConditionalGeneration",
        4.3,
        8.6,
        34,
        4,
        256,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "gemma-3-27b-instruct",
        "google/gemma-3-27b-it",
        "Gemma3ForConditionalGeneration",
        27.4,
        54.8,
        62,
        16,
        128,
        131072,
        Bf16,
        false
    ),
    gpu!(
        "gpt-oss-20b",
        "openai/gpt-oss-20b",
        "GptOssForCausalLM",
        20.9,
        13.8,
        24,
        8,
        64,
        131072,
        Mxfp4,
        false
    ),
    gpu!(
        "gpt-oss-120b",
        "openai/gpt-oss-120b",
        "GptOssForCausalLM",
        116.8,
        65.3,
        36,
        8,
        64,
        131072,
        Mxfp4,
        false
    ),
];

/// name, repo, architecture, params (B), layers, kv heads, head dim, max context.
type GgufFacts = (
    &'static str,
    &'static str,
    &'static str,
    f64,
    u64,
    u64,
    u64,
    u64,
);

/// Architecture facts of the GGUF presets of `kaito_core::model::catalogue`, by name.
const GGUF_FACTS: &[GgufFacts] = &[
    // name, repo, architecture, params (B), layers, kv heads, head dim, max context
    (
        "smollm2-135m-instruct",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "LlamaForCausalLM",
        0.135,
        30,
        3,
        64,
        8192,
    ),
];

/// Looks a preset up by name (case-insensitive): GGUF presets first, then KAITO's GPU presets.
pub fn find(name: &str) -> Option<ModelFacts> {
    if let Some(p) = local::find_preset(name) {
        let facts = GGUF_FACTS.iter().find(|f| f.0 == p.name)?;
        let quant = p.file_name.rsplit('.').nth(1).unwrap_or("gguf");
        return Some(ModelFacts {
            name: p.name,
            repo: facts.1,
            architecture: facts.2,
            params_billion: facts.3,
            weights_bytes: p.size,
            layers: facts.4,
            kv_heads: facts.5,
            head_dim: facts.6,
            max_context: facts.7,
            dtype: Dtype::Gguf(quant),
            gated: false,
            runtime: Runtime::Kaito,
        });
    }
    GPU_PRESETS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
        .copied()
}

/// Looks a preset up by its Hugging Face repository (`deepseek-ai/DeepSeek-V3`), as KAITO's
/// MultiRoleInference names models. A repository that a preset's repository extends with a
/// dated suffix (`DeepSeek-V3` → `DeepSeek-V3-0324`) matches that preset.
pub fn find_by_repo(repo: &str) -> Option<ModelFacts> {
    let lower = repo.to_ascii_lowercase();
    GPU_PRESETS
        .iter()
        .find(|m| m.repo.eq_ignore_ascii_case(repo))
        .or_else(|| {
            GPU_PRESETS.iter().find(|m| {
                m.repo
                    .to_ascii_lowercase()
                    .starts_with(&format!("{lower}-"))
            })
        })
        .copied()
}

/// Every preset name, GGUF first.
pub fn names() -> Vec<&'static str> {
    local::preset_names()
        .into_iter()
        .chain(GPU_PRESETS.iter().map(|m| m.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The lookup the integration tests use (tests/common/reference.rs): `KAITO_REFERENCE_DIR`,
    // else ../shared/kaito-reference beside the repository; absent = one notice, or a failure
    // under CI.
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/common/reference.rs"
    ));

    /// Every model of KAITO's `supported_models.yaml` is in the catalogue, gated alike. Only
    /// KAITO's list can check this, so without the reference manifests it is skipped.
    #[test]
    fn covers_kaito_supported_models() {
        let Some(dir) = reference_dir() else {
            return;
        };
        let file = dir.join("supported_models.yaml");
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        for m in doc["models"].as_sequence().unwrap() {
            let name = m["name"].as_str().unwrap();
            if name == "base" {
                continue;
            }
            let facts =
                find(name).unwrap_or_else(|| panic!("preset {name} missing from the catalogue"));
            let gated = m["downloadAuthRequired"].as_bool().unwrap_or(false);
            assert_eq!(facts.gated, gated, "{name}: gated");
        }
    }

    #[test]
    fn smollm2_is_a_cpu_gguf_preset() {
        let m = find("smollm2-135m-instruct").unwrap();
        assert_eq!(m.runtime, Runtime::Kaito);
        assert_eq!(m.dtype, Dtype::Gguf("Q4_1"));
        assert_eq!(m.weights_bytes, 98_362_432);
    }
}
