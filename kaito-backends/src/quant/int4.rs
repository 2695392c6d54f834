//! INT4 weight-only quantization: asymmetric, one scale and zero point per group of input
//! features, two codes per byte.
//!
//! For output channel `o` and group `g` (input features `g*G .. (g+1)*G`, `G` the group size),
//! `w ≈ (q - zero) · scale` with a code `q` in `0..=15`, a positive `f16` scale and a zero point in
//! sixteenths of a code, `zero = zeros / 16` with `zeros` a `u8` (so `0 ≤ zero ≤ 15.9375`; the
//! grid need not contain 0 exactly). Each group's scale and zero point minimize its squared error:
//!
//! 1. Grid search over scales: with `lo` and `hi` the group's minimum and maximum, for each
//!    candidate `scale = (hi - lo) / (14 + 0.2k)`, `k = 0..=10`, take the codes
//!    `clamp(round((w - lo) / scale), 0, 15)` and fit `w ≈ s · q + b` to them by least squares
//!    (so candidates above 15 steps clip the extremes and let the fit recentre them). Keep the
//!    fit with the smallest squared error.
//! 2. Alternate twice: codes `clamp(round((w - b) / s), 0, 15)` for the fit, then the
//!    least-squares fit for those codes (kept only where the error drops).
//! 3. Round `scale = s` to `f16` and `zero = -b / s` to the nearest sixteenth in
//!    `0..=15.9375`, and take the nearest codes for those.
//! 4. Per group, keep the min/max round-to-nearest result ([`fit_groups_min_max`]: range widened
//!    to include 0, integer zero point) instead where its error is smaller.
//!
//! All of it runs on whole tensors of groups, a chunk of rows at a time. Scales are at least the
//! smallest normal `f16`.
//!
//! On weights that already sit on a 4-bit affine grid (as a checkpoint converted from a Q4_1
//! GGUF does, group 32) and the same group size, the search recovers that grid: the
//! requantization is lossless up to the rounding of the scale and zero point (at most 1/32 of a
//! step from the zero point).
//!
//! The zero point's fractional part is what lets it follow an asymmetric grid (with integer
//! zero points, SmolLM2's Q4_1-derived weights at group 32 kept 74% top-1 agreement instead of
//! 98%); one byte for it keeps group 32 at 0.297x of the `f16` bytes where an `f16` zero point
//! would take 0.3125x.
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
/// Min/max scales are multiplied by this before rounding to `f16` so the rounding never shrinks
/// them.
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
    /// `f16 [out, in / group]`, positive.
    pub scales: Tensor,
    /// `u8 [out, in / group]`: zero points in sixteenths of a code (see [`zero_points`]).
    pub zeros: Tensor,
}

/// Elements of weight searched at once (bounds the search's temporaries).
const CHUNK_ELEMENTS: i64 = 1 << 22;
/// Scale candidates of the search: `scale = (max - min) / (15 + SEARCH_FIRST + k · SEARCH_DELTA)`
/// for `k` in `0..=SEARCH_STEPS`. Finer grids (21 candidates, 4 or 8 refinements) lowered the
/// squared error of SmolLM2-135M's projections by under 1% for about twice the time.
const SEARCH_FIRST: f64 = -1.0;
const SEARCH_DELTA: f64 = 0.2;
const SEARCH_STEPS: i64 = 10;
/// Alternations of "codes given scale and offset" and "least-squares scale and offset given the
/// codes" after the search.
const REFINE_ROUNDS: usize = 2;
/// Zero points are stored in units of `1 / ZERO_POINT_STEPS` of a code.
pub(crate) const ZERO_POINT_STEPS: f64 = 16.0;
/// Largest stored zero point, `u8::MAX`.
const MAX_ZEROS: f64 = 255.0;

/// The zero points `[out, groups]` in code units (`f32`) from their stored `u8` form.
pub(crate) fn zero_points(zeros: &Tensor) -> Tensor {
    zeros.to_kind(Kind::Float) / ZERO_POINT_STEPS
}

/// Quantizes a float `[out, in]` weight with `group_size` (which must divide `in`), choosing each
/// group's scale and zero point to minimize its squared error (see the module docs).
pub(crate) fn quantize(weight: &Tensor, group_size: i64) -> Result<Int4Codes> {
    quantize_by(weight, group_size, fit_groups)
}

/// Quantizes with each group's min/max range widened to include 0 and rounded to the nearest
/// code: the baseline [`quantize`] is never worse than (per group, in squared error).
#[cfg(test)]
pub(crate) fn quantize_min_max(weight: &Tensor, group_size: i64) -> Result<Int4Codes> {
    quantize_by(weight, group_size, fit_groups_min_max)
}

/// Runs `fit` over `[groups, group_size]` blocks of `weight`, a chunk of rows at a time.
fn quantize_by(
    weight: &Tensor,
    group_size: i64,
    fit: fn(&Tensor) -> Result<Int4Codes>,
) -> Result<Int4Codes> {
    let (out, in_features) = weight
        .size2()
        .map_err(|e| Error::Quantization(e.to_string()))?;
    if !bool::try_from(weight.isfinite().all()).unwrap_or(false) {
        return Err(Error::Quantization("weight holds NaN/inf".into()));
    }
    let groups = in_features / group_size;
    let rows_per_chunk = (CHUNK_ELEMENTS / in_features.max(1)).max(1);
    let (mut codes, mut scales, mut zeros) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = 0;
    while start < out {
        let rows = rows_per_chunk.min(out - start);
        let w = weight
            .narrow(0, start, rows)
            .to_kind(Kind::Float)
            .reshape([rows * groups, group_size]);
        let q = fit(&w)?;
        codes.push(q.codes.reshape([rows, in_features]));
        scales.push(q.scales.reshape([rows, groups]));
        zeros.push(q.zeros.reshape([rows, groups]));
        start += rows;
    }
    let join = |parts: Vec<Tensor>, kind: Kind, width: i64| match parts.len() {
        0 => Tensor::zeros([0, width], (kind, weight.device())),
        _ => Tensor::cat(&parts, 0),
    };
    Ok(Int4Codes {
        codes: join(codes, Kind::Uint8, in_features),
        scales: join(scales, Kind::Half, groups),
        zeros: join(zeros, Kind::Uint8, groups),
    })
}

/// Min/max round-to-nearest over `[n, G]` groups (the range widened to include 0, scale
/// rounded up so the 16 codes cover it, integer zero point).
fn fit_groups_min_max(w: &Tensor) -> Result<Int4Codes> {
    let lo = w.amin([1], false).clamp_max(0.0);
    let hi = w.amax([1], false).clamp_min(0.0);
    let step = ((hi - &lo) / INT4_MAX_CODE).clamp_min(F16_MIN_NORMAL);
    let scales = (step * F16_ROUND_UP).to_kind(Kind::Half);
    if !bool::try_from(scales.isfinite().all()).unwrap_or(false) {
        return Err(Error::Quantization(
            "a group's range is too large for f16 scales".into(),
        ));
    }
    let s = scales.to_kind(Kind::Float);
    let zeros = (-lo / &s).round().clamp(0.0, INT4_MAX_CODE);
    let codes = ((w / s.unsqueeze(1)).round() + zeros.unsqueeze(1))
        .clamp(0.0, INT4_MAX_CODE)
        .to_kind(Kind::Uint8);
    Ok(Int4Codes {
        codes,
        scales,
        zeros: (zeros * ZERO_POINT_STEPS).to_kind(Kind::Uint8),
    })
}

/// Per-group `Σ ((q - zero) · scale - w)²` of `[n, G]` groups.
pub(crate) fn group_squared_error(w: &Tensor, q: &Int4Codes) -> Tensor {
    let per_group = |t: &Tensor| t.unsqueeze(1);
    (dequantize(
        &q.codes,
        &per_group(&q.scales),
        &per_group(&q.zeros),
        Kind::Float,
    ) - w)
        .square()
        .sum_dim_intlist(-1, false, Kind::Float)
}

/// What the search knows about `[n, G]` groups of centred weights (`Σ w = 0` per group).
struct Groups<'a> {
    w: &'a Tensor,
    n: f64,
    /// `Σ w²`, `[n]`.
    sum_w2: Tensor,
    /// Smallest scale allowed, `[n]`.
    min_scale: Tensor,
}

/// An affine fit `w ≈ scale · q + offset` of each group (centred units) and its squared error.
struct Affine {
    scale: Tensor,
    offset: Tensor,
    error: Tensor,
}

impl Affine {
    /// Per group, whichever of `self` and `other` has the smaller error.
    fn or_better(self, other: Affine) -> Affine {
        let better = other.error.lt_tensor(&self.error);
        Affine {
            scale: other.scale.where_self(&better, &self.scale),
            offset: other.offset.where_self(&better, &self.offset),
            error: other.error.where_self(&better, &self.error),
        }
    }
}

impl Groups<'_> {
    /// Codes `clamp(round((w - offset) / scale), 0, 15)` as `f32`.
    fn codes(&self, scale: &Tensor, offset: &Tensor) -> Tensor {
        ((self.w - offset.unsqueeze(1)) / scale.unsqueeze(1))
            .round()
            .clamp(0.0, INT4_MAX_CODE)
    }

    /// The least-squares scale and offset for fixed `codes`. A group whose codes are all equal,
    /// or whose slope comes out below its smallest scale, keeps `fallback_scale` (with the best
    /// offset for it).
    fn least_squares(&self, codes: &Tensor, fallback_scale: &Tensor) -> Affine {
        let n = self.n;
        let sum_q = codes.sum_dim_intlist(-1, false, Kind::Float);
        let sum_qq = codes.square().sum_dim_intlist(-1, false, Kind::Float);
        let sum_qw = (codes * self.w).sum_dim_intlist(-1, false, Kind::Float);
        let det = &sum_qq * n - sum_q.square();
        let slope = &sum_qw * n / det.clamp_min(0.5);
        let usable = det.gt(0.5).logical_and(&slope.ge_tensor(&self.min_scale));
        let scale = slope.where_self(&usable, fallback_scale);
        // With Σ w = 0, the best offset for a scale is -scale · mean(q).
        let offset = -(&scale * &sum_q) / n;
        // Σ (scale · q + offset - w)², expanded with Σ w = 0.
        let error = &self.sum_w2 - &scale * &sum_qw * 2.0
            + scale.square() * &sum_qq
            + &scale * &offset * &sum_q * 2.0
            + offset.square() * n;
        Affine {
            scale,
            offset,
            error,
        }
    }
}

/// The error-minimizing fit of `[n, G]` groups: a grid search over scales, least-squares
/// refinement, then rounding to the stored `f16` values; per group, the min/max fit wins where
/// it is better after rounding.
fn fit_groups(w: &Tensor) -> Result<Int4Codes> {
    let mean = w.mean_dim([1i64].as_slice(), true, Kind::Float);
    let centred = w - &mean;
    let lo = centred.amin([1], false);
    let range = centred.amax([1], false) - &lo;
    let min_scale = Tensor::full_like(&range, F16_MIN_NORMAL);
    let groups = Groups {
        w: &centred,
        n: w.size()[1] as f64,
        sum_w2: centred.square().sum_dim_intlist(-1, false, Kind::Float),
        min_scale,
    };
    let mut best: Option<Affine> = None;
    for k in 0..=SEARCH_STEPS {
        let steps = INT4_MAX_CODE + SEARCH_FIRST + k as f64 * SEARCH_DELTA;
        let scale = (&range / steps).maximum(&groups.min_scale);
        let fit = groups.least_squares(&groups.codes(&scale, &lo), &scale);
        best = Some(match best {
            None => fit,
            Some(b) => b.or_better(fit),
        });
    }
    let mut best = best.expect("at least one candidate");
    for _ in 0..REFINE_ROUNDS {
        let codes = groups.codes(&best.scale, &best.offset);
        let refit = groups.least_squares(&codes, &best.scale);
        best = best.or_better(refit);
    }
    // Round to the stored values, then take the best codes for those.
    let scales = best.scale.to_kind(Kind::Half);
    let s = scales.to_kind(Kind::Float);
    let zeros = (-(best.offset + mean.squeeze_dim(1)) / &s * ZERO_POINT_STEPS)
        .round()
        .clamp(0.0, MAX_ZEROS)
        .to_kind(Kind::Uint8);
    if !bool::try_from(scales.isfinite().all()).unwrap_or(false) {
        return Err(Error::Quantization(
            "a group's range is too large for f16 scales".into(),
        ));
    }
    let codes = (w / s.unsqueeze(1) + zero_points(&zeros).unsqueeze(1))
        .round()
        .clamp(0.0, INT4_MAX_CODE)
        .to_kind(Kind::Uint8);
    let searched = Int4Codes {
        codes,
        scales,
        zeros,
    };
    let plain = fit_groups_min_max(w)?;
    let keep = group_squared_error(w, &searched).le_tensor(&group_squared_error(w, &plain));
    Ok(Int4Codes {
        codes: searched.codes.where_self(&keep.unsqueeze(1), &plain.codes),
        scales: searched.scales.where_self(&keep, &plain.scales),
        zeros: searched.zeros.where_self(&keep, &plain.zeros),
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
    let offset = (-(zero_points(zeros) * &s)).to_kind(kind).unsqueeze(2);
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

    /// Per-group squared errors of `quantize` and `quantize_min_max` on `w`.
    fn errors(w: &Tensor, group: i64) -> (Tensor, Tensor) {
        let (out, in_features) = w.size2().unwrap();
        let groups = w.view([out * in_features / group, group]);
        let per_group = |q: Int4Codes| {
            let flat = |t: &Tensor| t.reshape([-1]);
            let q = Int4Codes {
                codes: q.codes.reshape([-1, group]),
                scales: flat(&q.scales),
                zeros: flat(&q.zeros),
            };
            group_squared_error(&groups, &q)
        };
        (
            per_group(quantize(w, group).unwrap()),
            per_group(quantize_min_max(w, group).unwrap()),
        )
    }

    #[test]
    fn search_error_is_at_most_min_max_per_group() {
        tch::set_num_threads(1);
        tch::manual_seed(7);
        let (out, in_features) = (64, 512);
        let normal = Tensor::randn([out, in_features], (Kind::Float, Device::Cpu)) * 0.03;
        // About 1% of the weights 10-30x larger, as outlier input channels make them.
        let spikes = Tensor::rand([out, in_features], (Kind::Float, Device::Cpu))
            .lt(0.01)
            .to_kind(Kind::Float)
            * (Tensor::rand([out, in_features], (Kind::Float, Device::Cpu)) * 20.0 + 10.0);
        let outliers = &normal * (spikes + 1.0);
        let skewed = normal.abs() + 0.01;
        for (what, w) in [
            ("normal", &normal),
            ("outliers", &outliers),
            ("positive", &skewed),
        ] {
            for group in [32, 64, 128] {
                let q = quantize(w, group).unwrap();
                assert_eq!(q.codes.size(), [out, in_features]);
                assert_eq!(q.scales.size(), [out, in_features / group]);
                assert_eq!((q.scales.kind(), q.zeros.kind()), (Kind::Half, Kind::Uint8));
                assert!(all(q.codes.le(15)) && all(q.scales.gt(0.0)));
                let (searched, min_max) = errors(w, group);
                assert!(all(searched.le_tensor(&min_max)), "{what} g{group}");
                let (s, m) = (searched.sum(Kind::Double), min_max.sum(Kind::Double));
                let ratio = s.double_value(&[]) / m.double_value(&[]);
                // All-positive groups gain little: their zero point stays below 16.
                if what != "positive" {
                    assert!(ratio < 0.95, "{what} g{group}: error ratio {ratio}");
                }
            }
        }
    }

    #[test]
    fn weights_on_a_4_bit_grid_are_recovered() {
        tch::set_num_threads(1);
        tch::manual_seed(11);
        // Q4_1-like: w = d·q + m per 32 inputs, d and m f16 values.
        let (out, in_features, group) = (16, 256, 32);
        let cpu = (Kind::Float, Device::Cpu);
        let half = |t: Tensor| t.to_kind(Kind::Half).to_kind(Kind::Float);
        let d = half(Tensor::rand([out, in_features / group, 1], cpu) * 0.01 + 0.001);
        let m = half(-(Tensor::rand([out, in_features / group, 1], cpu) * 15.0) * &d);
        // Codes 0 and 15 in every group, as Q4_1's d = (max - min) / 15 makes them.
        let q = Tensor::randint(16, [out, in_features / group, group], cpu);
        let _ = q.narrow(2, 0, 1).fill_(0.0);
        let _ = q.narrow(2, 1, 1).fill_(15.0);
        let w = (q * d + m).view([out, in_features]);
        let quantized = quantize(&w, group).unwrap();
        let back = dequantize(
            &quantized.codes,
            &quantized.scales,
            &quantized.zeros,
            Kind::Float,
        );
        let relative = (back - &w).abs().max() / w.abs().max();
        // Only the zero point's rounding to 1/16 is left: at most 1/32 of a step.
        assert!(
            relative.double_value(&[]) < 1.0 / 32.0 / 15.0 + 1e-4,
            "{relative}"
        );
    }

    #[test]
    fn constant_and_one_sided_groups() {
        let cpu = (Kind::Float, Device::Cpu);
        let w = Tensor::cat(
            &[
                Tensor::full([2, 8], 0.25, cpu),
                Tensor::zeros([2, 8], cpu),
                Tensor::linspace(-1.0, 2.5, 8, cpu).repeat([2, 1]),
                Tensor::full([2, 8], -40.0, cpu),
                Tensor::linspace(1.0, 2.0, 16, cpu).view([2, 8]),
            ],
            1,
        );
        let q = quantize(&w, 8).unwrap();
        let d = dequantize(&q.codes, &q.scales, &q.zeros, Kind::Float);
        let err = (d - &w).abs().view([2, 5, 8]).amax([2], false);
        // Constant groups, and evenly spaced ones around 0, land on the grid.
        let magnitude = w.abs().view([2, 5, 8]).amax([2], false);
        let exact = err
            .narrow(1, 0, 3)
            .le_tensor(&(magnitude.narrow(1, 0, 3) * 1e-3));
        assert!(all(exact), "{err}");
        // Groups far from 0 need a zero point beyond 15.94: within half a step, as min/max.
        let half_step = q.scales.to_kind(Kind::Float) * (0.5 + 1e-3);
        assert!(all(err.le_tensor(&half_step)), "{err}");
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
