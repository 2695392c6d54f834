//! A model file as a CNCF ModelPack artifact: a config blob (`descriptor`, `config`, `modelfs`)
//! and one uncompressed layer per file, annotated with its file path. Nothing in it depends on
//! the time or the machine, so the same file gives the same manifest digest, byte for byte.

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

/// Packages the GGUF file at `model`.
pub fn package(model: &Path) -> Result<Packaged> {
    if model.is_dir() {
        return Err(Error::spec(
            "model",
            format!(
                "{} is a directory: packaging Hugging Face checkpoints is not supported yet; give a GGUF file",
                model.display()
            ),
        ));
    }
    let file_name = model
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::spec("model", format!("{} has no file name", model.display())))?
        .to_owned();
    let stem = file_name.trim_end_matches(".gguf").to_owned();
    let info = ModelInfo::from_gguf(model, stem.clone())?;
    let size = fs::metadata(model)
        .map_err(|e| Error::io(format!("cannot read {}", model.display()), e))?
        .len();
    let layer_digest = format!("sha256:{}", sha256_file(model)?);
    let mut model_config = json!({
        "architecture": info.architecture,
        "format": "gguf",
        "paramSize": param_size(info.parameters),
    });
    if let Some(q) = &info.quantization {
        model_config["quantization"] = json!(q);
    }
    let config = json!({
        "descriptor": {"name": info.display_name.clone().unwrap_or(stem)},
        "config": model_config,
        "modelfs": {"type": "layers", "diffIds": [layer_digest.clone()]},
    });
    let config = serde_json::to_vec(&config).map_err(|e| Error::Engine(e.to_string()))?;
    let layer = Descriptor {
        media_type: media::MODELPACK_WEIGHT_RAW.to_owned(),
        digest: layer_digest,
        size,
        annotations: BTreeMap::from([(media::FILEPATH.to_owned(), file_name)]),
        artifact_type: None,
        platform: None,
    };
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
        layers: vec![layer.clone()],
        annotations: BTreeMap::new(),
    };
    let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::Engine(e.to_string()))?;
    Ok(Packaged {
        digest: format!("sha256:{:x}", Sha256::digest(&manifest)),
        manifest,
        config,
        layers: vec![(layer, model.to_owned())],
    })
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
