//! `tokenizer.json` (Hugging Face `tokenizers` format) and `tokenizer_config.json` from a GGUF
//! byte-level BPE vocabulary (`tokenizer.ggml.model = "gpt2"`).
//!
//! GGUF stores the vocabulary already in byte-level form (`Ġ` for a space), so tokens and merges carry
//! over as they are. What must match llama.cpp is the pre-tokenization that `tokenizer.ggml.pre` names;
//! only the values whose llama.cpp regexes have an exact `tokenizers` equivalent are accepted.

use serde_json::{json, Map, Value};

use crate::model::gguf::{GgufHeader, GgufValue};

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_UNKNOWN: i64 = 2;
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// How text is split before BPE runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenization {
    /// Every digit alone, then the GPT-2 regex (llama.cpp `smollm`, `starcoder`).
    DigitsThenGpt2,
    /// The GPT-2 regex (llama.cpp `gpt-2`).
    Gpt2,
}

impl PreTokenization {
    /// The pre-tokenization llama.cpp uses for `tokenizer.ggml.pre = pre`, when `tokenizers` has it.
    pub fn from_gguf_pre(pre: &str) -> Option<Self> {
        match pre {
            "smollm" | "starcoder" => Some(Self::DigitsThenGpt2),
            "gpt-2" => Some(Self::Gpt2),
            _ => None,
        }
    }

    fn pre_tokenizer_json(self) -> Value {
        let byte_level = json!({
            "type": "ByteLevel",
            "add_prefix_space": false,
            "trim_offsets": true,
            "use_regex": true,
        });
        match self {
            Self::DigitsThenGpt2 => json!({
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Digits", "individual_digits": true},
                    byte_level,
                ],
            }),
            Self::Gpt2 => byte_level,
        }
    }
}

/// A GGUF BPE vocabulary and the special-token settings around it.
#[derive(Debug, Clone)]
pub struct HfTokenizer<'a> {
    tokens: &'a [String],
    token_types: Option<&'a [i64]>,
    merges: &'a [String],
    pre: PreTokenization,
    /// llama.cpp's `smollm` keeps spaces before punctuation when decoding; others clean them up.
    clean_up_spaces: bool,
    bos: Option<u64>,
    eos: Option<u64>,
    unk: Option<u64>,
    pad: Option<u64>,
    add_bos: bool,
    add_eos: bool,
    chat_template: Option<&'a str>,
}

impl<'a> HfTokenizer<'a> {
    /// Reads the vocabulary of `header`. Errors say which key is missing or which value is unsupported.
    pub fn from_gguf(header: &'a GgufHeader) -> Result<Self, String> {
        let model = header
            .get("tokenizer.ggml.model")
            .and_then(GgufValue::as_str)
            .ok_or("GGUF has no tokenizer (tokenizer.ggml.model)")?;
        if model != "gpt2" {
            return Err(format!(
                "tokenizer model `{model}` is not supported: the converter writes byte-level BPE tokenizers (`gpt2`)"
            ));
        }
        let pre_name = header
            .get("tokenizer.ggml.pre")
            .and_then(GgufValue::as_str)
            .ok_or("GGUF lacks tokenizer.ggml.pre, so its pre-tokenizer is unknown")?;
        let pre = PreTokenization::from_gguf_pre(pre_name).ok_or_else(|| {
            format!("pre-tokenizer `{pre_name}` is not supported (smollm, starcoder and gpt-2 are)")
        })?;
        let Some(GgufValue::StringArray(tokens)) = header.get("tokenizer.ggml.tokens") else {
            return Err("GGUF lacks tokenizer.ggml.tokens".to_owned());
        };
        let Some(GgufValue::StringArray(merges)) = header.get("tokenizer.ggml.merges") else {
            return Err("GGUF lacks tokenizer.ggml.merges".to_owned());
        };
        let token_types = match header.get("tokenizer.ggml.token_type") {
            Some(GgufValue::IntArray(types)) if types.len() == tokens.len() => Some(&types[..]),
            Some(_) => {
                return Err("tokenizer.ggml.token_type is not one integer per token".to_owned())
            }
            None => None,
        };
        let id = |key: &str| -> Result<Option<u64>, String> {
            match header.get(key).and_then(GgufValue::as_u64) {
                Some(id) if id >= tokens.len() as u64 => Err(format!(
                    "{key} is {id}, outside the vocabulary of {}",
                    tokens.len()
                )),
                other => Ok(other),
            }
        };
        let flag = |key: &str| header.get(key).and_then(GgufValue::as_bool);
        Ok(Self {
            tokens,
            token_types,
            merges,
            pre,
            clean_up_spaces: pre_name != "smollm",
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(false),
            add_eos: flag("tokenizer.ggml.add_eos_token").unwrap_or(false),
            chat_template: header
                .get("tokenizer.chat_template")
                .and_then(GgufValue::as_str),
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocabulary_size(&self) -> usize {
        self.tokens.len()
    }

    /// The `tokenizer.json` document.
    pub fn tokenizer_json(&self) -> Result<Value, String> {
        let mut vocab = Map::with_capacity(self.tokens.len());
        for (id, token) in self.tokens.iter().enumerate() {
            if let Some(first) = vocab.insert(token.clone(), json!(id)) {
                return Err(format!(
                    "token `{token}` appears twice in the vocabulary (ids {first} and {id})"
                ));
            }
        }
        let merges = self
            .merges
            .iter()
            .map(|merge| split_merge(merge).map(|(a, b)| json!([a, b])))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": self
                .added_tokens()
                .into_iter()
                .map(|(id, fields)| {
                    let mut token = Map::from_iter([("id".to_owned(), json!(id))]);
                    token.extend(fields);
                    Value::Object(token)
                })
                .collect::<Vec<_>>(),
            "normalizer": null,
            "pre_tokenizer": self.pre.pre_tokenizer_json(),
            "post_processor": self.post_processor_json(),
            "decoder": {
                "type": "ByteLevel",
                "add_prefix_space": true,
                "trim_offsets": true,
                "use_regex": true,
            },
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": false,
                "vocab": vocab,
                "merges": merges,
            },
        }))
    }

    /// The `tokenizer_config.json` document; `model_max_length` is the context length.
    pub fn tokenizer_config_json(&self, model_max_length: u64) -> Value {
        let decoder: Map<String, Value> = self
            .added_tokens()
            .into_iter()
            .map(|(id, fields)| (id.to_string(), Value::Object(fields)))
            .collect();
        let text = |id: Option<u64>| match id {
            Some(id) => json!(self.tokens[id as usize]),
            None => Value::Null,
        };
        json!({
            "add_bos_token": self.add_bos,
            "add_eos_token": self.add_eos,
            "added_tokens_decoder": decoder,
            "bos_token": text(self.bos),
            "eos_token": text(self.eos),
            "unk_token": text(self.unk),
            "pad_token": text(self.pad),
            "chat_template": self.chat_template,
            "clean_up_tokenization_spaces": self.clean_up_spaces,
            "model_max_length": model_max_length,
            "tokenizer_class": "GPT2Tokenizer",
        })
    }

    /// Control and unknown-type tokens are special (skipped when decoding with special tokens
    /// skipped, as llama.cpp does); user-defined tokens are added but not special (llama.cpp always
    /// splits them out and always prints them). Both are matched whole in any input text.
    /// Each is its id and its fields but the id.
    fn added_tokens(&self) -> Vec<(usize, Map<String, Value>)> {
        let Some(types) = self.token_types else {
            return Vec::new();
        };
        types
            .iter()
            .enumerate()
            .filter_map(|(id, ty)| {
                let special = match *ty {
                    TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => true,
                    TOKEN_TYPE_USER_DEFINED => false,
                    _ => return None,
                };
                let fields = Map::from_iter([
                    ("content".to_owned(), json!(self.tokens[id])),
                    ("single_word".to_owned(), json!(false)),
                    ("lstrip".to_owned(), json!(false)),
                    ("rstrip".to_owned(), json!(false)),
                    ("normalized".to_owned(), json!(false)),
                    ("special".to_owned(), json!(special)),
                ]);
                Some((id, fields))
            })
            .collect()
    }

    /// Byte-level offsets, plus BOS/EOS when the GGUF says to add them.
    fn post_processor_json(&self) -> Value {
        let byte_level = json!({
            "type": "ByteLevel",
            "add_prefix_space": true,
            "trim_offsets": false,
            "use_regex": true,
        });
        let bos = self.bos.filter(|_| self.add_bos);
        let eos = self.eos.filter(|_| self.add_eos);
        if bos.is_none() && eos.is_none() {
            return byte_level;
        }
        let special =
            |id: u64| json!({"SpecialToken": {"id": self.tokens[id as usize], "type_id": 0}});
        let sequence =
            |name: &str, type_id: u32| json!({"Sequence": {"id": name, "type_id": type_id}});
        let template = |name: &str, type_id: u32| -> Vec<Value> {
            bos.map(special)
                .into_iter()
                .chain([sequence(name, type_id)])
                .chain(eos.map(special))
                .collect()
        };
        let single = template("A", 0);
        let pair: Vec<Value> = single.iter().cloned().chain(template("B", 1)).collect();
        let mut special_tokens = Map::new();
        for id in [bos, eos].into_iter().flatten() {
            let text = &self.tokens[id as usize];
            special_tokens.insert(
                text.clone(),
                json!({"id": text, "ids": [id], "tokens": [text]}),
            );
        }
        json!({
            "type": "Sequence",
            "processors": [
                byte_level,
                {
                    "type": "TemplateProcessing",
                    "single": single,
                    "pair": pair,
                    "special_tokens": special_tokens,
                },
            ],
        })
    }
}

/// `"a b"` → (`a`, `b`), splitting at the first space after the first character, as llama.cpp does.
fn split_merge(merge: &str) -> Result<(&str, &str), String> {
    let first_len = merge.chars().next().map_or(0, char::len_utf8);
    match merge[first_len..].find(' ') {
        Some(at) => Ok((&merge[..first_len + at], &merge[first_len + at + 1..])),
        None => Err(format!(
            "merge `{merge}` is not two tokens separated by a space"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pre: &str, add_bos: bool) -> GgufHeader {
        let mut h = GgufHeader::default();
        let mut put = |k: &str, v: GgufValue| {
            h.metadata.insert(k.to_owned(), v);
        };
        let strings =
            |v: &[&str]| GgufValue::StringArray(v.iter().map(|s| s.to_string()).collect());
        put("tokenizer.ggml.model", GgufValue::String("gpt2".into()));
        put("tokenizer.ggml.pre", GgufValue::String(pre.into()));
        put(
            "tokenizer.ggml.tokens",
            strings(&["<|endoftext|>", "<s>", "a", "b", "ab", "Ġ", "Ġab", "<tool>"]),
        );
        put(
            "tokenizer.ggml.token_type",
            GgufValue::IntArray(vec![3, 3, 1, 1, 1, 1, 1, 4]),
        );
        put("tokenizer.ggml.merges", strings(&["a b", "Ġ ab"]));
        put("tokenizer.ggml.bos_token_id", GgufValue::UInt(1));
        put("tokenizer.ggml.eos_token_id", GgufValue::UInt(0));
        put("tokenizer.ggml.add_bos_token", GgufValue::Bool(add_bos));
        put(
            "tokenizer.chat_template",
            GgufValue::String("{{ x }}".into()),
        );
        h
    }

    #[test]
    fn writes_bpe_model_added_tokens_and_pre_tokenizer() {
        let h = header("smollm", false);
        let tokenizer = HfTokenizer::from_gguf(&h).unwrap();
        let json = tokenizer.tokenizer_json().unwrap();
        assert_eq!(json["model"]["type"], "BPE");
        assert_eq!(json["model"]["vocab"]["Ġab"], 6);
        assert_eq!(json["model"]["merges"], json!([["a", "b"], ["Ġ", "ab"]]));
        assert_eq!(json["model"]["byte_fallback"], false);
        assert_eq!(
            json["pre_tokenizer"]["pretokenizers"][0],
            json!({"type": "Digits", "individual_digits": true})
        );
        assert_eq!(
            json["pre_tokenizer"]["pretokenizers"][1]["type"],
            "ByteLevel"
        );
        assert_eq!(json["post_processor"]["type"], "ByteLevel");
        let added = json["added_tokens"].as_array().unwrap();
        let summary: Vec<(u64, &str, bool)> = added
            .iter()
            .map(|t| {
                (
                    t["id"].as_u64().unwrap(),
                    t["content"].as_str().unwrap(),
                    t["special"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, "<|endoftext|>", true),
                (1, "<s>", true),
                (7, "<tool>", false)
            ]
        );

        let config = tokenizer.tokenizer_config_json(8192);
        assert_eq!(config["bos_token"], "<s>");
        assert_eq!(config["eos_token"], "<|endoftext|>");
        assert_eq!(config["unk_token"], Value::Null);
        assert_eq!(config["add_bos_token"], false);
        assert_eq!(config["chat_template"], "{{ x }}");
        assert_eq!(config["model_max_length"], 8192);
        assert_eq!(config["clean_up_tokenization_spaces"], false);
        assert_eq!(config["added_tokens_decoder"]["7"]["content"], "<tool>");
    }

    #[test]
    fn adds_bos_with_a_template_when_the_gguf_says_so() {
        let h = header("gpt-2", true);
        let json = HfTokenizer::from_gguf(&h)
            .unwrap()
            .tokenizer_json()
            .unwrap();
        assert_eq!(json["pre_tokenizer"]["type"], "ByteLevel");
        let template = &json["post_processor"]["processors"][1];
        assert_eq!(template["type"], "TemplateProcessing");
        assert_eq!(
            template["single"],
            json!([
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ])
        );
        assert_eq!(template["special_tokens"]["<s>"]["ids"], json!([1]));
    }

    #[test]
    fn rejects_unknown_pre_tokenizers_models_and_bad_merges() {
        let h = header("llama-bpe", false);
        let err = HfTokenizer::from_gguf(&h).unwrap_err();
        assert!(
            err.contains("pre-tokenizer `llama-bpe` is not supported"),
            "{err}"
        );

        let mut h = header("smollm", false);
        h.metadata.insert(
            "tokenizer.ggml.model".into(),
            GgufValue::String("llama".into()),
        );
        let err = HfTokenizer::from_gguf(&h).unwrap_err();
        assert!(err.contains("tokenizer model `llama`"), "{err}");

        assert_eq!(split_merge("Ġ t"), Ok(("Ġ", "t")));
        assert_eq!(split_merge("  x"), Ok((" ", "x")));
        assert!(split_merge("abc").is_err());
    }
}
