//! libtorch's fused weight-only matmul kernels, and whether each one works here.
//!
//! | kernel | op | device, activation kind | weight form |
//! |---|---|---|---|
//! | [`FusedKernel::Int8`] | `_weight_int8pack_mm` | CPU (bf16); CUDA (bf16 or f16) | `i8 [out, in]` + scales of the activation kind |
//! | [`FusedKernel::Int4Cpu`] | `_weight_int4pack_mm_for_cpu` | CPU (bf16) | `_convert_weight_to_int4pack_for_cpu` layout + `[in/group, out, 2]` scales and zeros |
//! | [`FusedKernel::Int4Cuda`] | `_weight_int4pack_mm` | CUDA (bf16, sm80+) | `_convert_weight_to_int4pack` layout + the same scales and zeros |
//!
//! On x86 CPUs libtorch 2.11 vectorizes both CPU kernels for bf16 activations only (f32 and f16
//! run a scalar loop 10-30x slower), so on CPU the kernels always run in bf16 and activations of
//! another kind are cast around the call. Whether a kernel runs correctly on a device is
//! checked once per process on a small random layer against the dequantize-then-matmul result
//! ([`kernel_works`]); a kernel that errors or disagrees is never used there.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tch::{Device, Kind, Tensor};

use super::cpu_int4_layout::{pack_for_cpu, CpuInt4Layout};
use super::{int4, int8};

/// One of libtorch's fused weight-only matmuls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FusedKernel {
    /// `_weight_int8pack_mm`.
    Int8,
    /// `_weight_int4pack_mm_for_cpu`.
    Int4Cpu,
    /// `_weight_int4pack_mm`.
    Int4Cuda,
}

/// Group sizes the INT4 kernels accept.
pub(crate) const INT4_KERNEL_GROUP_SIZES: [i64; 4] = [32, 64, 128, 256];

/// The activation kind `kernel` runs in on `device` for a layer computing in `compute_kind`.
pub(crate) fn kernel_kind(kernel: FusedKernel, device: Device, compute_kind: Kind) -> Kind {
    match (kernel, device) {
        (FusedKernel::Int8, Device::Cuda(_)) if compute_kind == Kind::Half => Kind::Half,
        _ => Kind::BFloat16,
    }
}

/// Outcomes of [`self_check`] so far.
type CheckedKernels = Mutex<HashMap<(FusedKernel, Device, Kind), bool>>;

/// Whether `kernel` computes correctly on `device` in `kind` (checked once, then cached).
pub(crate) fn kernel_works(kernel: FusedKernel, device: Device, kind: Kind) -> bool {
    static CHECKED: OnceLock<CheckedKernels> = OnceLock::new();
    let checked = CHECKED.get_or_init(Default::default);
    if let Some(&works) = checked
        .lock()
        .expect("kernel check cache")
        .get(&(kernel, device, kind))
    {
        return works;
    }
    let works = match self_check(kernel, device, kind) {
        Ok(()) => true,
        Err(why) => {
            tracing::info!(?kernel, ?device, ?kind, %why, "fused quantized kernel not used");
            false
        }
    };
    checked
        .lock()
        .expect("kernel check cache")
        .insert((kernel, device, kind), works);
    works
}

/// Compares `kernel` with dequantize-then-matmul on a 64x256 layer and 3 rows.
fn self_check(kernel: FusedKernel, device: Device, kind: Kind) -> Result<(), String> {
    let applicable = matches!(
        (kernel, device),
        (FusedKernel::Int8, _)
            | (FusedKernel::Int4Cpu, Device::Cpu)
            | (FusedKernel::Int4Cuda, Device::Cuda(_))
    );
    if !applicable {
        return Err("not a kernel of this device".into());
    }
    let (out, inp, group) = (64, 256, 128);
    // Deterministic pseudo-random values: the check must not move the global RNG.
    let wave = |n: i64, f: f64| (Tensor::arange(n, (Kind::Float, device)) * f).sin();
    let weight = wave(out * inp, 0.731).view([out, inp]) * 0.05;
    let x = wave(3 * inp, 1.37).view([3, inp]).to_kind(kind);
    let (got, reference) = match kernel {
        FusedKernel::Int8 => {
            let (codes, scales) = int8::quantize(&weight);
            let got = int8_mm(&x, &codes, &scales.to_kind(kind)).map_err(|e| e.to_string())?;
            (got, int8::dequantize(&codes, &scales, Kind::Float))
        }
        FusedKernel::Int4Cpu | FusedKernel::Int4Cuda => {
            let q = int4::quantize(&weight, group).map_err(|e| e.to_string())?;
            let scales_and_zeros = int4_scales_and_zeros(&q.scales, &q.zeros, kind);
            let got = if kernel == FusedKernel::Int4Cpu {
                CpuInt4Layout::for_rows(out).ok_or("layout unknown")?;
                let packed = pack_for_cpu(&q.codes).map_err(|e| e.to_string())?;
                int4_cpu_mm(&x, &packed, group, &scales_and_zeros)
            } else {
                let tiles = int4_cuda_inner_k_tiles(inp).ok_or("no inner k tiles")?;
                let packed =
                    pack_for_cuda(&int4::pack(&q.codes), tiles).map_err(|e| e.to_string())?;
                int4_cuda_mm(&x, &packed, group, &scales_and_zeros)
            }
            .map_err(|e| e.to_string())?;
            (
                got,
                int4::dequantize(&q.codes, &q.scales, &q.zeros, Kind::Float),
            )
        }
    };
    let reference = x.to_kind(Kind::Float).matmul(&reference.tr());
    let got = got.to_kind(Kind::Float);
    if got.size() != reference.size() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.size(),
            reference.size()
        ));
    }
    let scale = reference.abs().max().double_value(&[]).max(1e-6);
    let err = (got - &reference).abs().max().double_value(&[]) / scale;
    if err.is_finite() && err < 0.03 {
        Ok(())
    } else {
        Err(format!("relative error {err}"))
    }
}

/// `x [m, in] @ (codes * scales)ᵀ` with `_weight_int8pack_mm`; `x` and `scales` of the kernel kind.
pub(crate) fn int8_mm(
    x: &Tensor,
    codes: &Tensor,
    scales: &Tensor,
) -> Result<Tensor, tch::TchError> {
    x.contiguous().f_internal_weight_int8pack_mm(codes, scales)
}

/// The INT4 kernels' `[in/group, out, 2]` table of `(scale, zero)` in `kind`. The kernels compute
/// `(q - 8) * scale + zero`; ours is `(q - z) * scale`, so their zero is `(8 - z) * scale`.
pub(crate) fn int4_scales_and_zeros(scales: &Tensor, zeros: &Tensor, kind: Kind) -> Tensor {
    let s = scales.to_kind(Kind::Float);
    let offset = (Tensor::full_like(&s, 8.0) - int4::zero_points(zeros)) * &s;
    Tensor::stack(&[s, offset], 2)
        .transpose(0, 1)
        .to_kind(kind)
        .contiguous()
}

/// `x [m, in] @ Wᵀ` with `_weight_int4pack_mm_for_cpu`.
pub(crate) fn int4_cpu_mm(
    x: &Tensor,
    packed: &Tensor,
    group_size: i64,
    scales_and_zeros: &Tensor,
) -> Result<Tensor, tch::TchError> {
    x.contiguous()
        .f_internal_weight_int4pack_mm_for_cpu(packed, group_size, scales_and_zeros)
}

/// `inner_k_tiles` for the CUDA INT4 layout: the largest of 8, 4, 2 with `in % (16·tiles) == 0`.
pub(crate) fn int4_cuda_inner_k_tiles(in_features: i64) -> Option<i64> {
    [8, 4, 2].into_iter().find(|t| in_features % (16 * t) == 0)
}

/// Packs our `u8 [out, in/2]` codes into the CUDA INT4 kernel's layout.
pub(crate) fn pack_for_cuda(packed: &Tensor, inner_k_tiles: i64) -> Result<Tensor, tch::TchError> {
    packed
        .contiguous()
        .f_internal_convert_weight_to_int4pack(inner_k_tiles)
}

/// `x [m, in] @ Wᵀ` with `_weight_int4pack_mm` (CUDA).
pub(crate) fn int4_cuda_mm(
    x: &Tensor,
    packed: &Tensor,
    group_size: i64,
    scales_and_zeros: &Tensor,
) -> Result<Tensor, tch::TchError> {
    x.contiguous()
        .f_internal_weight_int4pack_mm(packed, group_size, scales_and_zeros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_kernels_pass_their_self_check() {
        tch::set_num_threads(1);
        assert!(kernel_works(FusedKernel::Int8, Device::Cpu, Kind::BFloat16));
        assert!(kernel_works(
            FusedKernel::Int4Cpu,
            Device::Cpu,
            Kind::BFloat16
        ));
        assert!(!kernel_works(
            FusedKernel::Int4Cuda,
            Device::Cpu,
            Kind::BFloat16
        ));
    }

    #[test]
    fn scales_and_zeros_reproduce_our_dequantization() {
        let scales = Tensor::from_slice(&[0.5f32, 0.25])
            .view([1, 2])
            .to_kind(Kind::Half);
        // Zero points 3 and 8, in sixteenths.
        let zeros = Tensor::from_slice(&[48u8, 128]).view([1, 2]);
        let table = int4_scales_and_zeros(&scales, &zeros, Kind::Float);
        assert_eq!(table.size(), [2, 1, 2]);
        // code 5 in group 0: ours (5 - 3) * 0.5 = 1.0; theirs (5 - 8) * 0.5 + 2.5 = 1.0
        let (s, z) = (
            table.double_value(&[0, 0, 0]),
            table.double_value(&[0, 0, 1]),
        );
        assert_eq!((5.0 - 8.0) * s + z, 1.0);
        assert_eq!(table.double_value(&[1, 0, 1]), 0.0);
    }
}
