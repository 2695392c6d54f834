//! Python values to and from JSON (through the standard `json` module, so dicts keep their order
//! and every JSON-able Python value works), and the sampling keyword arguments.

use kaito_core::api::openai::{SamplingFields, StringOrList};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

/// `json.dumps(obj)` parsed into a [`Value`]; objects that are not JSON-able raise `TypeError`.
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let text: String = obj
        .py()
        .import("json")?
        .call_method1("dumps", (obj,))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| PyTypeError::new_err(e.to_string()))
}

/// A [`Value`] as plain Python objects (`dict`, `list`, `str`, ...).
pub fn from_json(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    let text = value.to_string();
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

fn get<'py, T: FromPyObjectOwned<'py>>(
    kwargs: &Bound<'py, PyDict>,
    key: &str,
    what: &str,
) -> PyResult<Option<T>> {
    match kwargs.get_item(key)? {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => v.extract::<T>().map(Some).map_err(|_| {
            PyTypeError::new_err(format!(
                "`{key}` must be {what}, got {}",
                v.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        }),
    }
}

/// The sampling keyword arguments every generation method takes, as OpenAI request fields
/// (validated later by `kaito_core::api::params::validate`, which names the field at fault).
pub const SAMPLING_KEYS: &[&str] = &[
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "n",
];

/// Reads the sampling keyword arguments; an unknown one is a `TypeError` like Python's own.
pub fn sampling_fields(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<SamplingFields> {
    let mut f = SamplingFields::default();
    let Some(kw) = kwargs else {
        return Ok(f);
    };
    for key in kw.keys() {
        let key: String = key.extract()?;
        if !SAMPLING_KEYS.contains(&key.as_str()) {
            return Err(PyTypeError::new_err(format!(
                "unexpected keyword argument `{key}` (sampling arguments: {})",
                SAMPLING_KEYS.join(", ")
            )));
        }
    }
    f.max_tokens = get(kw, "max_tokens", "an int")?;
    f.temperature = get(kw, "temperature", "a float")?;
    f.top_p = get(kw, "top_p", "a float")?;
    f.top_k = get(kw, "top_k", "an int")?;
    f.min_p = get(kw, "min_p", "a float")?;
    f.seed = get(kw, "seed", "an int")?;
    f.presence_penalty = get(kw, "presence_penalty", "a float")?;
    f.frequency_penalty = get(kw, "frequency_penalty", "a float")?;
    f.n = get(kw, "n", "an int")?;
    if let Some(stop) = kw.get_item("stop")?.filter(|v| !v.is_none()) {
        f.stop = Some(if let Ok(s) = stop.extract::<String>() {
            StringOrList::One(s)
        } else {
            StringOrList::Many(
                stop.extract::<Vec<String>>()
                    .map_err(|_| PyTypeError::new_err("`stop` must be a str or a list of str"))?,
            )
        });
    }
    Ok(f)
}
