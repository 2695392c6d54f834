//! A Hugging Face checkpoint directory: which files it has, and its tensors.
//!
//! Expected: `config.json`, `tokenizer.json`, weights as `model.safetensors` or shards listed in
//! `model.safetensors.index.json`; optional `tokenizer_config.json` (chat template, special
//! tokens) and `generation_config.json` (end-of-sequence ids).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::Tensor;

use crate::error::{Error, Result};

/// The files of a checkpoint directory, checked to exist.
#[derive(Debug, Clone)]
pub struct CheckpointFiles {
    /// The directory.
    pub dir: PathBuf,
    /// Safetensors files holding the weights (one, or the shards of an index).
    pub weights: Vec<PathBuf>,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
}

fn load_error(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelLoad {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Whether `path` looks like a Hugging Face checkpoint directory (has `config.json`).
pub fn is_checkpoint_dir(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}

impl CheckpointFiles {
    /// Finds the files of the checkpoint in `dir`; a missing one is named in the error.
    pub fn find(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(load_error(dir, "is not a checkpoint directory"));
        }
        for required in ["config.json", "tokenizer.json"] {
            if !dir.join(required).is_file() {
                return Err(load_error(dir, format!("the checkpoint has no {required}")));
            }
        }
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let weights = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            shards_of(&index)?
        } else {
            return Err(load_error(
                dir,
                "the checkpoint has no model.safetensors or model.safetensors.index.json (only safetensors weights are read)",
            ));
        };
        Ok(Self {
            dir: dir.to_owned(),
            weights,
            tokenizer: dir.join("tokenizer.json"),
        })
    }

    /// Reads every tensor of every weights file (on the CPU, in the stored dtype).
    pub fn read_tensors(&self) -> Result<TensorMap> {
        let mut tensors = HashMap::new();
        for file in &self.weights {
            let read =
                Tensor::read_safetensors(file).map_err(|e| load_error(file, e.to_string()))?;
            tensors.extend(read);
        }
        Ok(TensorMap {
            source: self.dir.clone(),
            tensors,
        })
    }

    /// `tokenizer_config.json` (or `{}` when absent).
    pub fn tokenizer_config(&self) -> Result<Value> {
        read_optional_json(&self.dir.join("tokenizer_config.json"))
    }

    /// `generation_config.json` (or `{}` when absent).
    pub fn generation_config(&self) -> Result<Value> {
        read_optional_json(&self.dir.join("generation_config.json"))
    }

    /// Bytes of the weight files.
    pub fn weights_size(&self) -> u64 {
        self.weights
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn read_optional_json(path: &Path) -> Result<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| load_error(path, format!("invalid JSON: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Object(Default::default())),
        Err(e) => Err(load_error(path, e.to_string())),
    }
}

fn shards_of(index: &Path) -> Result<Vec<PathBuf>> {
    let value = read_optional_json(index)?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| load_error(index, "has no weight_map object"))?;
    let names: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shards = Vec::new();
    for name in names {
        if name.contains('/') || name.contains("..") {
            return Err(load_error(
                index,
                format!("shard name `{name}` is not a file name"),
            ));
        }
        let path = dir.join(name);
        if !path.is_file() {
            return Err(load_error(&path, "shard listed in the index is missing"));
        }
        shards.push(path);
    }
    if shards.is_empty() {
        return Err(load_error(index, "weight_map lists no shards"));
    }
    Ok(shards)
}

/// Tensors by name, taken out one by one while the model is built.
pub struct TensorMap {
    source: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl TensorMap {
    /// Takes the tensor `name`, checking its shape; a missing or misshapen one is an error.
    pub fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self.take_any(name)?;
        if t.size() != shape {
            return Err(load_error(
                &self.source,
                format!(
                    "tensor {name} has shape {:?}, config.json implies {shape:?}",
                    t.size()
                ),
            ));
        }
        Ok(t)
    }

    /// Takes the tensor `name` whatever its shape.
    pub fn take_any(&mut self, name: &str) -> Result<Tensor> {
        self.tensors
            .remove(name)
            .ok_or_else(|| load_error(&self.source, format!("the checkpoint has no tensor {name}")))
    }

    /// Takes `name` if present.
    pub fn take_optional(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// The chat template of `tokenizer_config.json`: a string, or the `default` entry of a list.
pub fn chat_template(tokenizer_config: &Value) -> Option<String> {
    match tokenizer_config.get("chat_template")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .or_else(|| items.first())
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// A special token's text in tokenizer_config.json (`"<s>"` or `{"content": "<s>"}`).
pub fn special_token(tokenizer_config: &Value, key: &str) -> Option<String> {
    match tokenizer_config.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}
