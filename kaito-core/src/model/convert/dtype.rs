//! The element type the converter writes weights in.

use std::fmt;
use std::str::FromStr;

use super::float16::{f32_to_bf16, f32_to_f16};

/// Element type of the written `model.safetensors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputDType {
    /// 32-bit float: dequantized values exactly.
    #[default]
    F32,
    /// bfloat16 (rounded to nearest even).
    BF16,
    /// IEEE half precision (rounded to nearest even).
    F16,
}

impl OutputDType {
    /// The safetensors header name (`F32`, `BF16`, `F16`).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::BF16 => "BF16",
            Self::F16 => "F16",
        }
    }

    /// The name `config.json`'s `torch_dtype` uses (`float32`, `bfloat16`, `float16`).
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::BF16 => "bfloat16",
            Self::F16 => "float16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::BF16 | Self::F16 => 2,
        }
    }

    /// Appends `values` to `out` as little-endian elements of this type.
    pub fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        out.reserve(values.len() * self.size());
        match self {
            Self::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
            Self::BF16 => out.extend(values.iter().flat_map(|&v| f32_to_bf16(v).to_le_bytes())),
            Self::F16 => out.extend(values.iter().flat_map(|&v| f32_to_f16(v).to_le_bytes())),
        }
    }
}

impl fmt::Display for OutputDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::BF16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

impl FromStr for OutputDType {
    type Err = String;

    /// `f32`/`float32`, `bf16`/`bfloat16`, `f16`/`float16` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            "f16" | "float16" => Ok(Self::F16),
            _ => Err(format!("unknown dtype `{s}`: use f32, bf16 or f16")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_little_endian_and_parses_names() {
        let mut out = Vec::new();
        OutputDType::F32.encode(&[1.0], &mut out);
        OutputDType::BF16.encode(&[1.0], &mut out);
        OutputDType::F16.encode(&[1.0], &mut out);
        assert_eq!(out, [0, 0, 0x80, 0x3f, 0x80, 0x3f, 0x00, 0x3c]);
        assert_eq!("BF16".parse::<OutputDType>(), Ok(OutputDType::BF16));
        assert_eq!("float16".parse::<OutputDType>(), Ok(OutputDType::F16));
        assert!("int8".parse::<OutputDType>().is_err());
        assert_eq!(OutputDType::default().torch_name(), "float32");
    }
}
