//! A model as a CNCF ModelPack artifact: a config blob (`descriptor`, `config`, `modelfs`) and one
//! uncompressed layer per file (a GGUF file, each shard of a split one, each file of a checkpoint
//! directory), annotated with its path. Nothing in it depends on the time or the machine, so the
//! same files give the same manifest digest, byte for byte.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::credentials::Credentials;
use super::media::{self, Descriptor, Manifest};
use super::registry::{BlobPush, Registry};
use crate::error::{Error, Result};
use crate::model::gguf::SplitShard;
use crate::model::{sha256_file, ModelInfo, OciReference};

/// A packaged model, ready to write as an OCI layout or push.
#[derive(Debug, Clone)]
pub struct Packaged {
    /// The manifest, as pushed.
    pub manifest: Vec<u8>,
    /// `sha256:HEX` of the manifest.
    pub digest: String,
    /// The config blob.
    pub config: Vec<u8>,
    /// Each layer and the file it holds.
    pub layers: Vec<(Descriptor, PathBuf)>,
}

/// `3.2B`, `135M`: a parameter count as model cards write it.
fn param_size(parameters: u64) -> String {
    let (value, unit) = match parameters {
        p if p >= 1_000_000_000 => (p as f64 / 1e9, "B"),
        p if p >= 1_000_000 => (p as f64 / 1e6, "M"),
        p => (p as f64 / 1e3, "K"),
    };
    let text = format!("{value:.1}");
    format!("{}{unit}", text.trim_end_matches(".0"))
}

/// A file going into the artifact.
struct PackFile {
    path: PathBuf,
    /// Its path inside the model (the `org.cncf.model.filepath` annotation).
    name: String,
    media_type: &'static str,
}

/// Packages the model at `model`: a GGUF file (with its sibling shards when it is one shard of
/// a split model), or a checkpoint directory (a Hugging Face checkpoint, a `kaito quantize`
/// output): one layer per file, in path order.
pub fn package(model: &Path) -> Result<Packaged> {
    let (files, name, model_config) = if model.is_dir() {
        checkpoint_files(model)?
    } else {
        gguf_files(model)?
    };
    let digests = hash_all(&files)?;
    let mut layers = Vec::with_capacity(files.len());
    for (file, (digest, size)) in files.into_iter().zip(digests) {
        let layer = Descriptor {
            media_type: file.media_type.to_owned(),
            digest,
            size,
            annotations: BTreeMap::from([(media::FILEPATH.to_owned(), file.name)]),
            artifact_type: None,
            platform: None,
        };
        layers.push((layer, file.path));
    }
    let diff_ids: Vec<&str> = layers.iter().map(|(l, _)| l.digest.as_str()).collect();
    let config = json!({
        "descriptor": {"name": name},
        "config": model_config,
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    });
    let config = serde_json::to_vec(&config).map_err(|e| Error::Engine(e.to_string()))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_owned()),
        artifact_type: Some(media::MODELPACK_ARTIFACT.to_owned()),
        config: Descriptor {
            media_type: media::MODELPACK_CONFIG.to_owned(),
            digest: format!("sha256:{:x}", Sha256::digest(&config)),
            size: config.len() as u64,
            annotations: BTreeMap::new(),
            artifact_type: None,
            platform: None,
        },
        layers: layers.iter().map(|(l, _)| l.clone()).collect(),
        annotations: BTreeMap::new(),
    };
    let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::Engine(e.to_string()))?;
    Ok(Packaged {
        digest: format!("sha256:{:x}", Sha256::digest(&manifest)),
        manifest,
        config,
        layers,
    })
}

/// A file's `sha256:HEX` and size, by its index.
type Hashed = (usize, Result<(String, u64)>);

/// `sha256:HEX` and size of each file, in order; the files are hashed on up to as many threads
/// as the machine has cores.
fn hash_all(files: &[PackFile]) -> Result<Vec<(String, u64)>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(files.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Vec<Hashed>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(file) = files.get(i) else { break };
                        let hashed = fs::metadata(&file.path)
                            .map_err(|e| {
                                Error::io(format!("cannot read {}", file.path.display()), e)
                            })
                            .and_then(|meta| {
                                Ok((format!("sha256:{}", sha256_file(&file.path)?), meta.len()))
                            });
                        done.push((i, hashed));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut ordered: Vec<Hashed> = results.into_iter().flatten().collect();
    ordered.sort_by_key(|(i, _)| *i);
    if ordered.len() != files.len() {
        return Err(Error::Engine("hashing a file panicked".to_owned()));
    }
    ordered.into_iter().map(|(_, r)| r).collect()
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::spec("model", format!("{} has no file name", path.display())))
}

/// A GGUF file, or all the shards of the split model it is one of.
fn gguf_files(model: &Path) -> Result<(Vec<PackFile>, String, serde_json::Value)> {
    let name = file_name(model)?;
    let (first, names, stem) = match SplitShard::parse(&name) {
        Some(shard) => {
            let names: Vec<String> = (1..=shard.count).map(|k| shard.sibling(k)).collect();
            if let Some(missing) = names.iter().find(|n| !model.with_file_name(n).is_file()) {
                return Err(Error::spec(
                    "model",
                    format!(
                        "{name} is shard {} of {} of a split model, but {missing} is not beside it",
                        shard.number, shard.count
                    ),
                ));
            }
            (
                model.with_file_name(&names[0]),
                names,
                shard.prefix.to_owned(),
            )
        }
        None => (
            model.to_owned(),
            vec![name.clone()],
            name.trim_end_matches(".gguf").to_owned(),
        ),
    };
    let info = ModelInfo::from_gguf(&first, stem.clone())?;
    let mut model_config = json!({
        "architecture": info.architecture,
        "format": "gguf",
        "paramSize": param_size(info.parameters),
    });
    if let Some(q) = &info.quantization {
        model_config["quantization"] = json!(q);
    }
    let files = names
        .into_iter()
        .map(|n| PackFile {
            path: model.with_file_name(&n),
            name: n,
            media_type: media::MODELPACK_WEIGHT_RAW,
        })
        .collect();
    Ok((files, info.display_name.unwrap_or(stem), model_config))
}

/// A checkpoint directory: every file below it but hidden ones, with `config.json` required.
fn checkpoint_files(dir: &Path) -> Result<(Vec<PackFile>, String, serde_json::Value)> {
    let config_path = dir.join("config.json");
    let hf_config: serde_json::Value = fs::read(&config_path)
        .map_err(|e| {
            Error::spec(
                "model",
                format!(
                    "{} is a directory without a readable config.json ({e}): not a Hugging Face checkpoint",
                    dir.display()
                ),
            )
        })
        .and_then(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::spec("model", format!("{}: {e}", config_path.display()))
            })
        })?;
    let mut names = Vec::new();
    walk(dir, "", &mut names)?;
    names.sort();
    let mut parameters = 0u64;
    let mut dtypes: BTreeMap<String, u64> = BTreeMap::new();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let lower = name
            .rsplit('/')
            .next()
            .unwrap_or(&name)
            .to_ascii_lowercase();
        let media_type = if [".safetensors", ".gguf", ".bin", ".pt", ".pth"]
            .iter()
            .any(|ext| lower.ends_with(ext))
        {
            media::MODELPACK_WEIGHT_RAW
        } else if ["readme", "license", "licence", "notice", "use_policy"]
            .iter()
            .any(|p| lower.starts_with(p))
            || lower.ends_with(".md")
        {
            media::MODELPACK_DOC_RAW
        } else {
            media::MODELPACK_WEIGHT_CONFIG_RAW
        };
        if lower.ends_with(".safetensors") {
            for (dtype, count) in safetensors_counts(&path)? {
                parameters += count;
                *dtypes.entry(dtype).or_default() += count;
            }
        }
        files.push(PackFile {
            path,
            name,
            media_type,
        });
    }
    let architecture = hf_config["architectures"][0]
        .as_str()
        .or_else(|| hf_config["model_type"].as_str())
        .unwrap_or("unknown");
    let mut model_config = json!({
        "architecture": architecture,
        "format": "safetensors",
        "paramSize": param_size(parameters),
    });
    if let Some((dtype, _)) = dtypes.iter().max_by_key(|(_, n)| **n) {
        model_config["precision"] = json!(precision(dtype));
    }
    if let Ok(bytes) = fs::read(dir.join("quantization_config.json")) {
        let q: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if let Some(scheme) = q["scheme"].as_str().or_else(|| q["quant_method"].as_str()) {
            model_config["quantization"] = json!(scheme);
        }
    }
    let name = hf_config["_name_or_path"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .unwrap_or(file_name(dir)?);
    Ok((files, name, model_config))
}

/// The files below `dir` (relative paths with `/`), hidden files and directories left out.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let path = entry.path();
        if path.is_dir() {
            walk(&path, &format!("{rel}/"), out)?;
        } else if path.is_file() {
            out.push(rel);
        }
    }
    Ok(())
}

/// Elements per dtype in a safetensors file, read from its header.
fn safetensors_counts(path: &Path) -> Result<BTreeMap<String, u64>> {
    let bad = |m: String| Error::ModelLoad {
        path: path.to_owned(),
        message: m,
    };
    let mut file = fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(bad(format!("implausible safetensors header length {len}")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(format!("truncated safetensors header: {e}")))?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("bad safetensors header: {e}")))?;
    let mut counts = BTreeMap::new();
    for (name, tensor) in header {
        if name == "__metadata__" {
            continue;
        }
        let elements: u64 = tensor["shape"]
            .as_array()
            .map(|dims| dims.iter().filter_map(serde_json::Value::as_u64).product())
            .unwrap_or(0);
        let dtype = tensor["dtype"].as_str().unwrap_or("?").to_owned();
        *counts.entry(dtype).or_default() += elements;
    }
    Ok(counts)
}

/// A safetensors dtype as ModelPack's `precision` names it.
fn precision(dtype: &str) -> String {
    match dtype {
        "F32" => "fp32".to_owned(),
        "F16" => "fp16".to_owned(),
        "BF16" => "bf16".to_owned(),
        "F64" => "fp64".to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

impl Packaged {
    /// Writes an OCI image layout at `dir` (`oci-layout`, `index.json` naming the manifest as
    /// `tag`, `blobs/sha256/`); weights are hard-linked when `dir` is on the same file system,
    /// else copied.
    pub fn write_layout(&self, dir: &Path, tag: &str) -> Result<()> {
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs)
            .map_err(|e| Error::io(format!("cannot create {}", blobs.display()), e))?;
        let write = |path: &Path, bytes: &[u8]| {
            fs::write(path, bytes)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
        };
        let blob = |digest: &str| blobs.join(digest.trim_start_matches("sha256:"));
        for (layer, path) in &self.layers {
            let target = blob(&layer.digest);
            if fs::metadata(&target).is_ok_and(|m| m.len() == layer.size) {
                continue;
            }
            if fs::hard_link(path, &target).is_err() {
                fs::copy(path, &target).map_err(|e| {
                    Error::io(
                        format!("cannot copy {} to {}", path.display(), target.display()),
                        e,
                    )
                })?;
            }
        }
        let config_digest = format!("sha256:{:x}", Sha256::digest(&self.config));
        write(&blob(&config_digest), &self.config)?;
        write(&blob(&self.digest), &self.manifest)?;
        write(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [{
                "mediaType": media::OCI_MANIFEST,
                "artifactType": media::MODELPACK_ARTIFACT,
                "digest": self.digest,
                "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        write(
            &dir.join("index.json"),
            &serde_json::to_vec(&index).map_err(|e| Error::Engine(e.to_string()))?,
        )
    }

    /// Pushes the artifact to `reference` (its tag, `latest` if none): the blobs the repository
    /// lacks — mounted from another repository of the same registry when `mount_from` names
    /// ones that hold that digest (`sha256:HEX` → repositories), else uploaded — then the
    /// manifest.
    pub fn push(
        &self,
        reference: &OciReference,
        insecure: bool,
        mount_from: &BTreeMap<String, Vec<String>>,
    ) -> Result<PushReport> {
        let tag = reference.tag.as_deref().unwrap_or("latest");
        let registry = Registry::new(reference, insecure, Credentials::find(&reference.registry)?);
        let mut report = PushReport::default();
        let mut count = |done: BlobPush| match done {
            BlobPush::Uploaded => report.uploaded += 1,
            BlobPush::Mounted => report.mounted += 1,
            BlobPush::Present => {}
        };
        let none = Vec::new();
        for (layer, path) in &self.layers {
            let path = path.clone();
            let open =
                move || -> std::io::Result<Box<dyn Read>> { Ok(Box::new(fs::File::open(&path)?)) };
            let from = mount_from.get(&layer.digest).unwrap_or(&none);
            count(registry.push_blob(&layer.digest, layer.size, &open, from)?);
        }
        let config = self.config.clone();
        let config_digest = format!("sha256:{:x}", Sha256::digest(&config));
        let open = move || -> std::io::Result<Box<dyn Read>> {
            Ok(Box::new(std::io::Cursor::new(config.clone())))
        };
        let from = mount_from.get(&config_digest).unwrap_or(&none);
        count(registry.push_blob(&config_digest, self.config.len() as u64, &open, from)?);
        registry.push_manifest(tag, &self.manifest, media::OCI_MANIFEST)?;
        Ok(report)
    }
}

/// What [`Packaged::push`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from another repository of the registry (no bytes sent).
    pub mounted: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes() {
        assert_eq!(param_size(134_515_008), "134.5M");
        assert_eq!(param_size(7_000_000_000), "7B");
        assert_eq!(param_size(1_500_000_000), "1.5B");
    }
}
