//! Command-line arguments.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kaito_core::model::plan::LoadOptions;
use kaito_core::Workspace;

/// kaito: serve open-source LLMs as simply as a microservice.
#[derive(Debug, Parser)]
#[command(name = "kaito", version, about)]
pub struct Cli {
    /// More logs (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a model over an OpenAI-compatible HTTP API (default: the bundled SmolLM2-135M-Instruct).
    Serve(ServeArgs),
    /// Chat with a model in the terminal.
    Chat(ModelArgs),
    /// Generate one answer to a prompt and print it.
    Generate(GenerateArgs),
    /// Download a model into the cache and print its local path.
    Pull(PullArgs),
    /// List the model store, or make room in it.
    Cache(crate::cache::CacheArgs),
    /// Models as OCI artifacts: package (and push) a GGUF file, pull one.
    Model(ModelCommandArgs),
    /// Convert a GGUF model into a Hugging Face checkpoint directory (safetensors, config, tokenizer).
    Convert(crate::convert::ConvertArgs),
    /// Quantize a Hugging Face checkpoint directory (weight-only INT8/INT4) for the quant engine.
    Quantize(crate::quantize::QuantizeArgs),
    /// Print the kaito.sh CRDs (Workspace, InferenceSet) as multi-document YAML.
    Crd,
    /// Print every Kubernetes object the controller would apply for the Workspaces/InferenceSets in a file.
    Render(FileArgs),
    /// Print the GPU/CPU sizing of the Workspaces in a file, with the arithmetic.
    Estimate(FileArgs),
    /// Load-test OpenAI-compatible servers: a concurrency sweep of streaming chat requests.
    Bench(crate::bench::BenchArgs),
    /// Run the Kubernetes controllers (Workspace, InferenceSet), webhook and metrics.
    Controller(kaito_k8s::cli::ControllerOptions),
}

/// A manifest file.
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// YAML file with Workspaces and/or InferenceSets.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which model and engine settings.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// A GGUF file, a Hugging Face checkpoint directory, `hf:ORG/REPO/FILE.gguf[@REV]`, or a preset
    /// name. Default: smollm2-135m-instruct.
    #[arg(short, long)]
    pub model: Option<String>,
    /// Engine: auto (GGUF → llama-cpp, checkpoint directory → torch), llama-cpp, torch, quant.
    #[arg(long)]
    pub backend: Option<String>,
    /// Device of the torch/quant engines: cpu, cuda, cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Compute dtype of the torch/quant engines: f32, bf16, f16.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Weight-only quantization of the quant engine: int8 or int4 (pre-quantized checkpoints keep theirs).
    #[arg(long)]
    pub quantization: Option<String>,
    /// Serve what this Workspace YAML declares (KAITO `kaito.sh/v1beta1` Workspace).
    #[arg(short = 'f', long = "file", value_name = "WORKSPACE_YAML")]
    pub workspace: Option<PathBuf>,
    /// Inference threads.
    #[arg(short, long)]
    pub threads: Option<u32>,
    /// Context window of one sequence, in tokens.
    #[arg(short = 'c', long)]
    pub ctx_size: Option<u32>,
    /// Sequences decoded at once.
    #[arg(long)]
    pub parallel: Option<u32>,
    /// Requests that may wait for a free sequence before new ones get 503.
    #[arg(long)]
    pub max_queue: Option<u32>,
    /// Batch-invariant decoding: a request's output does not depend on concurrent requests (slower under load).
    #[arg(long)]
    pub deterministic: bool,
    /// Host memory (MiB) for the KV of finished prompts, reused by later prompts sharing a prefix
    /// (llama-cpp engine; default 128, 0 turns it off).
    #[arg(long, value_name = "MIB")]
    pub prefix_cache_mib: Option<u32>,
    /// The model cache.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Where models are stored and how much may stay there (serve, chat, generate, pull).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Model cache directory (default: $KAITO_CACHE_DIR, $XDG_CACHE_HOME/kaito or ~/.cache/kaito).
    #[arg(long, env = "KAITO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most the model cache may hold (GiB): after fetching, least recently used models that no
    /// process holds are evicted; a larger model is refused.
    #[arg(long, env = "KAITO_CACHE_MAX_GIB", value_name = "GIB")]
    pub cache_max_gib: Option<f64>,
    /// A read-only model store searched before the network (repeatable; e.g. a shared volume):
    /// a hit is hard-linked into the cache, or copied from another file system.
    #[arg(
        long = "cache-tier",
        value_name = "DIR",
        env = "KAITO_CACHE_TIERS",
        value_delimiter = ':'
    )]
    pub cache_tiers: Vec<PathBuf>,
}

impl StoreArgs {
    /// `options` with these settings.
    fn apply(&self, options: LoadOptions) -> LoadOptions {
        LoadOptions {
            cache_dir: self.cache_dir.clone(),
            cache_max_gib: self.cache_max_gib,
            cache_tiers: self.cache_tiers.clone(),
            ..options
        }
    }
}

/// `kaito serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Model and engine.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(short, long, default_value_t = 8080)]
    pub port: u16,
    /// Model id the API serves (default: the preset or file name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// File with API keys, one per line; requests to /v1 then need `Authorization: Bearer KEY`.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// An API key (alternative to --api-key-file).
    #[arg(long, env = "KAITO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout: u64,
}

/// `kaito generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// The prompt (sent as a user message).
    pub prompt: String,
    /// Model and engine.
    #[command(flatten)]
    pub model: ModelArgs,
    /// New-token limit.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Treat the prompt as raw text instead of a chat message.
    #[arg(long)]
    pub raw: bool,
}

/// `kaito pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// A preset name, `hf:ORG/REPO/FILE.gguf` or `oci://HOST[:PORT]/REPO[:TAG]`. Default:
    /// smollm2-135m-instruct.
    pub model: Option<String>,
    /// The model cache.
    #[command(flatten)]
    pub store: StoreArgs,
    /// After pulling, keep holding the model until SIGTERM or Ctrl-C, so that no
    /// `kaito cache prune` (in any process) evicts it: what a preheat DaemonSet runs.
    #[arg(long)]
    pub hold: bool,
}

impl PullArgs {
    /// The model to fetch, as load options.
    pub fn load_options(&self) -> LoadOptions {
        self.store.apply(LoadOptions {
            model: self.model.clone(),
            ..LoadOptions::default()
        })
    }
}

impl ModelArgs {
    /// The load options these flags ask for, with the Workspace file (`-f`) read and parsed.
    pub fn load_options(&self, served_name: Option<&str>) -> anyhow::Result<LoadOptions> {
        let workspace = match (&self.model, &self.workspace) {
            (Some(_), Some(_)) => bail!("give either --model or -f WORKSPACE_YAML, not both"),
            (_, Some(path)) => {
                if !path.is_file() {
                    bail!("workspace file {} does not exist", path.display());
                }
                Some(Workspace::from_file(path).with_context(|| format!("{}", path.display()))?)
            }
            (_, None) => None,
        };
        Ok(self.store.apply(LoadOptions {
            model: self.model.clone(),
            workspace,
            served_name: served_name.map(str::to_owned),
            backend: self.backend.clone(),
            threads: self.threads,
            ctx_size: self.ctx_size,
            parallel: self.parallel,
            max_queue: self.max_queue,
            // The flag only turns it on; off is the default (and a Workspace may turn it on).
            deterministic: self.deterministic.then_some(true),
            prefix_cache_mib: self.prefix_cache_mib,
            device: self.device.clone(),
            dtype: self.dtype.clone(),
            quantization: self.quantization.clone(),
            ..LoadOptions::default()
        }))
    }
}

/// `kaito model`.
#[derive(Debug, Clone, Args)]
pub struct ModelCommandArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ModelAction,
}

/// `kaito model` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ModelAction {
    /// Package a model as a CNCF ModelPack artifact, one layer per file: an OCI image layout
    /// (--out) or a push to a registry (--push oci://HOST[:PORT]/REPO:TAG). The same files give
    /// the same digest.
    Package(PackageArgs),
    /// Pull a model (oci://…, hf:…, a preset) into the model store and print its path.
    Pull(PullArgs),
}

/// `kaito model package`.
#[derive(Debug, Clone, Args)]
pub struct PackageArgs {
    /// A GGUF file (a shard of a split model brings all its shards), a checkpoint directory (a
    /// Hugging Face checkpoint, a `kaito quantize` output), or anything `kaito pull` resolves (a
    /// preset, hf:…, oci://…).
    #[arg(long)]
    pub model: Option<String>,
    /// Write an OCI image layout here.
    #[arg(long, conflicts_with = "push", required_unless_present = "push")]
    pub out: Option<PathBuf>,
    /// The tag in the layout's index.json (with --out).
    #[arg(long, default_value = "latest", requires = "out")]
    pub tag: String,
    /// Push to this reference: oci://HOST[:PORT]/REPOSITORY[:TAG].
    #[arg(long)]
    pub push: Option<String>,
    /// Speak plain HTTP to this registry host (besides localhost, 127.0.0.1 and ::1); repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure_registry: Vec<String>,
    /// Model cache directory.
    #[arg(long, env = "KAITO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}
