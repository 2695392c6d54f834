//! `kaito quantize`: a Hugging Face checkpoint directory into kaito's pre-quantized format
//! (weight-only INT8 / INT4 decoder projections), which `kaito serve` then loads with the quant
//! engine without quantizing at start-up.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

/// `kaito quantize`.
#[derive(Debug, Clone, Args)]
pub struct QuantizeArgs {
    /// The Hugging Face checkpoint directory to quantize (e.g. a `kaito convert` output).
    #[arg(short, long, value_name = "DIR")]
    pub model: PathBuf,
    /// The directory to write.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// int8, int4 (group 128), int4-g32, int4-g64 or int4-g128.
    #[arg(long, default_value = "int8")]
    pub scheme: String,
    /// Replace DIR if it exists and is not empty.
    #[arg(long)]
    pub force: bool,
}

/// Checks the arguments, then quantizes on a blocking thread.
pub async fn run(args: QuantizeArgs) -> Result<()> {
    if !args.model.join("config.json").is_file() {
        bail!(
            "--model: {} is not a Hugging Face checkpoint directory (no config.json)",
            args.model.display()
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
    tokio::task::spawn_blocking(move || quantize(args)).await?
}

#[cfg(feature = "quant")]
fn quantize(args: QuantizeArgs) -> Result<()> {
    use kaito_backends::quant::{quantize_checkpoint, QuantScheme};
    let scheme: QuantScheme = args.scheme.parse()?;
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out)?;
    }
    let report = quantize_checkpoint(&args.model, &args.out, scheme)?;
    println!(
        "quantized {} layers of {} with {}: linear weights {:.1} MB → {:.1} MB ({:.3}× the source dtype); {} float tensors kept; wrote {}",
        report.modules.len(),
        args.model.display(),
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
fn quantize(_: QuantizeArgs) -> Result<()> {
    bail!("this kaito was built without the `quant` feature (cargo build --features kaito-cli/quant, after `eval \"$(scripts/libtorch-env.sh)\"`)")
}
