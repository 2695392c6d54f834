//! ggml tensor element types: their ids in a GGUF file and how many bytes a block of elements takes.

use std::fmt;

/// The element type of a tensor in a GGUF file (ggml's `ggml_type`).
///
/// Names follow ggml's own (`Q4_1`, `Q8_0`, ...), so they read the same as in llama.cpp logs.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// 4-bit, blocks of 32 with one f16 scale.
    Q4_0,
    /// 4-bit, blocks of 32 with an f16 scale and an f16 minimum.
    Q4_1,
    /// 5-bit, blocks of 32 with one f16 scale.
    Q5_0,
    /// 5-bit, blocks of 32 with an f16 scale and an f16 minimum.
    Q5_1,
    /// 8-bit, blocks of 32 with one f16 scale.
    Q8_0,
    /// 8-bit, blocks of 32 with an f16 scale and an f16 sum.
    Q8_1,
    /// 2-bit k-quant (super-blocks of 256).
    Q2_K,
    /// 3-bit k-quant.
    Q3_K,
    /// 4-bit k-quant.
    Q4_K,
    /// 5-bit k-quant.
    Q5_K,
    /// 6-bit k-quant.
    Q6_K,
    /// 8-bit k-quant.
    Q8_K,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
    /// bfloat16.
    BF16,
    /// A type this reader has no block layout for (the i-quants, ternary types, ...).
    Other(u32),
}

impl GgmlType {
    /// The type with ggml id `id`.
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2_K,
            11 => Self::Q3_K,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            15 => Self::Q8_K,
            24 => Self::I8,
            25 => Self::I16,
            26 => Self::I32,
            27 => Self::I64,
            28 => Self::F64,
            30 => Self::BF16,
            other => Self::Other(other),
        }
    }

    /// (elements per block, bytes per block); `None` for [`GgmlType::Other`].
    pub fn block_layout(self) -> Option<(u64, u64)> {
        Some(match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q8_1 => (32, 36),
            Self::Q2_K => (256, 84),
            Self::Q3_K => (256, 110),
            Self::Q4_K => (256, 144),
            Self::Q5_K => (256, 176),
            Self::Q6_K => (256, 210),
            Self::Q8_K => (256, 292),
            Self::I8 => (1, 1),
            Self::I16 => (1, 2),
            Self::I32 => (1, 4),
            Self::I64 => (1, 8),
            Self::F64 => (1, 8),
            Self::BF16 => (1, 2),
            Self::Other(_) => return None,
        })
    }

    /// Bytes that `elements` elements take, or `None` when the layout is unknown or `elements` is not
    /// a whole number of blocks.
    pub fn byte_size(self, elements: u64) -> Option<u64> {
        let (block_elements, block_bytes) = self.block_layout()?;
        if !elements.is_multiple_of(block_elements) {
            return None;
        }
        (elements / block_elements).checked_mul(block_bytes)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(id) => write!(f, "ggml type {id}"),
            known => fmt::Debug::fmt(known, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sizes_follow_blocks() {
        assert_eq!(GgmlType::from_id(3), GgmlType::Q4_1);
        assert_eq!(GgmlType::from_id(8), GgmlType::Q8_0);
        assert_eq!(GgmlType::from_id(30), GgmlType::BF16);
        assert_eq!(
            GgmlType::Q4_1.byte_size(576 * 576),
            Some(576 * 576 / 32 * 20)
        );
        assert_eq!(GgmlType::Q8_0.byte_size(64), Some(68));
        assert_eq!(GgmlType::Q8_0.byte_size(33), None);
        assert_eq!(GgmlType::from_id(16).byte_size(256), None);
        assert_eq!(GgmlType::Q4_K.to_string(), "Q4_K");
        assert_eq!(GgmlType::from_id(99).to_string(), "ggml type 99");
    }
}
