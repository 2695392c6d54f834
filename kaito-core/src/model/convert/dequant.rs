//! GGUF tensor data to f32, following ggml's dequantization formulas.
//!
//! Block formats (32 values per block, little-endian, `d`/`m` are f16):
//! - `Q8_0`: `d`, 32 × i8 `q`; value = `d·q`.
//! - `Q4_0`: `d`, 16 bytes; value j = `d·((qs[j] & 0xF) − 8)`, value j+16 = `d·((qs[j] >> 4) − 8)`.
//! - `Q4_1`: `d`, `m`, 16 bytes; value j = `d·(qs[j] & 0xF) + m`, value j+16 = `d·(qs[j] >> 4) + m`.

use crate::model::gguf::GgmlType;

use super::float16::{bf16_to_f32, f16_to_f32};

/// The element types [`dequantize`] handles.
pub const SUPPORTED_TYPES: [GgmlType; 6] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
];

/// Values per quantization block.
const BLOCK: usize = 32;

/// The f32 values of `data`, the raw bytes of a tensor of type `ggml_type`.
///
/// `None` when the type is not one of [`SUPPORTED_TYPES`] or `data` is not a whole number of blocks.
pub fn dequantize(ggml_type: GgmlType, data: &[u8]) -> Option<Vec<f32>> {
    let (_, block_bytes) = ggml_type.block_layout()?;
    let block_bytes = block_bytes as usize;
    if !data.len().is_multiple_of(block_bytes) {
        return None;
    }
    let blocks = data.chunks_exact(block_bytes);
    let values = match ggml_type {
        GgmlType::F32 => blocks
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => blocks.map(|b| f16_to_f32(u16_at(b, 0))).collect(),
        GgmlType::BF16 => blocks.map(|b| bf16_to_f32(u16_at(b, 0))).collect(),
        GgmlType::Q8_0 => {
            let mut out = Vec::with_capacity(blocks.len() * BLOCK);
            for block in blocks {
                let d = f16_to_f32(u16_at(block, 0));
                out.extend(block[2..].iter().map(|&q| d * f32::from(q as i8)));
            }
            out
        }
        GgmlType::Q4_0 => {
            let mut out = Vec::with_capacity(blocks.len() * BLOCK);
            for block in blocks {
                let d = f16_to_f32(u16_at(block, 0));
                push_nibbles(&mut out, &block[2..], |q| d * (f32::from(q) - 8.0));
            }
            out
        }
        GgmlType::Q4_1 => {
            let mut out = Vec::with_capacity(blocks.len() * BLOCK);
            for block in blocks {
                let d = f16_to_f32(u16_at(block, 0));
                let m = f16_to_f32(u16_at(block, 2));
                push_nibbles(&mut out, &block[4..], |q| d * f32::from(q) + m);
            }
            out
        }
        _ => return None,
    };
    Some(values)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Appends the 32 values of 16 packed bytes: all low nibbles first, then all high nibbles.
fn push_nibbles(out: &mut Vec<f32>, packed: &[u8], value: impl Fn(u8) -> f32) {
    out.extend(packed.iter().map(|&q| value(q & 0x0f)));
    out.extend(packed.iter().map(|&q| value(q >> 4)));
}

#[cfg(test)]
mod tests {
    use super::super::float16::f32_to_f16;
    use super::*;

    fn f16_bytes(v: f32) -> [u8; 2] {
        f32_to_f16(v).to_le_bytes()
    }

    #[test]
    fn q8_0_scales_signed_bytes() {
        let mut block = f16_bytes(0.5).to_vec();
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let values = dequantize(GgmlType::Q8_0, &block).unwrap();
        let expected: Vec<f32> = (0..32).map(|i| 0.5 * (i as f32 - 16.0)).collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn q4_1_puts_low_nibbles_first_and_adds_the_minimum() {
        // Two blocks: the second checks that blocks follow each other.
        let mut data = Vec::new();
        for (d, m) in [(0.25f32, -1.0f32), (2.0, 3.0)] {
            data.extend(f16_bytes(d));
            data.extend(f16_bytes(m));
            // byte j: low nibble j, high nibble 15 - j.
            data.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        }
        let values = dequantize(GgmlType::Q4_1, &data).unwrap();
        assert_eq!(values.len(), 64);
        for (block, (d, m)) in [(0.25f32, -1.0f32), (2.0, 3.0)].into_iter().enumerate() {
            let v = &values[block * 32..(block + 1) * 32];
            for j in 0..16 {
                assert_eq!(v[j], d * j as f32 + m);
                assert_eq!(v[j + 16], d * (15 - j) as f32 + m);
            }
        }
    }

    #[test]
    fn q4_0_centres_nibbles_on_eight() {
        let mut block = f16_bytes(1.5).to_vec();
        block.extend([0x80u8; 16]); // low 0, high 8
        let values = dequantize(GgmlType::Q4_0, &block).unwrap();
        assert!(values[..16].iter().all(|&v| v == -12.0));
        assert!(values[16..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn float_types_and_rejections() {
        let data: Vec<u8> = [1.0f32, -0.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(dequantize(GgmlType::F32, &data), Some(vec![1.0, -0.5]));
        assert_eq!(
            dequantize(GgmlType::F16, &[0x00, 0x3c, 0x00, 0xc0]),
            Some(vec![1.0, -2.0])
        );
        assert_eq!(dequantize(GgmlType::BF16, &[0x80, 0x3f]), Some(vec![1.0]));
        assert_eq!(dequantize(GgmlType::Q4_K, &[0u8; 144]), None);
        assert_eq!(dequantize(GgmlType::Q8_0, &[0u8; 33]), None);
        assert_eq!(dequantize(GgmlType::Other(20), &[0u8; 32]), None);
    }
}
