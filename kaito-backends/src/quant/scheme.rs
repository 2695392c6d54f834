//! Which quantization a linear layer uses, and how it is spelled on the command line and on disk.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Group size of [`QuantScheme::Int4`] unless one is asked for.
pub const DEFAULT_INT4_GROUP_SIZE: i64 = 128;

/// A weight-only quantization scheme.
///
/// - `Int8`: symmetric, one scale per output channel, codes in `[-127, 127]`.
/// - `Int4`: asymmetric, one scale and zero point per `group_size` consecutive input features of
///   an output channel, codes in `[0, 15]`, two codes per byte.
///
/// Parses from [`QuantScheme::NAMES`] (any case): `"int8"`, `"int4"` (group size
/// [`DEFAULT_INT4_GROUP_SIZE`]) and `"int4-gN"` for the group sizes the fused kernels take
/// (32, 64, 128). [`fmt::Display`] writes `"int4"` for the default group size and `"int4-gN"`
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantScheme {
    /// 8-bit codes, per-output-channel scale.
    Int8,
    /// 4-bit codes, group-wise scale and zero point.
    Int4 {
        /// Input features sharing one scale and zero point (32, 64, 128 or 256 let the fused
        /// kernels run; any positive even size is accepted).
        group_size: i64,
    },
}

impl QuantScheme {
    /// The names [`FromStr`] accepts.
    pub const NAMES: [&'static str; 5] = ["int8", "int4", "int4-g32", "int4-g64", "int4-g128"];

    /// INT4 with the default group size.
    pub fn int4() -> Self {
        QuantScheme::Int4 {
            group_size: DEFAULT_INT4_GROUP_SIZE,
        }
    }

    /// The name used in `quantization_config.json` (`"int8"` or `"int4"`).
    pub fn name(&self) -> &'static str {
        match self {
            QuantScheme::Int8 => "int8",
            QuantScheme::Int4 { .. } => "int4",
        }
    }

    /// Bits per stored weight code.
    pub fn bits(&self) -> u32 {
        match self {
            QuantScheme::Int8 => 8,
            QuantScheme::Int4 { .. } => 4,
        }
    }

    /// The group size of an INT4 scheme, `None` for INT8 (one scale per output channel).
    pub fn group_size(&self) -> Option<i64> {
        match self {
            QuantScheme::Int8 => None,
            QuantScheme::Int4 { group_size } => Some(*group_size),
        }
    }
}

impl fmt::Display for QuantScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantScheme::Int4 { group_size } if *group_size != DEFAULT_INT4_GROUP_SIZE => {
                write!(f, "int4-g{group_size}")
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl FromStr for QuantScheme {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "int8" => Ok(QuantScheme::Int8),
            "int4" => Ok(QuantScheme::int4()),
            "int4-g32" => Ok(QuantScheme::Int4 { group_size: 32 }),
            "int4-g64" => Ok(QuantScheme::Int4 { group_size: 64 }),
            "int4-g128" => Ok(QuantScheme::Int4 { group_size: 128 }),
            _ => Err(Error::Quantization(format!(
                "unknown quantization scheme {s:?}; accepted: {}",
                QuantScheme::NAMES.join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_accepted_names() {
        assert_eq!("int8".parse::<QuantScheme>().unwrap(), QuantScheme::Int8);
        assert_eq!(
            " INT4 ".parse::<QuantScheme>().unwrap(),
            QuantScheme::Int4 { group_size: 128 }
        );
        assert_eq!(QuantScheme::int4().to_string(), "int4");
        for group_size in [32, 64, 128] {
            let name = format!("int4-g{group_size}");
            let scheme = QuantScheme::Int4 { group_size };
            assert_eq!(name.to_uppercase().parse::<QuantScheme>().unwrap(), scheme);
            assert!(QuantScheme::NAMES.contains(&name.as_str()));
            assert_eq!(scheme.name(), "int4");
        }
        assert_eq!(QuantScheme::Int4 { group_size: 32 }.to_string(), "int4-g32");
        for name in QuantScheme::NAMES {
            assert_eq!(
                name.parse::<QuantScheme>()
                    .unwrap()
                    .to_string()
                    .parse::<QuantScheme>()
                    .unwrap(),
                name.parse::<QuantScheme>().unwrap()
            );
        }
        assert!("int4-g48".parse::<QuantScheme>().is_err());
    }

    #[test]
    fn kaito_core_accepts_the_same_names() {
        assert_eq!(kaito_core::engine::QUANTIZATION_NAMES, QuantScheme::NAMES);
    }

    #[test]
    fn bad_scheme_error_names_accepted_values() {
        let err = "fp8".parse::<QuantScheme>().unwrap_err().to_string();
        assert!(err.contains("\"fp8\""), "{err}");
        assert!(err.contains("int8") && err.contains("int4"), "{err}");
    }
}
