//! `kaito quantize`: a Hugging Face checkpoint directory into kaito's pre-quantized format
//! (weight-only INT8 / INT4 decoder projections), which `kaito serve` then loads with the quant
//! engine without quantizing at start-up.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use kaito_core::model::plan::{LoadOptions, LoadPlan};

use crate::runtime;

/// `kaito quantize`.
#[derive(Debug, Clone, Args)]
pub struct QuantizeArgs {
    /// The Hugging Face checkpoint directory to quantize (e.g. a `kaito convert` output), or an
    /// `oci://` reference to one (pulled into the model store first).
    #[arg(short, long, value_name = "DIR|oci://…")]
    pub model: String,
    /// The directory to write.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// int8, int4 (group 128), int4-g32, int4-g64 or int4-g128.
    #[arg(long, default_value = "int8")]
    pub scheme: String,
    /// Replace DIR if it exists and is not empty.
    #[arg(long)]
    pub force: bool,
    /// Model cache directory, for an `oci://` model.
    #[arg(long, env = "KAITO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Checks the arguments, then quantizes on a blocking thread.
pub async fn run(args: QuantizeArgs) -> Result<()> {
    // A local directory as it is; anything else (oci://…) through the model store, held while
    // it is read.
    let (model, held) = if !args.model.contains("://") {
        (PathBuf::from(&args.model), None)
    } else {
        let plan = LoadPlan::resolve(&LoadOptions {
            model: Some(args.model.clone()),
            cache_dir: args.cache_dir.clone(),
            ..LoadOptions::default()
        })?;
        let weights = runtime::fetch(&plan).await?;
        (weights.primary.clone(), Some(weights))
    };
    if !model.join("config.json").is_file() {
        bail!(
            "--model: {} is not a Hugging Face checkpoint directory (no config.json)",
            model.display()
        );
    }
    if !kaito_core::engine::QUANTIZATION_NAMES.contains(&args.scheme.as_str()) {
        bail!(
            "--scheme: `{}` is not one of {}",
            args.scheme,
            kaito_core::engine::QUANTIZATION_NAMES.join(", ")
        );
    }
    let occupied = args
        .out
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if occupied && !args.force {
        bail!(
            "--out: {} exists and is not empty (add --force to replace it)",
            args.out.display()
        );
    }
    let done = tokio::task::spawn_blocking(move || quantize(&model, args)).await?;
    drop(held);
    done
}

#[cfg(feature = "quant")]
fn quantize(model: &Path, args: QuantizeArgs) -> Result<()> {
    use kaito_backends::quant::{quantize_checkpoint, QuantScheme};
    let scheme: QuantScheme = args.scheme.parse()?;
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out)?;
    }
    let report = quantize_checkpoint(model, &args.out, scheme)?;
    println!(
        "quantized {} layers of {} with {}: linear weights {:.1} MB → {:.1} MB ({:.3}× the source dtype); {} float tensors kept; wrote {}",
        report.modules.len(),
        model.display(),
        scheme,
        report.source_linear_bytes as f64 / 1e6,
        report.quantized_linear_bytes as f64 / 1e6,
        report.quantized_linear_bytes as f64 / report.source_linear_bytes.max(1) as f64,
        report.float_tensors,
        args.out.display()
    );
    Ok(())
}

#[cfg(not(feature = "quant"))]
fn quantize(_: &Path, _: QuantizeArgs) -> Result<()> {
    bail!("this kaito was built without the `quant` feature (cargo build --features kaito-cli/quant, after `eval \"$(scripts/libtorch-env.sh)\"`)")
}
