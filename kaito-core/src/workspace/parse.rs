//! Strict parsing of Workspace documents: errors name the field path.

use serde::de::DeserializeOwned;

use super::types::{Workspace, WORKSPACE_API_VERSION, WORKSPACE_KIND};
use crate::error::{Error, Result};

/// One YAML document of a multi-document file, with its `kind` and `apiVersion` read ahead.
#[derive(Debug, Clone)]
pub struct Document {
    /// Zero-based position in the file.
    pub index: usize,
    /// `kind`, if present.
    pub kind: Option<String>,
    /// `apiVersion`, if present.
    pub api_version: Option<String>,
    /// The document.
    pub value: serde_yaml::Value,
}

/// Splits YAML text into documents, skipping empty ones. A YAML syntax error names its line.
pub fn split_documents(text: &str) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(de)
            .map_err(|e| yaml_error(index, e))?;
        if value.is_null() {
            continue;
        }
        if !value.is_mapping() {
            return Err(Error::spec(
                format!("document[{index}]"),
                "expected a mapping with `apiVersion` and `kind`",
            ));
        }
        let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        docs.push(Document {
            index,
            kind: field("kind"),
            api_version: field("apiVersion"),
            value,
        });
    }
    Ok(docs)
}

fn yaml_error(index: usize, e: serde_yaml::Error) -> Error {
    let location = e
        .location()
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
        .unwrap_or_default();
    Error::spec(
        format!("document[{index}]"),
        format!("malformed YAML{location}: {e}"),
    )
}

/// Deserializes `value` into `T`, turning serde's message into one that names the field path.
pub fn from_value_strict<T: DeserializeOwned>(value: serde_yaml::Value) -> Result<T> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        Error::spec(
            if path.is_empty() {
                ".".to_owned()
            } else {
                path
            },
            message,
        )
    })
}

impl Workspace {
    /// Parses exactly one Workspace from YAML (or JSON) text and validates it.
    ///
    /// Other documents in the file (ConfigMaps, InferenceSets) are ignored; zero or several
    /// Workspaces is an error.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let mut all = Self::all_from_yaml(text)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            0 => Err(Error::spec(".", "no document of kind `Workspace` found")),
            n => Err(Error::spec(
                ".",
                format!("{n} Workspaces found; expected exactly one"),
            )),
        }
    }

    /// Parses and validates every Workspace document in a multi-document YAML text.
    pub fn all_from_yaml(text: &str) -> Result<Vec<Self>> {
        split_documents(text)?
            .into_iter()
            .filter(|d| d.kind.as_deref() == Some(WORKSPACE_KIND))
            .map(|d| {
                let ws: Workspace = from_value_strict(d.value).map_err(|e| match e {
                    Error::InvalidSpec { path, message } => Error::InvalidSpec {
                        path: format!("{}{}", doc_prefix(d.index), path),
                        message,
                    },
                    other => other,
                })?;
                ws.validate()?;
                Ok(ws)
            })
            .collect()
    }

    /// Reads [`Workspace::from_yaml`] from a file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        Self::from_yaml(&text)
    }

    /// Serializes to YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).map_err(|e| Error::spec(".", e.to_string()))
    }

    /// The Workspace's name, or `"workspace"` when metadata has none.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("workspace")
    }

    /// Checks the rules that need no cluster state: apiVersion and kind, a valid name,
    /// exactly one of `inference.preset`, `inference.template` and `inference.model`, enum values.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != WORKSPACE_API_VERSION {
            return Err(Error::spec(
                "apiVersion",
                format!(
                    "expected `{WORKSPACE_API_VERSION}`, got `{}`",
                    self.api_version
                ),
            ));
        }
        if self.kind != WORKSPACE_KIND {
            return Err(Error::spec(
                "kind",
                format!("expected `Workspace`, got `{}`", self.kind),
            ));
        }
        if let Some(name) = &self.metadata.name {
            super::validate::dns1123_subdomain("metadata.name", name)?;
        }
        if self.inference.is_none() && self.tuning.is_none() {
            return Err(Error::spec(
                ".",
                "one of `inference` or `tuning` is required",
            ));
        }
        if self.inference.is_some() && self.tuning.is_some() {
            return Err(Error::spec(
                ".",
                "`inference` and `tuning` are mutually exclusive",
            ));
        }
        if let Some(resource) = &self.resource {
            super::validate::resource("resource", resource)?;
        }
        if let Some(inference) = &self.inference {
            super::validate::inference("inference", inference)?;
        }
        if let Some(tuning) = &self.tuning {
            super::validate::tuning("tuning", tuning)?;
        }
        Ok(())
    }
}

fn doc_prefix(index: usize) -> String {
    if index == 0 {
        String::new()
    } else {
        format!("document[{index}].")
    }
}
