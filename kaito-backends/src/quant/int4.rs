//! INT4 weight-only quantization: asymmetric, one scale and zero point per group of input
//! features, two codes per byte.
//!
//! For output channel `o` and group `g` (input features `g*G .. (g+1)*G`, `G` the group size),
//! with `lo = min(0, min w)` and `hi = max(0, max w)` over the group:
//!
//! - `scale = (hi - lo) / 15`, stored as `f16` rounded *up* (so the 16 codes still cover the
//!   group) and never below the smallest normal `f16` (6.1e-5);
//! - `zero = clamp(round(-lo / scale), 0, 15)`, stored as `u8`;
//! - `q = clamp(round(w / scale) + zero, 0, 15)`, and `w ≈ (q - zero) * scale`.
//!
//! The range is widened to include 0 (as most asymmetric quantizers do) so the zero point is
//! always in `0..=15` and every element is within `scale / 2` of its dequantized value.
//!
//! Packed codes are `u8 [out, in/2]`: byte `b` of a row holds code `2b` in its high nibble and
//! code `2b + 1` in its low nibble (the order `torch.ops.aten._convert_weight_to_int4pack` takes on
//! CUDA).
//!
//! When `in` is not a multiple of the requested group size, [`group_size_for`] halves the group
//! until it divides `in`; the group size a layer really uses is `in / scales.size(1)`.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Largest code.
pub(crate) const INT4_MAX_CODE: f64 = 15.0;
/// Smallest positive normal `f16`; scales never go below it.
const F16_MIN_NORMAL: f64 = 6.103_515_625e-5;
/// Scales are multiplied by this before rounding to `f16` so the rounding never shrinks them.
const F16_ROUND_UP: f64 = 1.0 + 1.0 / 1024.0;

/// The group size used for a layer with `in_features` inputs when `requested` was asked for:
/// `requested` itself when it divides `in_features`, else the largest `requested / 2^k` that
/// does. Errors when `in_features` is odd (codes are packed in pairs) or no group of at least 2
/// divides it.
pub(crate) fn group_size_for(in_features: i64, requested: i64) -> Result<i64> {
    if requested < 2 {
        return Err(Error::Quantization(format!(
            "INT4 group size must be at least 2, got {requested}"
        )));
    }
    if in_features % 2 != 0 {
        return Err(Error::Quantization(format!(
            "INT4 needs an even number of input features, got {in_features}"
        )));
    }
    let mut group = requested;
    while group >= 2 {
        if in_features % group == 0 {
            return Ok(group);
        }
        group /= 2;
    }
    Err(Error::Quantization(format!(
        "no INT4 group size of {requested}/2^k divides {in_features} input features"
    )))
}

/// Quantized codes of one layer before packing.
pub(crate) struct Int4Codes {
    /// `u8 [out, in]`, values `0..=15`.
    pub codes: Tensor,
    /// `f16 [out, in / group]`.
    pub scales: Tensor,
    /// `u8 [out, in / group]`, values `0..=15`.
    pub zeros: Tensor,
}

/// Quantizes a float `[out, in]` weight with `group_size` (which must divide `in`).
pub(crate) fn quantize(weight: &Tensor, group_size: i64) -> Result<Int4Codes> {
    let (out, in_features) = weight
        .size2()
        .map_err(|e| Error::Quantization(e.to_string()))?;
    let groups = in_features / group_size;
    let w = weight
        .to_kind(Kind::Float)
        .reshape([out, groups, group_size]);
    let lo = w.amin([2], false).clamp_max(0.0);
    let hi = w.amax([2], false).clamp_min(0.0);
    let step = ((hi - &lo) / INT4_MAX_CODE).clamp_min(F16_MIN_NORMAL);
    let scales = (step * F16_ROUND_UP).to_kind(Kind::Half);
    if !bool::try_from(scales.isfinite().all()).unwrap_or(false) {
        return Err(Error::Quantization(
            "weight holds NaN/inf or a group range too large for f16 scales".into(),
        ));
    }
    let s = scales.to_kind(Kind::Float);
    let zeros = (-lo / &s).round().clamp(0.0, INT4_MAX_CODE);
    let codes = ((w / s.unsqueeze(2)).round() + zeros.unsqueeze(2))
        .clamp(0.0, INT4_MAX_CODE)
        .to_kind(Kind::Uint8)
        .reshape([out, in_features]);
    Ok(Int4Codes {
        codes,
        scales,
        zeros: zeros.to_kind(Kind::Uint8),
    })
}

/// `(q - zero) * scale` as an `[out, in]` tensor of `kind`, from unpacked codes.
///
/// Computed as `q * scale - zero * scale` in one mixed-dtype `addcmul` over the codes (the small
/// `zero * scale` table is formed in `f32` and rounded to `kind` once).
pub(crate) fn dequantize(codes: &Tensor, scales: &Tensor, zeros: &Tensor, kind: Kind) -> Tensor {
    let (out, in_features) = codes.size2().expect("INT4 codes are 2-D");
    let groups = scales.size()[1];
    let s = scales.to_kind(Kind::Float);
    let offset = (-(zeros.to_kind(Kind::Float) * &s))
        .to_kind(kind)
        .unsqueeze(2);
    offset
        .addcmul(
            &codes.view([out, groups, in_features / groups]),
            &s.to_kind(kind).unsqueeze(2),
        )
        .view([out, in_features])
}

/// Packs `u8 [out, in]` codes into `u8 [out, in/2]` (even index in the high nibble).
pub(crate) fn pack(codes: &Tensor) -> Tensor {
    let (out, in_features) = codes.size2().expect("INT4 codes are 2-D");
    let pairs = codes.to_kind(Kind::Uint8).view([out, in_features / 2, 2]);
    pairs
        .select(2, 0)
        .bitwise_left_shift_tensor_scalar(4)
        .bitwise_or_tensor(&pairs.select(2, 1))
}

/// Inverse of [`pack`]: `u8 [out, in/2]` to `u8 [out, in]` codes.
pub(crate) fn unpack(packed: &Tensor) -> Tensor {
    let (out, half) = packed.size2().expect("packed INT4 codes are 2-D");
    let high = packed.bitwise_right_shift_tensor_scalar(4);
    let low = packed.bitwise_and(15);
    Tensor::stack(&[high, low], 2).view([out, half * 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn all(t: Tensor) -> bool {
        bool::try_from(t.all()).unwrap()
    }

    #[test]
    fn dequantize_error_is_at_most_half_a_step() {
        tch::set_num_threads(1);
        tch::manual_seed(7);
        let (out, in_features, group) = (48, 256, 128);
        let w = Tensor::randn([out, in_features], (Kind::Float, Device::Cpu)) * 0.03;
        let q = quantize(&w, group).unwrap();
        assert_eq!(q.scales.kind(), Kind::Half);
        assert_eq!(q.scales.size(), [out, in_features / group]);
        assert_eq!(q.zeros.kind(), Kind::Uint8);
        assert!(all(q.codes.le(15)));
        let d = dequantize(&q.codes, &q.scales, &q.zeros, Kind::Float);
        let err = (d - &w).abs().view([out, in_features / group, group]);
        let bound = q.scales.to_kind(Kind::Float).unsqueeze(2) * (0.5 + 1e-5);
        assert!(all(err.le_tensor(&bound)));
    }

    #[test]
    fn all_positive_and_constant_groups_stay_within_bound() {
        let w = Tensor::cat(
            &[
                Tensor::full([2, 8], 0.25, (Kind::Float, Device::Cpu)),
                Tensor::zeros([2, 8], (Kind::Float, Device::Cpu)),
                Tensor::linspace(1.0, 2.0, 16, (Kind::Float, Device::Cpu)).view([2, 8]),
            ],
            1,
        );
        let q = quantize(&w, 8).unwrap();
        let d = dequantize(&q.codes, &q.scales, &q.zeros, Kind::Float);
        let err = (d - &w).abs().view([2, 3, 8]);
        let bound = q.scales.to_kind(Kind::Float).unsqueeze(2) * (0.5 + 1e-5);
        assert!(all(err.le_tensor(&bound)));
    }

    #[test]
    fn non_finite_weights_are_an_error() {
        let w = Tensor::from_slice(&[1.0f32, f32::NAN, 0.5, 0.25]).view([1, 4]);
        assert!(quantize(&w, 4).is_err());
    }

    #[test]
    fn pack_unpack_round_trip() {
        tch::manual_seed(3);
        let codes = Tensor::randint(16, [5, 12], (Kind::Uint8, Device::Cpu));
        let packed = pack(&codes);
        assert_eq!(packed.size(), [5, 6]);
        assert_eq!(packed.kind(), Kind::Uint8);
        assert!(unpack(&packed).equal(&codes));
        // Even index in the high nibble.
        let first = Tensor::from_slice(&[0xAu8, 0x3]).view([1, 2]);
        assert_eq!(pack(&first).int64_value(&[0, 0]), 0xA3);
    }

    #[test]
    fn group_size_falls_back_by_halving() {
        assert_eq!(group_size_for(4096, 128).unwrap(), 128);
        assert_eq!(group_size_for(576, 128).unwrap(), 64);
        assert_eq!(group_size_for(96, 128).unwrap(), 32);
        assert_eq!(group_size_for(6, 128).unwrap(), 2);
        assert!(group_size_for(575, 128).is_err());
        assert!(group_size_for(4096, 1).is_err());
    }
}
