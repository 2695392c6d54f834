//! What the renderer and the validator read from the cluster (or, for `kaito render`, from the
//! same file) besides the object itself.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Facts the renderer reads from the cluster (or from the same file, for `kaito render`).
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    /// `inference_config.yaml` of the ConfigMap named by `inference.config`, when known.
    pub inference_config: Option<String>,
}

/// Reads `max-model-len` (and the `vllm:` section) of KAITO's `inference_config.yaml`.
pub(crate) fn vllm_config(text: Option<&str>) -> Result<BTreeMap<String, serde_yaml::Value>> {
    let Some(text) = text else {
        return Ok(BTreeMap::new());
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        Error::invalid(
            "inference.config",
            format!("inference_config.yaml is not valid YAML: {e}"),
        )
    })?;
    let mut out = BTreeMap::new();
    if let Some(map) = doc.get("vllm").and_then(|v| v.as_mapping()) {
        for (k, v) in map {
            if let Some(k) = k.as_str() {
                out.insert(k.to_owned(), v.clone());
            }
        }
    }
    Ok(out)
}

/// `max-model-len` of the `inference_config.yaml` in `facts`, if any.
pub fn vllm_context(facts: &ClusterFacts) -> Result<Option<u64>> {
    Ok(vllm_config(facts.inference_config.as_deref())?
        .get("max-model-len")
        .and_then(|v| v.as_u64()))
}
