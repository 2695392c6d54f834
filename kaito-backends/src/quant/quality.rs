//! How much quantization changes a model: the decoder with quantized projections against the
//! float decoder on the same text, through the torch engine's loader
//! ([`crate::torch::LoadedCheckpoint`]).
//!
//! Reported: how often both predict the same next token (top-1 agreement), the perplexity of
//! each on the text, and the mean KL divergence of the quantized next-token distribution from
//! the float one.

use std::path::Path;

use kaito_core::EngineConfig;
use tch::{Kind, Tensor};

use super::stored::tensor_bytes;
use super::{QuantLinear, QuantScheme};
use crate::error::{Error, Result};
use crate::torch::checkpoint::TensorMap;
use crate::torch::linear::Linear;
use crate::torch::model::dense_linear;
use crate::torch::{device_of, kind_of, LoadedCheckpoint};

/// The float and quantized models compared on one text.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityReport {
    /// The scheme, with the group size of the last layer quantized.
    pub scheme: QuantScheme,
    /// Next-token predictions compared (tokens of the text minus one).
    pub predictions: usize,
    /// Fraction of positions where both models' most likely next token is the same.
    pub top1_agreement: f64,
    /// Perplexity of the float model on the text.
    pub float_perplexity: f64,
    /// Perplexity of the quantized model on the text.
    pub quantized_perplexity: f64,
    /// Mean over positions of KL(float ‖ quantized) of the next-token distributions, in nats.
    pub mean_kl: f64,
    /// Bytes of the float model's weights.
    pub float_weight_bytes: u64,
    /// Bytes of the quantized model's weights (in memory, with any kernel tables).
    pub quantized_weight_bytes: u64,
    /// Bytes the quantized projections would take as `f16`.
    pub projection_f16_bytes: u64,
    /// Bytes of the quantized projections as a checkpoint stores them (codes, scales, zero
    /// points; see [`super::format`]).
    pub projection_stored_bytes: u64,
}

impl QualityReport {
    /// Quantized over float perplexity.
    pub fn perplexity_ratio(&self) -> f64 {
        self.quantized_perplexity / self.float_perplexity
    }

    /// Stored projection bytes over their `f16` bytes.
    pub fn projection_bytes_vs_f16(&self) -> f64 {
        self.projection_stored_bytes as f64 / self.projection_f16_bytes as f64
    }
}

/// Next-token log-probabilities of one model over a text.
struct Predictions {
    /// `[t - 1, vocab]`, f32.
    log_probs: Tensor,
    weight_bytes: u64,
}

impl Predictions {
    fn perplexity(&self, targets: &Tensor) -> f64 {
        let nll = -self
            .log_probs
            .gather(1, &targets.unsqueeze(1), false)
            .mean(Kind::Double);
        nll.double_value(&[]).exp()
    }
}

/// Loads the checkpoint in `dir` twice (float, then with every decoder projection quantized
/// with `scheme` while loading) on the device and dtype `config` names, and compares their
/// predictions over `text` (tokenized with the checkpoint's tokenizer, BOS added as the
/// tokenizer does). The float model is dropped before the quantized one is built.
pub fn compare_with_float(
    dir: &Path,
    scheme: QuantScheme,
    text: &str,
    config: &EngineConfig,
) -> Result<QualityReport> {
    let device = device_of(config)?;
    let kind = kind_of(config, device)?;
    let mut dense = |t: &mut TensorMap, name: &str, shape: [i64; 2], bias: bool| {
        dense_linear(t, name, shape, bias, kind, device)
    };
    let float = LoadedCheckpoint::read(dir, "float", config, None, &mut dense)?;
    let tokens = float.tokenizer.encode(text, true, false)?;
    if tokens.len() < 2 {
        return Err(Error::Quantization(format!(
            "the evaluation text has {} token(s); at least 2 are needed",
            tokens.len()
        )));
    }
    let targets: Vec<i64> = tokens[1..].iter().map(|&t| i64::from(t)).collect();
    let targets = Tensor::from_slice(&targets).to_device(device);
    let predict = |loaded: LoadedCheckpoint| Predictions {
        log_probs: loaded
            .model
            .logits_of_sequence(&tokens)
            .narrow(0, 0, tokens.len() as i64 - 1)
            .log_softmax(-1, Kind::Float),
        weight_bytes: loaded.model.weight_bytes(),
    };
    let float = predict(float);

    let mut used_scheme = scheme;
    let (mut projection_f16_bytes, mut projection_stored_bytes) = (0, 0);
    let mut quantized = |t: &mut TensorMap, name: &str, shape: [i64; 2], bias: bool| {
        let weight = t.take(&format!("{name}.weight"), &shape)?;
        let bias = if bias {
            let b = t.take(&format!("{name}.bias"), &[shape[0]])?;
            Some(b.to_device(device).to_kind(kind))
        } else {
            None
        };
        let weight = QuantLinear::quantize(&weight.to_device(device), scheme, kind)?;
        used_scheme = weight.scheme();
        projection_f16_bytes += 2 * (shape[0] * shape[1]) as u64;
        projection_stored_bytes += weight
            .save_tensors(name)
            .iter()
            .map(|(_, t)| tensor_bytes(t))
            .sum::<u64>();
        Ok(Linear::Quantized { weight, bias })
    };
    let loaded = LoadedCheckpoint::read(
        dir,
        "quantized",
        config,
        Some(scheme.name()),
        &mut quantized,
    )?;
    let quant = predict(loaded);

    let agree = float
        .log_probs
        .argmax(-1, false)
        .eq_tensor(&quant.log_probs.argmax(-1, false))
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    let kl = (float.log_probs.exp() * (&float.log_probs - &quant.log_probs))
        .sum_dim_intlist(-1, false, Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    Ok(QualityReport {
        scheme: used_scheme,
        predictions: tokens.len() - 1,
        top1_agreement: agree,
        float_perplexity: float.perplexity(&targets),
        quantized_perplexity: quant.perplexity(&targets),
        mean_kl: kl,
        float_weight_bytes: float.weight_bytes,
        quantized_weight_bytes: quant.weight_bytes,
        projection_f16_bytes,
        projection_stored_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Needs the SmolLM2-135M-Instruct Hugging Face checkpoint (`kaito convert` of the GGUF) in
    /// `KAITO_TEST_HF_DIR`:
    /// `KAITO_TEST_HF_DIR=/path/to/smollm2-hf cargo test --release -p kaito-backends
    /// --no-default-features --features quant --lib quant::quality -- --ignored --nocapture`
    /// The SmolLM2-135M-Instruct Hugging Face checkpoint (`kaito convert` of its Q4_1 GGUF),
    /// from `KAITO_TEST_HF_DIR`. CI sets it; so must anyone running these tests:
    /// `KAITO_TEST_HF_DIR=/path/to/smollm2-hf cargo test --release -p kaito-backends
    /// --no-default-features --features quant --lib quant::quality -- --nocapture`
    fn smollm2_dir() -> String {
        std::env::var("KAITO_TEST_HF_DIR").unwrap_or_else(|_| {
            panic!(
                "KAITO_TEST_HF_DIR is not set: point it at the SmolLM2-135M-Instruct Hugging \
                 Face checkpoint (kaito convert --model <SmolLM2 Q4_1 GGUF> --out DIR)"
            )
        })
    }

    /// Compares `scheme` against the float model (f32, CPU, one thread) and prints the report.
    fn measure(scheme: QuantScheme) -> QualityReport {
        tch::set_num_threads(1);
        let config = EngineConfig {
            dtype: Some("f32".into()),
            ..EngineConfig::default()
        };
        let report = compare_with_float(Path::new(&smollm2_dir()), scheme, TEXT, &config).unwrap();
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
}
