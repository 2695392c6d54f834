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

use super::checkpoint::TensorMap;
use super::linear::Linear;
use super::model::dense_linear;
use super::{device_of, kind_of, LoadedCheckpoint};
use crate::error::{Error, Result};
use crate::quant::{tensor_bytes, QuantLinear, QuantScheme};

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
    /// points; see [`crate::quant::format`]).
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
