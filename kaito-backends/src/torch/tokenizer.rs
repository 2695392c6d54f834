//! The checkpoint's `tokenizer.json` through Hugging Face `tokenizers`, plus the raw bytes of
//! every token (what a stream sends when a token ends in the middle of a UTF-8 character).

use std::path::Path;

use serde_json::Value;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// Encoder/decoder of one checkpoint.
pub struct TextTokenizer {
    /// Parses special-token text (`<|im_start|>`) into its id.
    with_specials: Tokenizer,
    /// Treats special-token text as plain text.
    plain: Tokenizer,
    /// Bytes of each token id.
    pieces: Vec<Vec<u8>>,
}

fn tokenizer_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::ModelLoad {
        path: path.display().to_string(),
        message: format!("tokenizer: {e}"),
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; `vocab_size` is the model's (ids at or above it get no bytes).
    pub fn from_file(path: &Path, vocab_size: usize) -> Result<Self> {
        let with_specials = Tokenizer::from_file(path).map_err(|e| tokenizer_error(path, e))?;
        let mut plain = with_specials.clone();
        plain.set_encode_special_tokens(true);
        let json: Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let byte_level = mentions_type(json.get("decoder"), "ByteLevel");
        let vocab = with_specials.get_vocab_size(true).max(vocab_size);
        let pieces = (0..vocab as u32)
            .map(|id| {
                let Some(text) = with_specials.id_to_token(id) else {
                    return Vec::new();
                };
                let special = with_specials
                    .get_added_vocabulary()
                    .get_added_tokens_decoder()
                    .get(&id)
                    .is_some_and(|t| t.special);
                if special {
                    text.into_bytes()
                } else if byte_level {
                    byte_level_bytes(&text)
                } else {
                    metaspace_bytes(&text)
                }
            })
            .collect();
        Ok(Self {
            with_specials,
            plain,
            pieces,
        })
    }

    /// Token ids of `text`. `add_special` adds BOS/EOS as the tokenizer's post-processor says;
    /// `parse_special` turns special-token text into its id.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let tokenizer = if parse_special {
            &self.with_specials
        } else {
            &self.plain
        };
        tokenizer
            .encode(text, add_special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Decode(format!("tokenizer: {e}")))
    }

    /// Text of `tokens` (special tokens included).
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        self.with_specials
            .decode(tokens, false)
            .map_err(|e| Error::Decode(format!("tokenizer: {e}")))
    }

    /// Raw bytes of one token.
    pub fn piece(&self, token: u32) -> Vec<u8> {
        self.pieces.get(token as usize).cloned().unwrap_or_default()
    }

    /// The id of a token's exact text, if it is one token.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.with_specials.token_to_id(text)
    }
}

fn mentions_type(value: Option<&Value>, kind: &str) -> bool {
    match value {
        Some(Value::Object(o)) => {
            o.get("type").and_then(Value::as_str) == Some(kind)
                || o.values().any(|v| mentions_type(Some(v), kind))
        }
        Some(Value::Array(items)) => items.iter().any(|v| mentions_type(Some(v), kind)),
        _ => false,
    }
}

/// GPT-2's byte ↔ printable-character table: bytes that are printable map to themselves, the
/// others to 256, 257, ... in byte order.
fn byte_of_char(c: char) -> Option<u8> {
    let code = c as u32;
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    if code < 256 && printable(code) {
        return Some(code as u8);
    }
    let mut next = 256u32;
    for b in 0u32..256 {
        if !printable(b) {
            if next == code {
                return Some(b as u8);
            }
            next += 1;
        }
    }
    None
}

fn byte_level_bytes(text: &str) -> Vec<u8> {
    let mapped: Option<Vec<u8>> = text.chars().map(byte_of_char).collect();
    mapped.unwrap_or_else(|| text.as_bytes().to_vec())
}

/// SentencePiece-style pieces: `▁` is a space, `<0xAB>` a raw byte.
fn metaspace_bytes(text: &str) -> Vec<u8> {
    if let Some(hex) = text.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')) {
        if let Ok(b) = u8::from_str_radix(hex, 16) {
            return vec![b];
        }
    }
    text.replace('\u{2581}', " ").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_byte_table() {
        assert_eq!(byte_of_char('A'), Some(b'A'));
        assert_eq!(byte_of_char('\u{120}'), Some(b' ')); // "Ġ"
        assert_eq!(byte_of_char('\u{10a}'), Some(b'\n')); // "Ċ"
        assert_eq!(byte_level_bytes("Ġhello"), b" hello");
        // "é" as two byte-level characters "Ã©".
        assert_eq!(byte_level_bytes("Ã©"), "é".as_bytes());
    }

    #[test]
    fn metaspace_pieces() {
        assert_eq!(metaspace_bytes("\u{2581}Paris"), b" Paris");
        assert_eq!(metaspace_bytes("<0x0A>"), b"\n");
    }
}
