//! Weight-only quantized linear layers on `tch`: INT8 (symmetric, per output channel) and INT4
//! (asymmetric, group-wise), with the same code path on CPU and CUDA.
//!
//! - [`QuantLinear`] quantizes a float weight (or adopts checkpoint tensors) and computes
//!   `x Wᵀ`, through libtorch's fused kernels where they exist and pay off, else by dequantizing
//!   to the activation kind and running one matmul.
//! - [`format`](mod@format) documents kaito's pre-quantized checkpoint directory; [`quantize_checkpoint`]
//!   writes one from a Hugging Face Llama-family checkpoint and [`read_quantization_config`] tells
//!   a loader it has one.
//! - `kaito_backends::torch::quant_quality::compare_with_float` measures what quantization does
//!   to a model's predictions (top-1 agreement, perplexity, KL) through the torch engine's loader
//!   (it lives there because it runs the torch decoder, which depends on this module).
//!
//! ```no_run
//! use kaito_backends::quant::{QuantLinear, QuantScheme};
//! use tch::{Device, Kind, Tensor};
//!
//! let weight = Tensor::randn([4096, 4096], (Kind::Float, Device::Cpu)) * 0.02;
//! let layer = QuantLinear::quantize(&weight, "int4".parse()?, Kind::BFloat16)?;
//! let x = Tensor::randn([1, 4096], (Kind::BFloat16, Device::Cpu));
//! let y = layer.forward(&x); // [1, 4096] bf16
//! assert!(layer.weight_bytes() * 10 < 3 * 4096 * 4096 * 2); // < 0.3x of f16
//! # Ok::<(), kaito_backends::Error>(())
//! ```

mod checkpoint;
mod cpu_int4_layout;
pub mod format;
mod int4;
mod int8;
mod kernels;
mod linear;
mod nibble_probe;
mod scheme;
mod stored;
pub(crate) use stored::tensor_bytes;

pub use checkpoint::{quantize_checkpoint, QuantReport};
pub use format::{read_quantization_config, QuantizationConfig};
pub use linear::{QuantLinear, CPU_INT4_FUSED_MAX_ROWS, CPU_INT8_FUSED_MAX_ROWS};
pub use scheme::{QuantScheme, DEFAULT_INT4_GROUP_SIZE};
