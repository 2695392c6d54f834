//! How much weight-only quantization changes SmolLM2-135M-Instruct (its Hugging Face checkpoint,
//! see `test_models`): top-1 agreement, perplexity and stored bytes against the float model, per
//! scheme. Figures and their command are in docs/backends.md:
//! `cargo test --release -p kaito-backends --no-default-features --features quant --test quant_quality -- --nocapture --test-threads 1`
#![cfg(feature = "quant")]

mod test_models;

use kaito_backends::quant::QuantScheme;
use kaito_backends::torch::quant_quality::{compare_with_float, QualityReport};
use kaito_core::EngineConfig;

/// English prose for the comparison (about 300 tokens).
const TEXT: &str = "The lighthouse stood at the end of a long stone pier, and for most of the year \
    nobody visited it except the keeper, who climbed its spiral stairs every evening to light the \
    lamp. In winter the waves broke over the pier and the spray froze on the railings, so that the \
    whole structure glittered in the morning sun like something made of glass. The keeper kept a \
    journal in which he wrote down the weather, the ships he saw, and the birds that rested on the \
    gallery during storms. Over the years the journal grew into a record of the coast itself: the \
    slow retreat of the cliffs, the arrival of new fishing boats with diesel engines, the closing of \
    the cannery, and the summer when the herring did not come back. When the lamp was finally \
    automated, the keeper was offered a small pension and a cottage in the village. He accepted the \
    pension but refused the cottage, saying that he had grown used to the sound of the sea and could \
    not sleep without it. He rented a room above the harbour instead, and every evening at dusk he \
    walked to the end of the pier to watch the light come on by itself. Children in the village \
    believed he was making sure it still worked, and perhaps he was. Scientists later used his \
    journal to study how the climate of the region had changed over half a century, and they found \
    that his careful notes about the first frost and the last swallow of each year were as reliable \
    as any instrument.";

/// Compares `scheme` against the float model (f32, CPU, one thread) and prints the report.
fn measure(scheme: QuantScheme) -> QualityReport {
    tch::set_num_threads(1);
    let config = EngineConfig {
        dtype: Some("f32".into()),
        ..EngineConfig::default()
    };
    let report = compare_with_float(&test_models::hf_dir(), scheme, TEXT, &config).unwrap();
    println!(
        "{scheme}: top-1 {:.1}%, perplexity {:.2} -> {:.2} ({:+.1}%), KL {:.4}, projections {:.3}x f16 bytes",
        report.top1_agreement * 100.0,
        report.float_perplexity,
        report.quantized_perplexity,
        (report.perplexity_ratio() - 1.0) * 100.0,
        report.mean_kl,
        report.projection_bytes_vs_f16(),
    );
    report
}

/// INT8: at least 95% top-1 agreement, perplexity within 2%.
#[test]
fn int8_smollm2_meets_the_quality_targets() {
    let report = measure(QuantScheme::Int8);
    assert!(report.top1_agreement >= 0.95, "{report:?}");
    assert!(report.perplexity_ratio() <= 1.02, "{report:?}");
    assert!(report.projection_bytes_vs_f16() <= 0.51, "{report:?}");
}

/// INT4 with groups of 32: at least 85% top-1 agreement, perplexity within 10%, at most
/// 0.3x of the f16 bytes. (The checkpoint's weights sit on Q4_1's group-32 grid, which the
/// search recovers.)
#[test]
fn int4_g32_smollm2_meets_the_quality_targets() {
    let report = measure(QuantScheme::Int4 { group_size: 32 });
    assert!(report.top1_agreement >= 0.85, "{report:?}");
    assert!(report.perplexity_ratio() <= 1.10, "{report:?}");
    assert!(report.projection_bytes_vs_f16() <= 0.3, "{report:?}");
}

/// INT4 with the default groups of 128 (64 for SmolLM2's 576-wide inputs) does NOT meet
/// the targets on this checkpoint (see docs/backends.md): this pins what it reaches so a
/// regression shows.
#[test]
fn int4_default_smollm2_reaches_its_measured_quality() {
    let report = measure(QuantScheme::int4());
    assert!(report.top1_agreement >= 0.60, "{report:?}");
    assert!(report.perplexity_ratio() <= 1.45, "{report:?}");
    assert!(report.projection_bytes_vs_f16() <= 0.3, "{report:?}");
}
