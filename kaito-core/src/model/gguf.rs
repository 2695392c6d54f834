//! A reader for GGUF files: the header (metadata key/values, tensor infos) and, through [`GgufFile`],
//! the raw bytes of one tensor at a time.
//!
//! Format (little-endian): magic `GGUF`, version (u32, 2 or 3), tensor count (u64), metadata count (u64),
//! then `count` × (key string, value type u32, value), then tensor infos (name, n_dims u32, dims u64…,
//! ggml type u32, offset u64). Strings are a u64 length and UTF-8 bytes. Tensor data starts at the
//! end of the tensor infos rounded up to `general.alignment` (32 when absent); a tensor's offset is
//! relative to that start.

mod ggml_type;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use ggml_type::GgmlType;

/// Alignment of the tensor data section when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

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
    /// Array of a signed type or of u8/u16/u32 (kept: `tokenizer.ggml.token_type` is one).
    IntArray(Vec<i64>),
    /// Array of another type (floats, bools, u64, nested arrays): only its length is kept.
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
    /// As a float (integers convert), if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            GgufValue::Float(v) => Some(*v),
            GgufValue::UInt(v) => Some(*v as f64),
            GgufValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
    /// As a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            GgufValue::Bool(v) => Some(*v),
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

/// Where one tensor lies in a GGUF file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the fastest-varying one (the length of a row).
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the tensor data section.
    pub offset: u64,
}

impl GgufTensorInfo {
    /// Number of elements.
    pub fn element_count(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of data, or `None` when the type's layout is unknown or the shape does not fill whole blocks.
    pub fn byte_size(&self) -> Option<u64> {
        self.ggml_type.byte_size(self.element_count())
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
    /// The tensors, in file order.
    pub tensors: Vec<GgufTensorInfo>,
    /// Absolute file offset where tensor data starts.
    pub data_offset: u64,
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
        let mut rd = Reader { r, position: 4 };
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
        let mut tensors = Vec::with_capacity(tensor_count.min(65_536) as usize);
        for _ in 0..tensor_count {
            let name = rd.string()?;
            let n_dims = rd.u32()?;
            if n_dims > 8 {
                return Err(format!("tensor `{name}` has more than 8 dimensions"));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            let mut elements: u64 = 1;
            for _ in 0..n_dims {
                let dim = rd.u64()?;
                elements = elements.saturating_mul(dim);
                dims.push(dim);
            }
            let ggml_type = GgmlType::from_id(rd.u32()?);
            let offset = rd.u64()?;
            parameter_count = parameter_count.saturating_add(elements);
            tensors.push(GgufTensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => return Err(format!("general.alignment is not a power of two: {v:?}")),
            },
        };
        let data_offset = rd.position.div_ceil(alignment) * alignment;
        Ok(Self {
            version,
            metadata,
            parameter_count,
            tensor_count,
            tensors,
            data_offset,
        })
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
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

    /// `{arch}.{suffix}`, any type.
    pub fn arch_value(&self, suffix: &str) -> Option<&GgufValue> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.{suffix}"))
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

/// A GGUF file opened for reading tensor data: its header and the open file.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    header: GgufHeader,
    file: File,
}

impl GgufFile {
    /// Opens `path`, reads its header and checks that every tensor of a known type lies inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let header = GgufHeader::read(path)?;
        let load_error = |message: String| Error::ModelLoad {
            path: path.to_owned(),
            message,
        };
        let file = File::open(path).map_err(|e| load_error(e.to_string()))?;
        let file_size = file
            .metadata()
            .map_err(|e| load_error(e.to_string()))?
            .len();
        for tensor in &header.tensors {
            let Some(size) = tensor.byte_size() else {
                continue;
            };
            let end = header
                .data_offset
                .checked_add(tensor.offset)
                .and_then(|start| start.checked_add(size));
            if end.is_none_or(|end| end > file_size) {
                return Err(load_error(format!(
                    "tensor `{}` ends past the end of the file (truncated download?)",
                    tensor.name
                )));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            header,
            file,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// The raw bytes of `tensor` (one of this file's tensors), as stored: quantized blocks stay quantized.
    pub fn read_tensor_data(&mut self, tensor: &GgufTensorInfo) -> Result<Vec<u8>> {
        let size = tensor.byte_size().ok_or_else(|| Error::ModelLoad {
            path: self.path.clone(),
            message: format!(
                "tensor `{}` has type {} with {} elements, whose size this reader does not know",
                tensor.name,
                tensor.ggml_type,
                tensor.element_count()
            ),
        })?;
        let size = usize::try_from(size).map_err(|_| Error::ModelLoad {
            path: self.path.clone(),
            message: format!("tensor `{}` does not fit in memory", tensor.name),
        })?;
        let context = || {
            format!(
                "reading tensor `{}` of {}",
                tensor.name,
                self.path.display()
            )
        };
        let mut data = vec![0u8; size];
        self.file
            .seek(SeekFrom::Start(self.header.data_offset + tensor.offset))
            .map_err(|e| Error::io(context(), e))?;
        self.file
            .read_exact(&mut data)
            .map_err(|e| Error::io(context(), e))?;
        Ok(data)
    }
}

struct Reader<R> {
    r: R,
    /// Bytes consumed so far, counting the magic.
    position: u64,
}

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|_| "unexpected end of GGUF header".to_owned())?;
        self.position += N as u64;
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
        self.position += len;
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
                } else if matches!(elem, 0..=5 | 11) {
                    let mut items = Vec::with_capacity(len as usize);
                    for _ in 0..len {
                        match self.value(elem)? {
                            GgufValue::UInt(v) => items.push(v as i64),
                            GgufValue::Int(v) => items.push(v),
                            other => return Err(format!("GGUF integer array holds {other:?}")),
                        }
                    }
                    GgufValue::IntArray(items)
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

/// One shard of a split GGUF model, as llama.cpp names them: `PREFIX-NNNNN-of-MMMMM.gguf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitShard<'a> {
    /// Everything before `-NNNNN-of-MMMMM.gguf`.
    pub prefix: &'a str,
    /// Its number, from 1.
    pub number: u32,
    /// How many shards the model has.
    pub count: u32,
}

impl<'a> SplitShard<'a> {
    /// The shard a file name names, when it follows llama.cpp's pattern.
    pub fn parse(file_name: &'a str) -> Option<Self> {
        let stem = file_name.strip_suffix(".gguf")?;
        let (rest, count) = stem.rsplit_once("-of-")?;
        let (prefix, number) = rest.rsplit_once('-')?;
        let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(number) || !digits(count) || prefix.is_empty() {
            return None;
        }
        let (number, count): (u32, u32) = (number.parse().ok()?, count.parse().ok()?);
        (number >= 1 && number <= count).then_some(Self {
            prefix,
            number,
            count,
        })
    }

    /// The file name of shard `number` of the same model.
    pub fn sibling(&self, number: u32) -> String {
        format!("{}-{number:05}-of-{:05}.gguf", self.prefix, self.count)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_shard_names() {
        let s = SplitShard::parse("Llama-3-Q4_K_M-00002-of-00003.gguf").unwrap();
        assert_eq!((s.prefix, s.number, s.count), ("Llama-3-Q4_K_M", 2, 3));
        assert_eq!(s.sibling(1), "Llama-3-Q4_K_M-00001-of-00003.gguf");
        for not in [
            "m.gguf",
            "m-00004-of-00003.gguf",
            "m-1-of-2.gguf",
            "-00001-of-00002.gguf",
            "m-00001-of-00002.bin",
        ] {
            assert!(SplitShard::parse(not).is_none(), "{not}");
        }
    }

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

    /// A GGUF v3 file with `kv` metadata entries (already encoded) and tensors (name, dims, type id, data).
    fn gguf_file(kv: &[Vec<u8>], tensors: &[(&str, &[u64], u32, &[u8])]) -> Vec<u8> {
        let mut f = b"GGUF".to_vec();
        f.extend(3u32.to_le_bytes());
        f.extend((tensors.len() as u64).to_le_bytes());
        f.extend((kv.len() as u64).to_le_bytes());
        for entry in kv {
            f.extend(entry);
        }
        let mut offset = 0u64;
        for (name, dims, ty, data) in tensors {
            f.extend(string(name));
            f.extend((dims.len() as u32).to_le_bytes());
            for d in *dims {
                f.extend(d.to_le_bytes());
            }
            f.extend(ty.to_le_bytes());
            f.extend(offset.to_le_bytes());
            offset += (data.len() as u64).div_ceil(32) * 32;
        }
        for (_, _, _, data) in tensors {
            while !f.len().is_multiple_of(32) {
                f.push(0);
            }
            f.extend(*data);
        }
        f
    }

    #[test]
    fn reads_tensor_infos_integer_arrays_and_tensor_bytes() {
        let mut token_types = string("tokenizer.ggml.token_type");
        token_types.extend(9u32.to_le_bytes());
        token_types.extend(5u32.to_le_bytes()); // i32 elements
        token_types.extend(3u64.to_le_bytes());
        for t in [3i32, 1, 4] {
            token_types.extend(t.to_le_bytes());
        }
        let floats: Vec<u8> = [1.0f32, -2.0, 0.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = gguf_file(
            &[token_types],
            &[
                ("a.weight", &[3], 0, &floats),
                ("b.weight", &[32, 1], 8, &[7u8; 34]),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        std::fs::write(&path, &bytes).unwrap();

        let mut file = GgufFile::open(&path).unwrap();
        let header = file.header().clone();
        assert_eq!(
            header.get("tokenizer.ggml.token_type"),
            Some(&GgufValue::IntArray(vec![3, 1, 4]))
        );
        assert_eq!(header.data_offset % 32, 0);
        let b = header.tensor("b.weight").unwrap();
        assert_eq!(b.dims, vec![32, 1]);
        assert_eq!(b.ggml_type, GgmlType::Q8_0);
        assert_eq!(b.byte_size(), Some(34));
        assert_eq!(file.read_tensor_data(b).unwrap(), vec![7u8; 34]);
        let a = header.tensor("a.weight").unwrap().clone();
        assert_eq!(file.read_tensor_data(&a).unwrap(), floats);

        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = GgufFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("`b.weight` ends past the end"), "{err}");
    }

    #[test]
    fn rejects_non_gguf() {
        let err = GgufHeader::from_reader(&b"PK\x03\x04rest"[..]).unwrap_err();
        assert!(err.contains("not a GGUF"), "{err}");
        let err = GgufHeader::from_reader(&b"GGUF\x03\0\0\0"[..]).unwrap_err();
        assert!(err.contains("end of GGUF"), "{err}");
    }
}
