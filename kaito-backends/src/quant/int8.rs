//! INT8 weight-only quantization: symmetric, one scale per output channel.
//!
//! For output channel `o`: `scale[o] = max|w[o, :]| / 127`, `q = clamp(round(w / scale), -127, 127)`
//! stored as `i8 [out, in]`, and `w ≈ q * scale`. Scales are kept in `f32 [out]`. A row of zeros
//! gets the smallest positive normal `f32` as its scale (its codes are all 0).

use tch::{Kind, Tensor};

/// Largest code magnitude; -128 is never produced so the grid is symmetric.
pub(crate) const INT8_MAX_CODE: f64 = 127.0;

/// Quantizes a float `[out, in]` weight: returns `(codes i8 [out, in], scales f32 [out])`.
pub(crate) fn quantize(weight: &Tensor) -> (Tensor, Tensor) {
    let w = weight.to_kind(Kind::Float);
    let scales = (w.abs().amax([1], false) / INT8_MAX_CODE).clamp_min(f32::MIN_POSITIVE as f64);
    let codes = (&w / scales.unsqueeze(1))
        .round()
        .clamp(-INT8_MAX_CODE, INT8_MAX_CODE)
        .to_kind(Kind::Int8);
    (codes, scales)
}

/// `codes * scale` as a `[out, in]` tensor of `kind` (one mixed-dtype multiply, rounding once
/// to `kind`).
pub(crate) fn dequantize(codes: &Tensor, scales: &Tensor, kind: Kind) -> Tensor {
    codes * scales.to_kind(kind).unsqueeze(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn dequantize_error_is_at_most_half_a_step() {
        tch::set_num_threads(1);
        tch::manual_seed(11);
        let w = Tensor::randn([64, 96], (Kind::Float, Device::Cpu)) * 0.05;
        let (codes, scales) = quantize(&w);
        assert_eq!(codes.kind(), Kind::Int8);
        assert_eq!(scales.size(), [64]);
        let err = (dequantize(&codes, &scales, Kind::Float) - &w).abs();
        let bound = scales.unsqueeze(1) * (0.5 + 1e-5);
        assert!(bool::try_from(err.le_tensor(&bound).all()).unwrap());
        // The largest magnitude of each row maps to ±127.
        let max_code = codes.to_kind(Kind::Int).abs().amax([1], false);
        assert!(bool::try_from(max_code.eq(127).all()).unwrap());
    }

    #[test]
    fn zero_rows_quantize_to_zero() {
        let w = Tensor::zeros([4, 8], (Kind::Float, Device::Cpu));
        let (codes, scales) = quantize(&w);
        assert!(bool::try_from(codes.eq(0).all()).unwrap());
        assert!(bool::try_from(scales.gt(0.0).all()).unwrap());
        let d = dequantize(&codes, &scales, Kind::BFloat16);
        assert!(bool::try_from(d.eq(0.0).all()).unwrap());
    }
}
