//! `kaito convert`: a GGUF model (path, `hf:` reference or preset) into a Hugging Face checkpoint
//! directory that the torch engine loads.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use kaito_core::model::convert::{convert_gguf_to_hf, ConvertOptions, OutputDType};
use kaito_core::model::plan::{LoadOptions, LoadPlan};

use crate::runtime;

/// `kaito convert`.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// A GGUF file, `hf:ORG/REPO/FILE.gguf[@REV]`, or a preset name. Default: smollm2-135m-instruct.
    #[arg(short, long)]
    pub model: Option<String>,
    /// The checkpoint directory to write (must be absent or empty unless --force).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Element type of the written weights: f32, bf16 or f16.
    #[arg(long, default_value_t = OutputDType::F32)]
    pub dtype: OutputDType,
    /// Replace DIR if it exists and is not empty.
    #[arg(long)]
    pub force: bool,
    /// Model cache directory (default: $KAITO_CACHE_DIR, $XDG_CACHE_HOME/kaito or ~/.cache/kaito).
    #[arg(long, env = "KAITO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Resolves and fetches the model like `kaito serve --model`, then converts it on a blocking thread.
pub async fn run(args: ConvertArgs) -> Result<()> {
    let plan = LoadPlan::resolve(&LoadOptions {
        model: args.model.clone(),
        cache_dir: args.cache_dir.clone(),
        ..LoadOptions::default()
    })?;
    let weights = runtime::fetch(&plan).await?;
    let gguf = weights.primary.clone();
    if gguf.is_dir() {
        bail!(
            "{} is a directory (already a Hugging Face checkpoint?); `kaito convert` takes a GGUF file",
            gguf.display()
        );
    }
    let options = ConvertOptions::default()
        .with_dtype(args.dtype)
        .with_force(args.force);
    let out = args.out.clone();
    let source_path = gguf.clone();
    let result =
        tokio::task::spawn_blocking(move || convert_gguf_to_hf(&source_path, &out, &options))
            .await?;
    let report = match result {
        Ok(report) => report,
        Err(kaito_core::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists && args.out.is_dir() =>
        {
            bail!(
                "output directory {} is not empty; pass --force to replace it",
                args.out.display()
            )
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "converted {} to {}: {} tensors, {} parameters, {} ({:.1} MB); files: {}",
        gguf.display(),
        report.out_dir.display(),
        report.tensors,
        report.parameters,
        report.dtype,
        report.weights_bytes as f64 / 1e6,
        report.files.join(", ")
    );
    Ok(())
}
