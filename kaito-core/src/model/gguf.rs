//! A reader for GGUF file headers: metadata key/values and tensor shapes, no weights.
//!
//! Format (little-endian): magic `GGUF`, version (u32, 2 or 3), tensor count (u64), metadata count (u64),
//! then `count` × (key string, value type u32, value), then tensor infos (name, n_dims u32, dims u64…,
//! ggml type u32, offset u64). Strings are a u64 length and UTF-8 bytes.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Any unsigned integer type.
    UInt(u64),
    /// Any signed integer type.
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// bool.
    Bool(bool),
    /// string.
    String(String),
    /// Array of strings (kept: vocabularies are needed for special tokens).
    StringArray(Vec<String>),
    /// Array of another type: only its length is kept.
    Array {
        /// Number of elements.
        len: u64,
    },
}

impl GgufValue {
    /// As an unsigned integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            GgufValue::UInt(v) => Some(*v),
            GgufValue::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
    /// As a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Header of a GGUF file.
#[derive(Debug, Clone, Default)]
pub struct GgufHeader {
    /// Format version.
    pub version: u32,
    /// Metadata.
    pub metadata: BTreeMap<String, GgufValue>,
    /// Total number of weights (sum of tensor element counts).
    pub parameter_count: u64,
    /// Number of tensors.
    pub tensor_count: u64,
}

impl GgufHeader {
    /// Reads the header of the file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::ModelLoad {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_reader(BufReader::with_capacity(1 << 20, file)).map_err(|message| {
            Error::ModelLoad {
                path: path.to_owned(),
                message,
            }
        })
    }

    /// Parses a header from any reader.
    pub fn from_reader(mut r: impl Read) -> std::result::Result<Self, String> {
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic)
            .map_err(|_| "file is too short to be GGUF".to_owned())?;
        if &magic != b"GGUF" {
            return Err("not a GGUF file (bad magic)".to_owned());
        }
        let mut rd = Reader { r };
        let version = rd.u32()?;
        if !(2..=3).contains(&version) {
            return Err(format!("unsupported GGUF version {version}"));
        }
        let tensor_count = rd.u64()?;
        let kv_count = rd.u64()?;
        if kv_count > 1_000_000 || tensor_count > 10_000_000 {
            return Err("implausible GGUF header counts".to_owned());
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = rd.string()?;
            let ty = rd.u32()?;
            let value = rd.value(ty)?;
            metadata.insert(key, value);
        }
        let mut parameter_count: u64 = 0;
        for _ in 0..tensor_count {
            let _name = rd.string()?;
            let n_dims = rd.u32()?;
            if n_dims > 8 {
                return Err("tensor with more than 8 dimensions".to_owned());
            }
            let mut elements: u64 = 1;
            for _ in 0..n_dims {
                elements = elements.saturating_mul(rd.u64()?);
            }
            let _ggml_type = rd.u32()?;
            let _offset = rd.u64()?;
            parameter_count = parameter_count.saturating_add(elements);
        }
        Ok(Self {
            version,
            metadata,
            parameter_count,
            tensor_count,
        })
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(GgufValue::as_str)
    }

    /// `{arch}.{suffix}` as an integer.
    pub fn arch_u64(&self, suffix: &str) -> Option<u64> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.{suffix}"))
            .and_then(GgufValue::as_u64)
    }

    /// The text of token `id` in `tokenizer.ggml.tokens`.
    pub fn token_text(&self, id: u64) -> Option<&str> {
        match self.get("tokenizer.ggml.tokens")? {
            GgufValue::StringArray(tokens) => {
                tokens.get(usize::try_from(id).ok()?).map(String::as_str)
            }
            _ => None,
        }
    }
}

struct Reader<R> {
    r: R,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|_| "unexpected end of GGUF header".to_owned())?;
        Ok(b)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let len = self.u64()?;
        if len > 64 << 20 {
            return Err("GGUF string longer than 64 MiB".to_owned());
        }
        let mut buf = vec![0u8; len as usize];
        self.r
            .read_exact(&mut buf)
            .map_err(|_| "unexpected end of GGUF header".to_owned())?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    fn value(&mut self, ty: u32) -> std::result::Result<GgufValue, String> {
        Ok(match ty {
            0 => GgufValue::UInt(u64::from(self.bytes::<1>()?[0])),
            1 => GgufValue::Int(i64::from(self.bytes::<1>()?[0] as i8)),
            2 => GgufValue::UInt(u64::from(u16::from_le_bytes(self.bytes()?))),
            3 => GgufValue::Int(i64::from(i16::from_le_bytes(self.bytes()?))),
            4 => GgufValue::UInt(u64::from(self.u32()?)),
            5 => GgufValue::Int(i64::from(i32::from_le_bytes(self.bytes()?))),
            6 => GgufValue::Float(f64::from(f32::from_le_bytes(self.bytes()?))),
            7 => GgufValue::Bool(self.bytes::<1>()?[0] != 0),
            8 => GgufValue::String(self.string()?),
            9 => {
                let elem = self.u32()?;
                let len = self.u64()?;
                if len > 100_000_000 {
                    return Err("GGUF array too long".to_owned());
                }
                if elem == 8 {
                    let mut items = Vec::with_capacity(len as usize);
                    for _ in 0..len {
                        items.push(self.string()?);
                    }
                    GgufValue::StringArray(items)
                } else {
                    for _ in 0..len {
                        self.value(elem)?;
                    }
                    GgufValue::Array { len }
                }
            }
            10 => GgufValue::UInt(self.u64()?),
            11 => GgufValue::Int(i64::from_le_bytes(self.bytes()?)),
            12 => GgufValue::Float(f64::from_le_bytes(self.bytes()?)),
            other => return Err(format!("unknown GGUF value type {other}")),
        })
    }
}

/// Name of a GGUF `general.file_type` (llama.cpp's `llama_ftype`).
pub fn file_type_name(ftype: u64) -> &'static str {
    match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn reads_metadata_and_counts_parameters() {
        let mut f = b"GGUF".to_vec();
        f.extend(3u32.to_le_bytes());
        f.extend(1u64.to_le_bytes()); // tensors
        f.extend(2u64.to_le_bytes()); // kv
        f.extend(string("general.architecture"));
        f.extend(8u32.to_le_bytes());
        f.extend(string("llama"));
        f.extend(string("llama.context_length"));
        f.extend(4u32.to_le_bytes());
        f.extend(8192u32.to_le_bytes());
        f.extend(string("tok_embd.weight"));
        f.extend(2u32.to_le_bytes());
        f.extend(576u64.to_le_bytes());
        f.extend(100u64.to_le_bytes());
        f.extend(3u32.to_le_bytes());
        f.extend(0u64.to_le_bytes());
        let h = GgufHeader::from_reader(&f[..]).unwrap();
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.arch_u64("context_length"), Some(8192));
        assert_eq!(h.parameter_count, 57_600);
    }

    #[test]
    fn rejects_non_gguf() {
        let err = GgufHeader::from_reader(&b"PK\x03\x04rest"[..]).unwrap_err();
        assert!(err.contains("not a GGUF"), "{err}");
        let err = GgufHeader::from_reader(&b"GGUF\x03\0\0\0"[..]).unwrap_err();
        assert!(err.contains("end of GGUF"), "{err}");
    }
}
