//! The quant engine: the torch engine whose decoder projections are weight-only quantized
//! ([`crate::quant::QuantLinear`]). A float checkpoint is quantized while loading (scheme from
//! `EngineConfig::quantization`, INT8 by default); a pre-quantized one
//! (`quantization_config.json`, see [`crate::quant::format`]) is read as stored.

use std::path::Path;

use kaito_core::EngineConfig;
use tch::Kind;

use super::checkpoint::TensorMap;
use super::linear::Linear;
use super::model::dense_linear;
use super::{device_of, kind_of, TorchBackend};
use crate::error::{Error, Result};
use crate::quant::{read_quantization_config, QuantLinear, QuantScheme};

/// Loads the checkpoint in `dir` with quantized projections and starts the engine thread.
pub fn load(dir: &Path, served_name: &str, config: &EngineConfig) -> Result<TorchBackend> {
    let device = device_of(config)?;
    let kind = kind_of(config, device)?;
    let stored = read_quantization_config(dir)?;
    let scheme: QuantScheme = match &stored {
        Some(stored) => {
            let scheme = stored.scheme()?;
            if let Some(asked) = config.quantization.as_deref() {
                if asked.parse::<QuantScheme>()? != scheme {
                    return Err(Error::InvalidSetting(format!(
                        "quantization `{asked}` was asked for, but {} is a pre-quantized {scheme} checkpoint",
                        dir.display(),
                    )));
                }
            }
            scheme
        }
        None => config.quantization.as_deref().unwrap_or("int8").parse()?,
    };
    let label = scheme.to_string().to_uppercase();
    let mut build = |tensors: &mut TensorMap, name: &str, shape: [i64; 2], bias: bool| {
        let quantized_on_disk = stored.as_ref().is_some_and(|c| c.is_quantized(name));
        if stored.is_some() && !quantized_on_disk {
            return dense_linear(tensors, name, shape, bias, kind, device);
        }
        let bias = if bias {
            let b = tensors.take(&format!("{name}.bias"), &[shape[0]])?;
            Some(b.to_device(device).to_kind(kind))
        } else {
            None
        };
        let weight = if quantized_on_disk {
            let mut part = |suffix: &str| {
                tensors
                    .take_any(&format!("{name}.{suffix}"))
                    .map(|t| t.to_device(device))
            };
            let qweight = part("qweight")?;
            let scales = part("scales")?;
            let zeros = match scheme {
                QuantScheme::Int8 => None,
                QuantScheme::Int4 { .. } => Some(part("zeros")?),
            };
            QuantLinear::from_parts(scheme, qweight, scales, zeros, kind)?
        } else {
            let float = tensors.take(&format!("{name}.weight"), &shape)?;
            QuantLinear::quantize(&float.to_device(device).to_kind(Kind::Float), scheme, kind)?
        };
        if [weight.out_features(), weight.in_features()] != shape {
            return Err(Error::ModelLoad {
                path: dir.display().to_string(),
                message: format!(
                    "quantized layer {name} is [{}, {}], config.json implies {shape:?}",
                    weight.out_features(),
                    weight.in_features()
                ),
            });
        }
        Ok(Linear::Quantized { weight, bias })
    };
    TorchBackend::load_with(dir, served_name, config, "quant", Some(&label), &mut build)
}
