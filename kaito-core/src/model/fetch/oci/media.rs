//! What an OCI manifest says, and which of its layers hold a model kaito can serve: CNCF
//! ModelPack (and its older `vnd.cnai` names and the `.gguf`/`.safetensors` variants seen in the
//! wild), Docker Model Runner artifacts and Ollama manifests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::gguf::SplitShard;
use crate::model::store::ModelFormat;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 manifest (Ollama's registry and Docker Hub serve it).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The manifest types asked for, in order of preference.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// ModelPack's artifact type.
pub const MODELPACK_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";
/// ModelPack's config.
pub const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// A ModelPack weight file, uncompressed.
pub const MODELPACK_WEIGHT_RAW: &str = "application/vnd.cncf.model.weight.v1.raw";
/// A ModelPack weight-config file (config.json, tokenizer), uncompressed.
pub const MODELPACK_WEIGHT_CONFIG_RAW: &str = "application/vnd.cncf.model.weight.config.v1.raw";
/// A ModelPack document (licence, README), uncompressed.
pub const MODELPACK_DOC_RAW: &str = "application/vnd.cncf.model.doc.v1.raw";
/// The annotation naming a layer's file.
pub const FILEPATH: &str = "org.cncf.model.filepath";
/// OCI's own file-name annotation.
pub const TITLE: &str = "org.opencontainers.image.title";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:HEX`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Set in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `amd64`.
    #[serde(default)]
    pub architecture: String,
}

/// An image manifest (OCI or Docker v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// 2.
    pub schema_version: u32,
    /// The manifest's own type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// What the artifact is (ModelPack's is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    /// The entries.
    pub manifests: Vec<Descriptor>,
}

/// What a layer is to kaito.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A GGUF weights file.
    Gguf,
    /// A safetensors weights file.
    Safetensors,
    /// A file beside the weights (config.json, tokenizer, template, licence, params).
    Companion,
    /// Something kaito does not use.
    Other,
}

/// The role of a layer of `media_type`.
pub fn role(media_type: &str) -> Role {
    let m = media_type;
    // ModelPack (cncf, and cnai before the rename): the file format comes from the annotation or
    // from the non-spec `.gguf`/`.safetensors` suffixes.
    for prefix in ["application/vnd.cncf.model.", "application/vnd.cnai.model."] {
        if let Some(kind) = m.strip_prefix(prefix) {
            return match kind {
                "weight.v1.gguf" => Role::Gguf,
                "weight.v1.safetensors" => Role::Safetensors,
                k if k.starts_with("weight.v1.raw") => Role::Other, // decided by the file name
                k if k.starts_with("weight.config.v1.raw") || k.starts_with("doc.v1.raw") => {
                    Role::Companion
                }
                _ => Role::Other,
            };
        }
    }
    match m {
        "application/vnd.docker.ai.gguf.v3" | "application/vnd.ollama.image.model" => Role::Gguf,
        "application/vnd.docker.ai.safetensors" => Role::Safetensors,
        "application/vnd.docker.ai.license"
        | "application/vnd.docker.ai.chat.template.jinja"
        | "application/vnd.ollama.image.template"
        | "application/vnd.ollama.image.params"
        | "application/vnd.ollama.image.license"
        | "application/vnd.ollama.image.system" => Role::Companion,
        _ => Role::Other,
    }
}

/// The file name a layer carries: ModelPack's / Docker v0.2's `org.cncf.model.filepath`, OCI's
/// title, else none.
pub fn file_path(layer: &Descriptor) -> Option<&str> {
    layer
        .annotations
        .get(FILEPATH)
        .or_else(|| layer.annotations.get(TITLE))
        .map(String::as_str)
}

/// The layers of an artifact that make the model kaito serves, and the paths they take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLayers {
    /// What the files are.
    pub format: ModelFormat,
    /// Each layer and its path inside the model directory.
    pub files: Vec<(Descriptor, String)>,
    /// The file an engine opens (a GGUF file, the first shard of a split one); `None` for a
    /// checkpoint directory.
    pub primary: Option<String>,
}

impl ModelLayers {
    /// Bytes of all the layers.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|(l, _)| l.size).sum()
    }
}

fn load_error(manifest: &Manifest, message: String) -> Error {
    Error::ModelLoad {
        path: std::path::PathBuf::from(&manifest.config.digest),
        message,
    }
}

/// The layers of `manifest` that make a model kaito serves: one GGUF file; the shards of a split
/// GGUF model (`NAME-0000K-of-0000N.gguf`, all N of them); or a safetensors checkpoint (every
/// layer with a file path: weights, `config.json`, tokenizer, documents). Anything else is an
/// error naming the media types found.
pub fn model_layers(manifest: &Manifest) -> Result<ModelLayers> {
    let classified: Vec<(Role, &Descriptor)> = manifest
        .layers
        .iter()
        .map(|l| {
            let mut r = role(&l.media_type);
            if r == Role::Other && l.media_type.contains(".model.weight.v1.raw") {
                r = match file_path(l) {
                    Some(p) if p.ends_with(".gguf") => Role::Gguf,
                    Some(p) if p.ends_with(".safetensors") => Role::Safetensors,
                    _ => Role::Other,
                };
            }
            (r, l)
        })
        .collect();
    let gguf: Vec<&Descriptor> = classified
        .iter()
        .filter(|(r, _)| *r == Role::Gguf)
        .map(|(_, l)| *l)
        .collect();
    let base_name = |layer: &Descriptor| -> Option<String> {
        file_path(layer)
            .and_then(|p| p.rsplit('/').next())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .map(str::to_owned)
    };
    match gguf.as_slice() {
        [layer] => {
            let name = base_name(layer).unwrap_or_else(|| "model.gguf".to_owned());
            let file_name = if name.ends_with(".gguf") {
                name
            } else {
                format!("{name}.gguf")
            };
            Ok(ModelLayers {
                format: ModelFormat::Gguf,
                files: vec![((*layer).clone(), file_name.clone())],
                primary: Some(file_name),
            })
        }
        [] => checkpoint_layers(manifest, &classified),
        several => {
            let names: Vec<String> = several.iter().filter_map(|l| base_name(l)).collect();
            let shards: Vec<SplitShard<'_>> =
                names.iter().filter_map(|n| SplitShard::parse(n)).collect();
            let first = shards.first();
            let whole = names.len() == several.len()
                && shards.len() == several.len()
                && first.is_some_and(|f| {
                    f.count as usize == several.len()
                        && (1..=f.count).all(|k| names.contains(&f.sibling(k)))
                });
            match first {
                Some(f) if whole => Ok(ModelLayers {
                    format: ModelFormat::Gguf,
                    files: several
                        .iter()
                        .zip(&names)
                        .map(|(l, n)| ((*l).clone(), n.clone()))
                        .collect(),
                    primary: Some(f.sibling(1)),
                }),
                _ => Err(load_error(
                    manifest,
                    format!(
                        "the artifact has {} GGUF layers ({}) that are not the shards of one split model (NAME-00001-of-0000N.gguf … all N of them)",
                        several.len(),
                        several
                            .iter()
                            .map(|l| file_path(l).unwrap_or(&l.digest))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
    }
}

/// A safetensors checkpoint: every layer that names its file, which must include `config.json`.
fn checkpoint_layers(
    manifest: &Manifest,
    classified: &[(Role, &Descriptor)],
) -> Result<ModelLayers> {
    let found: Vec<&str> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    if !classified.iter().any(|(r, _)| *r == Role::Safetensors) {
        return Err(load_error(
            manifest,
            format!(
                "no layer kaito can serve: the artifact's layers are {} (config {})",
                if found.is_empty() {
                    "none".to_owned()
                } else {
                    found.join(", ")
                },
                manifest.config.media_type
            ),
        ));
    }
    let mut files: Vec<(Descriptor, String)> = Vec::new();
    for (role, layer) in classified {
        let Some(path) = file_path(layer) else {
            if *role == Role::Safetensors {
                return Err(load_error(
                    manifest,
                    format!(
                        "the safetensors layer {} does not name its file ({FILEPATH})",
                        layer.digest
                    ),
                ));
            }
            continue;
        };
        let path = path.trim_start_matches("./").to_owned();
        if !files.iter().any(|(_, p)| *p == path) {
            files.push(((*layer).clone(), path));
        }
    }
    if !files.iter().any(|(_, p)| p == "config.json") {
        return Err(load_error(
            manifest,
            "a safetensors checkpoint without a config.json layer cannot be served".to_owned(),
        ));
    }
    Ok(ModelLayers {
        format: ModelFormat::Safetensors,
        files,
        primary: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str, path: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: format!("sha256:{}", "1".repeat(64)),
            size: 1,
            annotations: path
                .map(|p| BTreeMap::from([(FILEPATH.to_owned(), p.to_owned())]))
                .unwrap_or_default(),
            artifact_type: None,
            platform: None,
        }
    }

    fn manifest(layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config: layer("application/vnd.docker.ai.model.config.v0.1+json", None),
            layers,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn finds_the_gguf_of_each_layout() {
        let cases = [
            (
                layer(MODELPACK_WEIGHT_RAW, Some("models/m.Q4.gguf")),
                "m.Q4.gguf",
            ),
            (
                layer("application/vnd.cnai.model.weight.v1.raw", Some("x.gguf")),
                "x.gguf",
            ),
            (
                layer("application/vnd.cncf.model.weight.v1.gguf", None),
                "model.gguf",
            ),
            (
                layer("application/vnd.docker.ai.gguf.v3", None),
                "model.gguf",
            ),
            (
                layer("application/vnd.ollama.image.model", None),
                "model.gguf",
            ),
        ];
        for (weights_layer, name) in cases {
            let m = manifest(vec![
                layer("application/vnd.ollama.image.template", None),
                weights_layer,
                layer(MODELPACK_DOC_RAW, Some("LICENSE")),
            ]);
            let found = model_layers(&m).unwrap();
            assert_eq!(found.primary.as_deref(), Some(name));
            assert_eq!(found.files.len(), 1);
        }
    }

    #[test]
    fn says_what_it_found_when_nothing_serves() {
        let m = manifest(vec![layer(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            None,
        )]);
        let err = model_layers(&m).unwrap_err().to_string();
        assert!(
            err.contains("application/vnd.oci.image.layer.v1.tar+gzip"),
            "{err}"
        );
        let m = manifest(vec![layer(MODELPACK_WEIGHT_RAW, Some("model.safetensors"))]);
        let err = model_layers(&m).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn split_shards_and_checkpoints_are_several_files() {
        let m = manifest(vec![
            layer(MODELPACK_WEIGHT_RAW, Some("m-00002-of-00002.gguf")),
            layer(MODELPACK_WEIGHT_RAW, Some("m-00001-of-00002.gguf")),
            layer(MODELPACK_DOC_RAW, Some("README.md")),
        ]);
        let found = model_layers(&m).unwrap();
        assert_eq!(found.format, ModelFormat::Gguf);
        assert_eq!(found.primary.as_deref(), Some("m-00001-of-00002.gguf"));
        assert_eq!(found.files.len(), 2);
        // A shard missing, or two unrelated GGUF files: refused, naming them.
        for names in [
            ["m-00001-of-00003.gguf", "m-00002-of-00003.gguf"],
            ["a.gguf", "b.gguf"],
        ] {
            let m = manifest(
                names
                    .iter()
                    .map(|n| layer(MODELPACK_WEIGHT_RAW, Some(n)))
                    .collect(),
            );
            let err = model_layers(&m).unwrap_err().to_string();
            assert!(err.contains(names[0]) && err.contains("shards"), "{err}");
        }
        let m = manifest(vec![
            layer(MODELPACK_WEIGHT_CONFIG_RAW, Some("config.json")),
            layer(
                MODELPACK_WEIGHT_RAW,
                Some("model-00001-of-00002.safetensors"),
            ),
            layer(
                MODELPACK_WEIGHT_RAW,
                Some("model-00002-of-00002.safetensors"),
            ),
            layer(MODELPACK_WEIGHT_CONFIG_RAW, Some("tokenizer.json")),
            layer(MODELPACK_DOC_RAW, Some("LICENSE")),
        ]);
        let found = model_layers(&m).unwrap();
        assert_eq!(found.format, ModelFormat::Safetensors);
        assert_eq!(found.primary, None);
        assert_eq!(found.files.len(), 5);
    }
}
