//! A linear layer whose weight is either a float matrix or a weight-only quantized one.

use tch::Tensor;

/// `y = x Wᵀ (+ b)` with `W` `[out, in]`.
pub enum Linear {
    /// A float weight in the compute dtype.
    Dense {
        /// `[out, in]`.
        weight: Tensor,
        /// `[out]`.
        bias: Option<Tensor>,
    },
    /// A weight-only quantized weight (INT8 / INT4), dequantized inside the matmul.
    #[cfg(feature = "quant")]
    Quantized {
        /// The packed weight with its scales.
        weight: crate::quant::QuantLinear,
        /// `[out]`, in the compute dtype.
        bias: Option<Tensor>,
    },
}

impl Linear {
    /// `x` is `[..., in]`; the result `[..., out]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Linear::Dense { weight, bias } => x.linear(weight, bias.as_ref()),
            #[cfg(feature = "quant")]
            Linear::Quantized { weight, bias } => {
                let y = weight.forward(x);
                match bias {
                    Some(b) => y + b,
                    None => y,
                }
            }
        }
    }

    /// Bytes the weight (and bias) occupy.
    pub fn weight_bytes(&self) -> u64 {
        let bytes = |t: &Tensor| (t.numel() * t.kind().elt_size_in_bytes()) as u64;
        match self {
            Linear::Dense { weight, bias } => bytes(weight) + bias.as_ref().map_or(0, bytes),
            #[cfg(feature = "quant")]
            Linear::Quantized { weight, bias } => {
                weight.weight_bytes() + bias.as_ref().map_or(0, bytes)
            }
        }
    }
}
