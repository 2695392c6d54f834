//! Finding where a packing kernel puts each 4-bit code, without knowing its layout.
//!
//! libtorch's INT4 kernels take weights in layouts of their own
//! (`_convert_weight_to_int4pack_for_cpu`, `_convert_weight_to_int4pack`), which depend on the
//! device and, on CPU, on the vector ISA libtorch dispatches to. Each is a permutation of the
//! 4-bit codes. To undo one, pack `[n, k]` inputs whose code at every position is one base-16
//! digit of that position's flat index: after `ceil(log16(n·k))` packs, the nibbles found at each
//! place of the output spell out the index they came from.

use tch::{Device, Kind, TchError, Tensor};

use crate::error::{Error, Result};

/// The nibbles of a packed tensor's bytes as `u8 [2·bytes]`: byte `b`'s low nibble at `2b`, its
/// high nibble at `2b + 1`. Any integer kind works (its bytes are read in memory order).
pub(crate) fn nibbles_of(packed: &Tensor) -> Tensor {
    let bytes = packed
        .contiguous()
        .view([-1])
        .view_dtype(Kind::Uint8)
        .view([-1]);
    Tensor::stack(
        &[
            bytes.bitwise_and(15),
            bytes.bitwise_right_shift_tensor_scalar(4),
        ],
        1,
    )
    .view([-1])
}

/// For every nibble of `pack(codes)` (ordered as [`nibbles_of`] orders them), the flat index into
/// the `u8 [n, k]` codes it holds, as `i64 [n·k]` on `device`. Errors when `pack` fails or is not
/// a permutation of nibbles.
pub(crate) fn nibble_sources(
    pack: &dyn Fn(&Tensor) -> std::result::Result<Tensor, TchError>,
    n: i64,
    k: i64,
    device: Device,
) -> Result<Tensor> {
    let total = n * k;
    let index = Tensor::arange(total, (Kind::Int64, device));
    let mut sources = Tensor::zeros([total], (Kind::Int64, device));
    let mut shift = 0;
    while shift == 0 || (total - 1) >> shift > 0 {
        let codes = index
            .bitwise_right_shift_tensor_scalar(shift)
            .bitwise_and(15)
            .to_kind(Kind::Uint8)
            .view([n, k]);
        let packed = pack(&codes).map_err(|e| Error::Quantization(e.to_string()))?;
        let nibbles = nibbles_of(&packed);
        if nibbles.numel() as i64 != total {
            return Err(Error::Quantization(format!(
                "packing {n}x{k} codes gave {} nibbles",
                nibbles.numel()
            )));
        }
        sources += nibbles
            .to_kind(Kind::Int64)
            .bitwise_left_shift_tensor_scalar(shift);
        shift += 4;
    }
    let (sorted, _) = sources.sort(0, false);
    if !sorted.equal(&index) {
        return Err(Error::Quantization(format!(
            "packing {n}x{k} codes is not a permutation of nibbles"
        )));
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::int4;

    #[test]
    fn recovers_our_own_packing() {
        // Our packing puts code 2b in the high nibble of byte b: nibble 2b holds code 2b + 1.
        let pack = |codes: &Tensor| Ok(int4::pack(codes));
        let sources = nibble_sources(&pack, 3, 40, Device::Cpu).unwrap();
        let expected: Vec<i64> = (0..60).flat_map(|b| [2 * b + 1, 2 * b]).collect();
        assert_eq!(Vec::<i64>::try_from(&sources).unwrap(), expected);
    }

    #[test]
    fn rejects_a_lossy_packing() {
        let pack = |codes: &Tensor| Ok(int4::pack(&codes.bitwise_and(7)));
        assert!(nibble_sources(&pack, 2, 16, Device::Cpu).is_err());
    }
}
