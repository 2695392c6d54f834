//! A streaming writer of the safetensors format: the whole header first, then each tensor's bytes in
//! header order, so only one tensor is ever held in memory.
//!
//! Format: an u64 (little-endian) header length `n`, `n` bytes of JSON
//! (`{"__metadata__": {..}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..}`,
//! padded with spaces so the data starts 8-byte aligned), then the data, offsets relative to its start.

use std::collections::HashSet;
use std::io::{self, Write};

use serde_json::{json, Map, Value};

use super::dtype::OutputDType;

/// One tensor as the header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsEntry {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: OutputDType,
    /// Shape, outermost dimension first.
    pub shape: Vec<u64>,
}

impl SafetensorsEntry {
    /// Bytes of data.
    pub fn byte_size(&self) -> u64 {
        self.shape.iter().product::<u64>() * self.dtype.size() as u64
    }
}

/// The header (length prefix included) for `entries` laid out back to back in order.
pub fn header_bytes(entries: &[SafetensorsEntry], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = Map::new();
    if !metadata.is_empty() {
        let metadata: Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        header.insert("__metadata__".to_owned(), Value::Object(metadata));
    }
    let mut offset = 0u64;
    for entry in entries {
        let end = offset + entry.byte_size();
        header.insert(
            entry.name.clone(),
            json!({
                "dtype": entry.dtype.safetensors_name(),
                "shape": entry.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut json = Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    bytes
}

/// Writes a safetensors file tensor by tensor, checking each against the header already written.
#[derive(Debug)]
pub struct SafetensorsWriter<W: Write> {
    out: W,
    entries: Vec<SafetensorsEntry>,
    next: usize,
}

impl<W: Write> SafetensorsWriter<W> {
    /// Writes the header for `entries` (names must be unique) to `out`.
    pub fn new(
        mut out: W,
        entries: Vec<SafetensorsEntry>,
        metadata: &[(&str, &str)],
    ) -> io::Result<Self> {
        let mut names = HashSet::new();
        if let Some(dup) = entries.iter().find(|e| !names.insert(e.name.as_str())) {
            return Err(invalid(format!("tensor `{}` appears twice", dup.name)));
        }
        out.write_all(&header_bytes(&entries, metadata))?;
        Ok(Self {
            out,
            entries,
            next: 0,
        })
    }

    /// Writes the data of the next tensor in header order; `name` and the length must match it.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let Some(entry) = self.entries.get(self.next) else {
            return Err(invalid(format!(
                "tensor `{name}` is not in the header (all tensors written)"
            )));
        };
        if entry.name != name {
            return Err(invalid(format!(
                "tensor `{name}` written where the header expects `{}`",
                entry.name
            )));
        }
        if data.len() as u64 != entry.byte_size() {
            return Err(invalid(format!(
                "tensor `{name}` has {} bytes, the header says {}",
                data.len(),
                entry.byte_size()
            )));
        }
        self.out.write_all(data)?;
        self.next += 1;
        Ok(())
    }

    /// Checks that every tensor was written, flushes, and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(missing) = self.entries.get(self.next) {
            return Err(invalid(format!(
                "tensor `{}` was never written",
                missing.name
            )));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, dtype: OutputDType, shape: &[u64]) -> SafetensorsEntry {
        SafetensorsEntry {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn header_is_padded_json_with_back_to_back_offsets() {
        let entries = [
            entry("b", OutputDType::F32, &[2, 3]),
            entry("a", OutputDType::BF16, &[5]),
        ];
        let bytes = header_bytes(&entries, &[("format", "pt")]);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n, bytes.len() - 8);
        assert_eq!(n % 8, 0);
        let header: Value = serde_json::from_slice(&bytes[8..]).unwrap();
        assert_eq!(header["__metadata__"]["format"], "pt");
        assert_eq!(header["b"]["dtype"], "F32");
        assert_eq!(header["b"]["shape"], json!([2, 3]));
        assert_eq!(header["b"]["data_offsets"], json!([0, 24]));
        assert_eq!(header["a"]["dtype"], "BF16");
        assert_eq!(header["a"]["data_offsets"], json!([24, 34]));
    }

    #[test]
    fn writer_checks_order_and_sizes() {
        let entries = vec![
            entry("x", OutputDType::F16, &[2]),
            entry("y", OutputDType::F32, &[1]),
        ];
        let mut w = SafetensorsWriter::new(Vec::new(), entries.clone(), &[]).unwrap();
        assert!(w.write_tensor("y", &[0; 4]).is_err());
        assert!(w.write_tensor("x", &[0; 3]).is_err());
        w.write_tensor("x", &[1, 2, 3, 4]).unwrap();
        let unfinished = SafetensorsWriter::new(Vec::new(), entries.clone(), &[]).unwrap();
        assert!(unfinished.finish().is_err());
        w.write_tensor("y", &[5, 6, 7, 8]).unwrap();
        let file = w.finish().unwrap();
        let header = header_bytes(&entries, &[]);
        assert_eq!(&file[..header.len()], &header[..]);
        assert_eq!(&file[header.len()..], &[1, 2, 3, 4, 5, 6, 7, 8]);

        let twice = vec![entries[0].clone(), entries[0].clone()];
        let err = SafetensorsWriter::new(Vec::new(), twice, &[]).unwrap_err();
        assert!(err.to_string().contains("`x` appears twice"), "{err}");
    }
}
