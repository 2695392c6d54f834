//! Field rules of the Workspace that need no cluster state. Each error names the field path.

use super::types::{DataSource, EngineSpec, InferenceSpec, PresetSpec, ResourceSpec, TuningSpec};
use crate::error::{Error, Result};

/// A DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, starting and ending alphanumeric, ≤ 253.
pub fn dns1123_subdomain(path: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::spec(
            path,
            format!("`{name}` is not a valid name: use lowercase letters, digits, '-' and '.', start and end with a letter or digit, at most 253 characters"),
        ))
    }
}

pub(super) fn resource(path: &str, r: &ResourceSpec) -> Result<()> {
    if let Some(count) = r.count {
        if count < 1 {
            return Err(Error::spec(format!("{path}.count"), "must be at least 1"));
        }
    }
    if let Some(selector) = &r.label_selector {
        for (i, expr) in selector.match_expressions.iter().enumerate() {
            let p = format!("{path}.labelSelector.matchExpressions[{i}]");
            match expr.operator.as_str() {
                "In" | "NotIn" if expr.values.is_empty() => {
                    return Err(Error::spec(
                        format!("{p}.values"),
                        format!("operator `{}` needs at least one value", expr.operator),
                    ))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(Error::spec(
                        format!("{p}.operator"),
                        format!("`{other}` is not one of In, NotIn, Exists, DoesNotExist"),
                    ))
                }
            }
        }
    }
    if let Some(partition) = &r.partition {
        if !matches!(partition.mode.as_str(), "mig" | "accelerator") {
            return Err(Error::spec(
                format!("{path}.partition.mode"),
                format!("`{}` is not one of mig, accelerator", partition.mode),
            ));
        }
    }
    Ok(())
}

pub(super) fn inference(path: &str, i: &InferenceSpec) -> Result<()> {
    let chosen = [i.preset.is_some(), i.template.is_some(), i.model.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen != 1 {
        return Err(Error::spec(
            path,
            "exactly one of `preset`, `template` or `model` must be set",
        ));
    }
    if let Some(preset) = &i.preset {
        self::preset(&format!("{path}.preset"), preset)?;
    }
    if let Some(model) = &i.model {
        if model.source.trim().is_empty() {
            return Err(Error::spec(
                format!("{path}.model.source"),
                "must not be empty",
            ));
        }
        if let Some(sha) = &model.sha256 {
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::spec(
                    format!("{path}.model.sha256"),
                    "must be 64 hexadecimal characters",
                ));
            }
        }
        if let Some(gib) = model.cache_max_gib {
            if !(gib.is_finite() && gib > 0.0) {
                return Err(Error::spec(
                    format!("{path}.model.cacheMaxGiB"),
                    format!("must be a positive number of GiB, got {gib}"),
                ));
            }
        }
        let names = model
            .preset
            .iter()
            .map(|n| ("preset".to_owned(), n))
            .chain(
                model
                    .image_pull_secrets
                    .iter()
                    .enumerate()
                    .map(|(k, n)| (format!("imagePullSecrets[{k}]"), n)),
            )
            .chain(
                model
                    .cache_volume_claim
                    .iter()
                    .map(|n| ("cacheVolumeClaim".to_owned(), n)),
            );
        for (field, name) in names {
            dns1123_subdomain(&format!("{path}.model.{field}"), name)?;
        }
    }
    for (n, adapter) in i.adapters.iter().enumerate() {
        let p = format!("{path}.adapters[{n}]");
        if let Some(source) = &adapter.source {
            data_source(&format!("{p}.source"), source)?;
        }
        if let Some(strength) = &adapter.strength {
            match strength.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => {}
                _ => {
                    return Err(Error::spec(
                        format!("{p}.strength"),
                        format!("`{strength}` must be a decimal between 0 and 1"),
                    ))
                }
            }
        }
    }
    if let Some(engine) = &i.engine {
        self::engine(&format!("{path}.engine"), engine)?;
    }
    Ok(())
}

fn preset(path: &str, p: &PresetSpec) -> Result<()> {
    if p.name.trim().is_empty() {
        return Err(Error::spec(format!("{path}.name"), "must not be empty"));
    }
    if let Some(mode) = &p.access_mode {
        if !matches!(mode.as_str(), "public" | "private") {
            return Err(Error::spec(
                format!("{path}.accessMode"),
                format!("`{mode}` is not one of public, private"),
            ));
        }
    }
    Ok(())
}

fn data_source(path: &str, s: &DataSource) -> Result<()> {
    for (i, url) in s.urls.iter().enumerate() {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::spec(
                format!("{path}.urls[{i}]"),
                format!("`{url}` is not an http(s) URL"),
            ));
        }
    }
    Ok(())
}

pub(super) fn tuning(path: &str, t: &TuningSpec) -> Result<()> {
    if let Some(preset) = &t.preset {
        self::preset(&format!("{path}.preset"), preset)?;
    }
    if let Some(method) = &t.method {
        if !matches!(method.as_str(), "lora" | "qlora") {
            return Err(Error::spec(
                format!("{path}.method"),
                format!("`{method}` is not one of lora, qlora"),
            ));
        }
    }
    if let Some(input) = &t.input {
        data_source(&format!("{path}.input"), input)?;
    }
    Ok(())
}

fn engine(path: &str, e: &EngineSpec) -> Result<()> {
    if let Some(backend) = &e.backend {
        if !crate::engine::BackendKind::NAMES.contains(&backend.as_str()) {
            return Err(Error::spec(
                format!("{path}.backend"),
                format!(
                    "`{backend}` is not one of {}",
                    crate::engine::BackendKind::NAMES.join(", ")
                ),
            ));
        }
    }
    let choices: [(&str, &Option<String>, &[&str]); 3] = [
        ("dtype", &e.dtype, crate::engine::DTYPE_NAMES),
        (
            "quantization",
            &e.quantization,
            crate::engine::QUANTIZATION_NAMES,
        ),
        ("device", &e.device, &[]),
    ];
    for (field, value, allowed) in choices {
        let Some(value) = value else { continue };
        let ok = if field == "device" {
            crate::engine::valid_device(value)
        } else {
            allowed.contains(&value.as_str())
        };
        if !ok {
            let expected = if field == "device" {
                "cpu, cuda or cuda:N".to_owned()
            } else {
                allowed.join(", ")
            };
            return Err(Error::spec(
                format!("{path}.{field}"),
                format!("`{value}` is not one of {expected}"),
            ));
        }
    }
    let positive = [
        ("threads", e.threads),
        ("ctxSize", e.ctx_size),
        ("parallel", e.parallel),
        ("batchSize", e.batch_size),
    ];
    for (field, value) in positive {
        if value == Some(0) {
            return Err(Error::spec(format!("{path}.{field}"), "must be at least 1"));
        }
    }
    if let Some(mib) = e.prefix_cache_mib {
        let max = crate::engine::MAX_PREFIX_CACHE_MIB;
        if mib > max {
            return Err(Error::spec(
                format!("{path}.prefixCacheMib"),
                format!("{mib} MiB is more than {max} MiB (1 TiB); the field is in MiB (0 turns the cache off)"),
            ));
        }
    }
    Ok(())
}
