//! `kaito._kaito.Workspace`: a KAITO Workspace, parsed strictly, rendered and estimated without a
//! cluster (the same code as `kaito render` and `kaito estimate`).

use kaito_core::Workspace;
use kaito_k8s::render::{input, RenderOptions};
use pyo3::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::convert::{from_json, to_json};
use crate::error::{spec_problems, IntoPyResult};

/// A parsed, validated Workspace plus the text it came from (which may also hold the ConfigMaps
/// it references; rendering uses them).
#[pyclass(frozen, module = "kaito._kaito", name = "Workspace")]
pub struct PyWorkspace {
    pub(crate) workspace: Workspace,
    source: String,
}

impl PyWorkspace {
    fn parse(py: Python<'_>, text: String) -> PyResult<Self> {
        let workspace = py.detach(|| Workspace::from_yaml(&text)).py(py)?;
        Ok(PyWorkspace {
            workspace,
            source: text,
        })
    }
}

#[pymethods]
impl PyWorkspace {
    /// Parses exactly one Workspace from YAML (other documents, such as ConfigMaps, are kept
    /// for rendering). Raises `InvalidSpecError` naming the field.
    #[staticmethod]
    fn from_yaml(py: Python<'_>, text: String) -> PyResult<Self> {
        Self::parse(py, text)
    }

    /// Reads [`PyWorkspace::from_yaml`] from a file.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            crate::error::to_py(
                py,
                kaito_core::Error::io(format!("cannot read {}", path.display()), e),
            )
        })?;
        Self::parse(py, text)
    }

    /// Builds a Workspace from a dict shaped like the YAML.
    #[staticmethod]
    fn from_dict(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let value = to_json(data)?;
        Self::parse(py, value.to_string())
    }

    /// The Workspace's name.
    #[getter]
    fn name(&self) -> String {
        self.workspace.name().to_owned()
    }

    /// Checks every rule that needs no cluster: the local schema and KAITO's admission rules
    /// (the controller's webhook checks). Raises `InvalidSpecError` listing every problem.
    fn validate(&self, py: Python<'_>) -> PyResult<()> {
        self.workspace.validate().py(py)?;
        py.detach(|| input::parse(&self.source).map(|_| ()))
            .map_err(|p| spec_problems(py, p))
    }

    /// The Kubernetes objects the controller would apply, as dicts.
    fn render(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let yaml = py
            .detach(|| input::render_text(&self.source, &RenderOptions::default()))
            .map_err(|p| spec_problems(py, p))?;
        let mut objects = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&yaml) {
            let value = Value::deserialize(document).map_err(|e| {
                crate::error::to_py(py, kaito_core::Error::spec(".", e.to_string()))
            })?;
            if !value.is_null() {
                objects.push(from_json(py, &value)?);
            }
        }
        Ok(objects)
    }

    /// The estimator's sizing (GPU nodes or CPU memory) with the arithmetic behind it.
    fn estimate(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| input::estimate_text(&self.source))
            .map_err(|p| spec_problems(py, p))
    }

    /// The Workspace as YAML.
    fn to_yaml(&self, py: Python<'_>) -> PyResult<String> {
        self.workspace.to_yaml().py(py)
    }

    /// The Workspace as a dict.
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = serde_json::to_value(&self.workspace)
            .map_err(|e| crate::error::to_py(py, kaito_core::Error::spec(".", e.to_string())))?;
        from_json(py, &value)
    }

    fn __repr__(&self) -> String {
        format!("Workspace(name={:?})", self.workspace.name())
    }
}
