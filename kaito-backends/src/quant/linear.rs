//! [`QuantLinear`]: a linear layer (no bias) whose weight is held quantized.

use std::collections::HashMap;
use std::sync::Arc;

use tch::{Device, Kind, TchError, Tensor};

use super::cpu_int4_layout::{pack_for_cpu, CpuInt4Layout};
use super::kernels::{self, FusedKernel};
use super::nibble_probe;
use super::scheme::QuantScheme;
use super::stored::{tensor_bytes, StoredWeights};
use super::{int4, int8};
use crate::error::Result;

/// Above this many activation rows a CPU INT8 layer dequantizes its weight (to bf16) and runs
/// one matmul instead of `_weight_int8pack_mm`. libtorch's CPU kernels cost the same per row
/// whatever the row count (about 1 ms per row at 4096x4096 on one thread), while dequantizing
/// costs a fixed ~60 ms there and a bf16 GEMM ~0.3 ms per row: the two cross near 80-128 rows
/// (`forward_timings` in this file's tests).
pub const CPU_INT8_FUSED_MAX_ROWS: i64 = 96;

/// Above this many activation rows a CPU INT4 layer unpacks and dequantizes its weight (to bf16)
/// and runs one matmul instead of `_weight_int4pack_mm_for_cpu` (about 0.75 ms per row at
/// 4096x4096 on one thread, against ~150 ms + 0.3 ms per row): they cross near 256-384 rows.
pub const CPU_INT4_FUSED_MAX_ROWS: i64 = 256;

/// A bias-free linear layer `y = x Wᵀ` whose weight `W [out, in]` is held quantized
/// (see [`QuantScheme`]).
///
/// The layer keeps the quantized weight on its device in the form the fastest usable kernel
/// takes (see [`QuantLinear::forward_path`]):
///
/// - INT8: `i8 [out, in]` codes and per-channel scales; up to [`CPU_INT8_FUSED_MAX_ROWS`] rows
///   of `x` go through `_weight_int8pack_mm` (CPU: in bf16; CUDA: in bf16, or f16 for f16 layers).
/// - INT4 on CPU with a group size of 32/64/128/256 and `out % 16 == 0`: codes repacked for
///   `_weight_int4pack_mm_for_cpu` plus a bf16 `(scale, zero)` table; `x` goes through it in bf16
///   up to [`CPU_INT4_FUSED_MAX_ROWS`] rows.
/// - INT4 on CUDA (sm80+, `in % 32 == 0`, `out % 8 == 0`): codes repacked for
///   `_weight_int4pack_mm`, `x` in bf16.
/// - Otherwise: the portable codes, dequantized to the activation kind at every call.
///
/// libtorch 2.11 vectorizes its CPU kernels for bf16 only, so on CPU a layer with a fused kernel
/// computes in bf16 whatever its compute kind (also for many rows, where it dequantizes to bf16
/// for one matmul); the output is cast back to the input's kind. Every fused path is verified
/// once per process against dequantize-then-matmul before use (see `kernels.rs`); when a kernel
/// call fails the layer falls back to dequantize-then-matmul.
pub struct QuantLinear {
    scheme: QuantScheme,
    out_features: i64,
    in_features: i64,
    compute_kind: Kind,
    device: Device,
    held: Held,
}

/// What a layer keeps on its device.
enum Held {
    Int8 {
        codes: Tensor,
        scales: Tensor,
        /// Scales in the kernel's activation kind, when `_weight_int8pack_mm` is used.
        fused: Option<(Kind, Tensor)>,
    },
    Int4Plain {
        packed: Tensor,
        scales: Tensor,
        zeros: Tensor,
    },
    Int4Cpu {
        packed: Tensor,
        scales: Tensor,
        zeros: Tensor,
        scales_and_zeros: Tensor,
        layout: Arc<CpuInt4Layout>,
    },
    Int4Cuda {
        packed: Tensor,
        scales: Tensor,
        zeros: Tensor,
        scales_and_zeros: Tensor,
        inner_k_tiles: i64,
    },
}

impl QuantLinear {
    /// Quantizes a float `weight [out, in]` (on any device; the layer stays there) for
    /// activations of `compute_kind`.
    ///
    /// INT4 needs an even `in`; when the scheme's group size does not divide `in` it is halved
    /// until it does ([`QuantLinear::scheme`] reports the group size used).
    pub fn quantize(weight: &Tensor, scheme: QuantScheme, compute_kind: Kind) -> Result<Self> {
        Ok(Self::prepare(
            StoredWeights::quantize(weight, scheme)?,
            compute_kind,
            true,
        ))
    }

    /// Builds the layer `name` (the module path without `.weight`) from checkpoint tensors
    /// `NAME.qweight`, `NAME.scales` and, for INT4, `NAME.zeros` (see [`super::format`]). The
    /// layer lives on `NAME.qweight`'s device.
    pub fn from_tensors(
        name: &str,
        tensors: &HashMap<String, Tensor>,
        scheme: QuantScheme,
        compute_kind: Kind,
    ) -> Result<Self> {
        Ok(Self::prepare(
            StoredWeights::from_tensors(name, tensors, scheme)?,
            compute_kind,
            true,
        ))
    }

    /// Builds a layer from its three checkpoint tensors (`zeros` is `None` for INT8), for
    /// loaders that fetch tensors one at a time. Same checks as [`QuantLinear::from_tensors`].
    pub fn from_parts(
        scheme: QuantScheme,
        qweight: Tensor,
        scales: Tensor,
        zeros: Option<Tensor>,
        compute_kind: Kind,
    ) -> Result<Self> {
        Ok(Self::prepare(
            StoredWeights::from_parts(scheme, qweight, scales, zeros)?,
            compute_kind,
            true,
        ))
    }

    /// `x [..., in]` (of the compute kind) times `Wᵀ`: `[..., out]` of `x`'s kind.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut shape = x.size();
        if let Some(last) = shape.last_mut() {
            *last = self.out_features;
        }
        if x.numel() == 0 {
            return Tensor::zeros(shape, (x.kind(), x.device()));
        }
        let rows = x.reshape([-1, self.in_features]);
        let y = self.fused_forward(&rows).unwrap_or_else(|| {
            let kind = self.fallback_kind(rows.kind());
            rows.to_kind(kind).matmul(&self.dequantize_as(kind).tr())
        });
        y.to_kind(x.kind()).reshape(shape)
    }

    /// The weight `[out, in]` in the compute kind.
    pub fn dequantize(&self) -> Tensor {
        self.dequantize_as(self.compute_kind)
    }

    /// Bytes of every tensor the layer holds (codes, scales, zero points and any kernel tables).
    pub fn weight_bytes(&self) -> u64 {
        self.held_tensors().into_iter().map(tensor_bytes).sum()
    }

    /// The scheme, with the group size this layer really uses.
    pub fn scheme(&self) -> QuantScheme {
        self.scheme
    }

    /// Input features.
    pub fn in_features(&self) -> i64 {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> i64 {
        self.out_features
    }

    /// The activation kind the layer was built for.
    pub fn compute_kind(&self) -> Kind {
        self.compute_kind
    }

    /// The device the weights are on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The same layer on `device`, repacked for the kernels usable there.
    pub fn to(&self, device: Device) -> Self {
        Self::prepare(self.stored().to_device(device), self.compute_kind, true)
    }

    /// How `forward` computes for a few rows: `"_weight_int8pack_mm"`,
    /// `"_weight_int4pack_mm_for_cpu"`, `"_weight_int4pack_mm"` or `"dequantize+matmul"`.
    pub fn forward_path(&self) -> &'static str {
        match &self.held {
            Held::Int8 { fused: Some(_), .. } => "_weight_int8pack_mm",
            Held::Int4Cpu { .. } => "_weight_int4pack_mm_for_cpu",
            Held::Int4Cuda { .. } => "_weight_int4pack_mm",
            Held::Int8 { fused: None, .. } | Held::Int4Plain { .. } => "dequantize+matmul",
        }
    }

    /// The checkpoint tensors of this layer as module `name` (see [`super::format`]), on the CPU.
    pub fn save_tensors(&self, name: &str) -> Vec<(String, Tensor)> {
        self.stored().tensors(name)
    }

    /// Prepares portable weights for `compute_kind` on their device; `allow_fused: false` keeps
    /// the portable form (dequantize-then-matmul at every call).
    pub(crate) fn prepare(stored: StoredWeights, compute_kind: Kind, allow_fused: bool) -> Self {
        let device = stored.qweight.device();
        let StoredWeights {
            scheme,
            out_features,
            in_features,
            qweight,
            scales,
            zeros,
        } = stored;
        let held = match zeros {
            None => {
                let kind = kernels::kernel_kind(FusedKernel::Int8, device, compute_kind);
                let fused = (allow_fused && kernels::kernel_works(FusedKernel::Int8, device, kind))
                    .then(|| (kind, scales.to_kind(kind)));
                Held::Int8 {
                    codes: qweight,
                    scales,
                    fused,
                }
            }
            Some(zeros) => {
                let group_size = scheme.group_size().unwrap_or(in_features);
                let fusable = allow_fused && kernels::INT4_KERNEL_GROUP_SIZES.contains(&group_size);
                match device {
                    Device::Cpu if fusable => {
                        prepare_int4_cpu(&qweight, &scales, &zeros, out_features, in_features)
                    }
                    Device::Cuda(_) if fusable => {
                        prepare_int4_cuda(&qweight, &scales, &zeros, out_features, in_features)
                    }
                    _ => None,
                }
                .unwrap_or(Held::Int4Plain {
                    packed: qweight,
                    scales,
                    zeros,
                })
            }
        };
        QuantLinear {
            scheme,
            out_features,
            in_features,
            compute_kind,
            device,
            held,
        }
    }

    /// The fused kernel's result for `rows [m, in]`, or `None` when no kernel applies (or, on
    /// CPU, `m` is above the kernel's row limit) or the kernel fails.
    fn fused_forward(&self, rows: &Tensor) -> Option<Tensor> {
        let max_rows = match self.held {
            // On CUDA too: dequantizing there costs microseconds, and cuBLAS beats a
            // weight-only kernel once there are many rows.
            Held::Int8 { .. } => CPU_INT8_FUSED_MAX_ROWS,
            Held::Int4Cpu { .. } => CPU_INT4_FUSED_MAX_ROWS,
            _ => i64::MAX,
        };
        if rows.size()[0] > max_rows {
            return None;
        }
        match self.call_fused_kernel(rows)? {
            Ok(y) => Some(y),
            Err(e) => {
                tracing::debug!(path = self.forward_path(), error = %e, "fused kernel failed; dequantizing");
                None
            }
        }
    }

    /// The fused kernel's result for `rows [m, in]`; `None` when the layer has no kernel.
    fn call_fused_kernel(&self, rows: &Tensor) -> Option<std::result::Result<Tensor, TchError>> {
        let bf16 = || rows.to_kind(Kind::BFloat16);
        Some(match &self.held {
            Held::Int8 {
                codes,
                fused: Some((kind, scales)),
                ..
            } => kernels::int8_mm(&rows.to_kind(*kind), codes, scales),
            Held::Int4Cpu {
                packed,
                scales_and_zeros,
                ..
            } => kernels::int4_cpu_mm(&bf16(), packed, self.group_size(), scales_and_zeros),
            Held::Int4Cuda {
                packed,
                scales_and_zeros,
                ..
            } => kernels::int4_cuda_mm(&bf16(), packed, self.group_size(), scales_and_zeros),
            Held::Int8 { fused: None, .. } | Held::Int4Plain { .. } => return None,
        })
    }

    /// The kind dequantize-then-matmul runs in for activations of `kind`: bf16 for a CPU layer
    /// with a fused kernel (as the kernel would), else `kind`.
    fn fallback_kind(&self, kind: Kind) -> Kind {
        match &self.held {
            Held::Int8 {
                fused: Some((fused_kind, _)),
                ..
            } if self.device == Device::Cpu => *fused_kind,
            Held::Int4Cpu { .. } => Kind::BFloat16,
            _ => kind,
        }
    }

    fn group_size(&self) -> i64 {
        self.scheme.group_size().unwrap_or(self.in_features)
    }

    fn dequantize_as(&self, kind: Kind) -> Tensor {
        match &self.held {
            Held::Int8 { codes, scales, .. } => int8::dequantize(codes, scales, kind),
            Held::Int4Plain {
                packed,
                scales,
                zeros,
            } => int4::dequantize(&int4::unpack(packed), scales, zeros, kind),
            Held::Int4Cpu {
                packed,
                scales,
                zeros,
                layout,
                ..
            } => int4::dequantize(
                &layout.unpack(packed, self.in_features),
                scales,
                zeros,
                kind,
            ),
            Held::Int4Cuda { .. } => self.stored().dequantize(kind),
        }
    }

    /// The portable form (repacking the kernel layouts back into plain codes).
    fn stored(&self) -> StoredWeights {
        let (qweight, scales, zeros) = match &self.held {
            Held::Int8 { codes, scales, .. } => {
                (codes.shallow_clone(), scales.shallow_clone(), None)
            }
            Held::Int4Plain {
                packed,
                scales,
                zeros,
            } => (packed.shallow_clone(), scales.shallow_clone(), Some(zeros)),
            Held::Int4Cpu {
                packed,
                scales,
                zeros,
                layout,
                ..
            } => (
                int4::pack(&layout.unpack(packed, self.in_features)),
                scales.shallow_clone(),
                Some(zeros),
            ),
            Held::Int4Cuda {
                packed,
                scales,
                zeros,
                inner_k_tiles,
                ..
            } => (
                unpack_cuda(packed, *inner_k_tiles, self.out_features, self.in_features),
                scales.shallow_clone(),
                Some(zeros),
            ),
        };
        StoredWeights {
            scheme: self.scheme,
            out_features: self.out_features,
            in_features: self.in_features,
            qweight,
            scales,
            zeros: zeros.map(Tensor::shallow_clone),
        }
    }

    fn held_tensors(&self) -> Vec<&Tensor> {
        match &self.held {
            Held::Int8 {
                codes,
                scales,
                fused,
            } => {
                let mut v = vec![codes, scales];
                v.extend(fused.as_ref().map(|(_, s)| s));
                v
            }
            Held::Int4Plain {
                packed,
                scales,
                zeros,
            } => vec![packed, scales, zeros],
            Held::Int4Cpu {
                packed,
                scales,
                zeros,
                scales_and_zeros,
                ..
            }
            | Held::Int4Cuda {
                packed,
                scales,
                zeros,
                scales_and_zeros,
                ..
            } => vec![packed, scales, zeros, scales_and_zeros],
        }
    }
}

/// INT4 repacked for `_weight_int4pack_mm_for_cpu`, when its layout is known and it works here.
fn prepare_int4_cpu(
    qweight: &Tensor,
    scales: &Tensor,
    zeros: &Tensor,
    out_features: i64,
    in_features: i64,
) -> Option<Held> {
    if out_features % 16 != 0
        || !kernels::kernel_works(FusedKernel::Int4Cpu, Device::Cpu, Kind::BFloat16)
    {
        return None;
    }
    let layout = CpuInt4Layout::for_rows(out_features)?;
    let packed = pack_for_cpu(&int4::unpack(qweight)).ok()?;
    debug_assert_eq!(packed.size(), [out_features, in_features / 2]);
    Some(Held::Int4Cpu {
        scales_and_zeros: kernels::int4_scales_and_zeros(scales, zeros, Kind::BFloat16),
        packed,
        scales: scales.shallow_clone(),
        zeros: zeros.shallow_clone(),
        layout,
    })
}

/// INT4 repacked for `_weight_int4pack_mm` (CUDA), when the shapes fit and it works here.
fn prepare_int4_cuda(
    qweight: &Tensor,
    scales: &Tensor,
    zeros: &Tensor,
    out_features: i64,
    in_features: i64,
) -> Option<Held> {
    let device = qweight.device();
    let inner_k_tiles = kernels::int4_cuda_inner_k_tiles(in_features)?;
    if out_features % 8 != 0
        || !kernels::kernel_works(FusedKernel::Int4Cuda, device, Kind::BFloat16)
    {
        return None;
    }
    let packed = kernels::pack_for_cuda(qweight, inner_k_tiles).ok()?;
    Some(Held::Int4Cuda {
        scales_and_zeros: kernels::int4_scales_and_zeros(scales, zeros, Kind::BFloat16),
        packed,
        scales: scales.shallow_clone(),
        zeros: zeros.shallow_clone(),
        inner_k_tiles,
    })
}

/// Our `u8 [out, in/2]` codes back from the CUDA kernel layout, by probing the packing op at this
/// shape (a few packs on the GPU and an `i64` index per weight, transiently).
fn unpack_cuda(packed: &Tensor, inner_k_tiles: i64, out_features: i64, in_features: i64) -> Tensor {
    let pack = |codes: &Tensor| kernels::pack_for_cuda(&int4::pack(codes), inner_k_tiles);
    let sources = nibble_probe::nibble_sources(&pack, out_features, in_features, packed.device())
        .expect("the CUDA INT4 packing that built this layer is a nibble permutation");
    let nibbles = nibble_probe::nibbles_of(packed);
    let codes = Tensor::zeros([out_features * in_features], (Kind::Uint8, packed.device()))
        .scatter(0, &sources, &nibbles);
    int4::pack(&codes.view([out_features, in_features]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: Device = Device::Cpu;

    fn max_abs(t: &Tensor) -> f64 {
        t.abs().max().double_value(&[])
    }

    fn random_weight(out: i64, inp: i64) -> Tensor {
        Tensor::randn([out, inp], (Kind::Float, CPU)) * 0.02
    }

    /// `layer.forward(x)` against `x @ dequantize()ᵀ` in f32, relative to the output's size.
    fn forward_error(layer: &QuantLinear, x: &Tensor) -> f64 {
        let y = layer.forward(x);
        let mut shape = x.size();
        *shape.last_mut().unwrap() = layer.out_features();
        assert_eq!(y.size(), shape);
        assert_eq!(y.kind(), x.kind());
        let reference = x
            .to_kind(Kind::Float)
            .matmul(&layer.dequantize().to_kind(Kind::Float).tr());
        max_abs(&(y.to_kind(Kind::Float) - &reference)) / max_abs(&reference)
    }

    fn layers(weight: &Tensor, scheme: QuantScheme, kind: Kind) -> (QuantLinear, QuantLinear) {
        let fused = QuantLinear::quantize(weight, scheme, kind).unwrap();
        let plain = QuantLinear::prepare(
            StoredWeights::quantize(weight, scheme).unwrap(),
            kind,
            false,
        );
        (fused, plain)
    }

    #[test]
    fn forward_matches_dequantized_matmul_on_fused_and_fallback_paths() {
        tch::set_num_threads(1);
        tch::manual_seed(1);
        let weight = random_weight(128, 256);
        for scheme in [QuantScheme::Int8, QuantScheme::int4()] {
            for kind in [Kind::Float, Kind::BFloat16] {
                let (fused, plain) = layers(&weight, scheme, kind);
                assert_ne!(
                    fused.forward_path(),
                    "dequantize+matmul",
                    "{scheme} {kind:?}"
                );
                assert_eq!(plain.forward_path(), "dequantize+matmul");
                assert!(fused.dequantize().equal(&plain.dequantize()));
                // bf16 activations (those of the fused layers and bf16 layers) agree to ~1e-2.
                for rows in [
                    1,
                    3,
                    CPU_INT8_FUSED_MAX_ROWS + 5,
                    CPU_INT4_FUSED_MAX_ROWS + 5,
                ] {
                    let x = Tensor::randn([rows, 2, 256], (Kind::Float, CPU)).to_kind(kind);
                    for layer in [&fused, &plain] {
                        let err = forward_error(layer, &x);
                        let float =
                            kind == Kind::Float && layer.forward_path() == "dequantize+matmul";
                        assert!(
                            err < if float { 1e-5 } else { 3e-2 },
                            "{scheme} {kind:?} {} rows {rows}: {err}",
                            layer.forward_path()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn quantized_forward_is_close_to_the_float_layer() {
        tch::set_num_threads(1);
        tch::manual_seed(2);
        let weight = random_weight(64, 512);
        let x = Tensor::randn([4, 512], (Kind::Float, CPU));
        let exact = x.matmul(&weight.tr());
        for (scheme, bound) in [(QuantScheme::Int8, 0.02), (QuantScheme::int4(), 0.2)] {
            let layer = QuantLinear::quantize(&weight, scheme, Kind::Float).unwrap();
            let err = max_abs(&(layer.forward(&x) - &exact)) / max_abs(&exact);
            assert!(err < bound, "{scheme}: {err}");
        }
    }

    #[test]
    fn weight_bytes_against_f16() {
        tch::set_num_threads(1);
        let (out, inp) = (256, 1024);
        let f16_bytes = (out * inp * 2) as f64;
        let weight = random_weight(out, inp);
        for kind in [Kind::Float, Kind::BFloat16] {
            let (fused, plain) = layers(&weight, QuantScheme::int4(), kind);
            for layer in [fused, plain] {
                let ratio = layer.weight_bytes() as f64 / f16_bytes;
                assert!(ratio <= 0.3, "INT4 {}: {ratio}", layer.forward_path());
            }
            let (fused, plain) = layers(&weight, QuantScheme::Int8, kind);
            for layer in [fused, plain] {
                let ratio = layer.weight_bytes() as f64 / f16_bytes;
                assert!(
                    (0.5..0.52).contains(&ratio),
                    "INT8 {}: {ratio}",
                    layer.forward_path()
                );
            }
        }
    }

    #[test]
    fn save_and_load_round_trip_through_safetensors() {
        tch::set_num_threads(1);
        tch::manual_seed(4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.safetensors");
        let name = "model.layers.0.mlp.up_proj";
        for scheme in [QuantScheme::Int8, QuantScheme::Int4 { group_size: 64 }] {
            let layer =
                QuantLinear::quantize(&random_weight(96, 192), scheme, Kind::BFloat16).unwrap();
            let saved = layer.save_tensors(name);
            let expected_names: Vec<String> = match scheme {
                QuantScheme::Int8 => vec!["qweight", "scales"],
                QuantScheme::Int4 { .. } => vec!["qweight", "scales", "zeros"],
            }
            .into_iter()
            .map(|s| format!("{name}.{s}"))
            .collect();
            assert_eq!(
                saved.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                expected_names
            );
            Tensor::write_safetensors(&saved, &path).unwrap();
            let read: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
                .unwrap()
                .into_iter()
                .collect();
            for (n, t) in &saved {
                assert!(read[n].equal(t), "{n}");
            }
            let loaded = QuantLinear::from_tensors(name, &read, scheme, Kind::BFloat16).unwrap();
            assert_eq!(loaded.scheme(), layer.scheme());
            assert_eq!(loaded.forward_path(), layer.forward_path());
            assert!(loaded.dequantize().equal(&layer.dequantize()));
            let x = Tensor::randn([2, 192], (Kind::BFloat16, CPU));
            assert!(loaded.forward(&x).equal(&layer.forward(&x)));
        }
    }

    #[test]
    fn from_tensors_rejects_inconsistent_tensors() {
        let name = "m";
        let layer = QuantLinear::quantize(&random_weight(32, 64), QuantScheme::int4(), Kind::Float)
            .unwrap();
        let mut tensors: HashMap<String, Tensor> = layer.save_tensors(name).into_iter().collect();
        assert!(QuantLinear::from_tensors(name, &tensors, QuantScheme::Int8, Kind::Float).is_err());
        tensors.insert("m.zeros".into(), Tensor::zeros([32, 3], (Kind::Uint8, CPU)));
        let err = QuantLinear::from_tensors(name, &tensors, QuantScheme::int4(), Kind::Float);
        assert!(err.is_err());
        tensors.remove("m.zeros");
        let err = QuantLinear::from_tensors(name, &tensors, QuantScheme::int4(), Kind::Float);
        assert!(err.err().unwrap().to_string().contains("m.zeros"));
    }

    #[test]
    fn group_size_not_dividing_in_features() {
        tch::set_num_threads(1);
        tch::manual_seed(6);
        // 576 = 4.5 x 128: the group is halved to 64, which the CPU kernel still takes.
        let weight = random_weight(64, 576);
        let layer = QuantLinear::quantize(&weight, QuantScheme::int4(), Kind::BFloat16).unwrap();
        assert_eq!(layer.scheme(), QuantScheme::Int4 { group_size: 64 });
        assert_eq!(layer.save_tensors("m")[1].1.size(), [64, 9]);
        let x = Tensor::randn([3, 576], (Kind::BFloat16, CPU));
        assert!(forward_error(&layer, &x) < 3e-2);
        // 48 = 3 x 16: group 16 has no fused kernel; the layer dequantizes.
        let layer = QuantLinear::quantize(&random_weight(64, 48), QuantScheme::int4(), Kind::Float)
            .unwrap();
        assert_eq!(layer.scheme(), QuantScheme::Int4 { group_size: 16 });
        assert_eq!(layer.forward_path(), "dequantize+matmul");
        // An odd input size cannot be packed in pairs.
        let err = QuantLinear::quantize(&random_weight(8, 33), QuantScheme::int4(), Kind::Float);
        assert!(err.err().unwrap().to_string().contains("even"));
    }

    #[test]
    fn empty_input_gives_empty_output() {
        let layer = QuantLinear::quantize(&random_weight(32, 64), QuantScheme::int4(), Kind::Float)
            .unwrap();
        let y = layer.forward(&Tensor::zeros([0, 64], (Kind::Float, CPU)));
        assert_eq!(y.size(), [0, 32]);
    }

    #[test]
    fn to_device_keeps_the_weights() {
        tch::set_num_threads(1);
        let weight = random_weight(64, 256);
        for scheme in [QuantScheme::Int8, QuantScheme::int4()] {
            let layer = QuantLinear::quantize(&weight, scheme, Kind::BFloat16).unwrap();
            let moved = layer.to(CPU);
            assert_eq!(moved.device(), CPU);
            assert_eq!(moved.weight_bytes(), layer.weight_bytes());
            assert!(moved.dequantize().equal(&layer.dequantize()));
        }
    }

    /// Median milliseconds of `f` over `runs` calls (after one warm-up call).
    fn median_ms(runs: usize, mut f: impl FnMut() -> Tensor) -> f64 {
        let _ = f();
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let start = std::time::Instant::now();
                let _ = f();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[runs / 2]
    }

    /// The numbers behind [`CPU_INT8_FUSED_MAX_ROWS`], [`CPU_INT4_FUSED_MAX_ROWS`] and the choice
    /// of kernels, one thread:
    /// `cargo test --release -p kaito-backends --no-default-features --features quant --lib
    /// quant::linear::tests::forward_timings -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn forward_timings() {
        tch::set_num_threads(1);
        tch::manual_seed(10);
        let (out, inp) = (4096, 4096);
        let weight = random_weight(out, inp);
        let dense_f32 = weight.shallow_clone();
        let dense_bf16 = weight.to_kind(Kind::BFloat16);
        println!("one thread, [{out}, {inp}] weight, milliseconds per call (median of 5)");
        println!("| rows | dense f32 | dense bf16 | path | INT8 fused | INT8 dequant | INT4 fused | INT4 dequant (plain) | INT4 dequant (from kernel layout) |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for kind in [Kind::BFloat16, Kind::Float] {
            let (int8, int8_plain) = layers(&weight, QuantScheme::Int8, kind);
            let (int4, int4_plain) = layers(&weight, QuantScheme::int4(), kind);
            for rows in [1, 4, 16, 64, 128, 256, 512] {
                let x = Tensor::randn([rows, inp], (Kind::Float, CPU)).to_kind(kind);
                let dense = |w: &Tensor| {
                    let x = x.to_kind(w.kind());
                    median_ms(5, || x.matmul(&w.tr()))
                };
                let fused =
                    |l: &QuantLinear| median_ms(5, || l.call_fused_kernel(&x).unwrap().unwrap());
                let dequant =
                    |l: &QuantLinear| median_ms(5, || x.matmul(&l.dequantize_as(kind).tr()));
                println!(
                    "| {rows} | {:.2} | {:.2} | {kind:?} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    dense(&dense_f32),
                    dense(&dense_bf16),
                    fused(&int8),
                    dequant(&int8_plain),
                    fused(&int4),
                    dequant(&int4_plain),
                    dequant(&int4),
                );
            }
        }
    }

    /// Needs a CUDA device (none on the CI machines): the fused CUDA paths agree with the CPU.
    #[test]
    #[ignore]
    fn cuda_matches_cpu() {
        let cuda = Device::Cuda(0);
        tch::manual_seed(8);
        let weight = random_weight(256, 512);
        let x = Tensor::randn([3, 512], (Kind::BFloat16, CPU));
        for scheme in [QuantScheme::Int8, QuantScheme::int4()] {
            let layer = QuantLinear::quantize(&weight, scheme, Kind::BFloat16).unwrap();
            let gpu = layer.to(cuda);
            eprintln!("{scheme} on CUDA: {}", gpu.forward_path());
            assert!(gpu.dequantize().to_device(CPU).equal(&layer.dequantize()));
            let y = gpu.forward(&x.to_device(cuda)).to_device(CPU);
            assert!(forward_error(&layer, &x) < 3e-2);
            let diff = max_abs(&(y.to_kind(Kind::Float) - layer.forward(&x).to_kind(Kind::Float)));
            assert!(diff < 3e-2 * max_abs(&layer.forward(&x).to_kind(Kind::Float)));
            assert!(gpu.to(CPU).dequantize().equal(&layer.dequantize()));
        }
    }
}
