//! `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]`: a model stored as an OCI artifact.
//! Parsing is pure; each part is checked as the OCI distribution spec words it, and an error
//! names the part that is wrong.

use std::fmt;

use crate::error::{Error, Result};

/// A reference to a model artifact in an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciReference {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// `NAMESPACE/NAME` (lowercase path components).
    pub repository: String,
    /// The tag; `latest` when neither a tag nor a digest is given.
    pub tag: Option<String>,
    /// `sha256:HEX`, pinning the manifest.
    pub digest: Option<String>,
}

impl OciReference {
    /// Parses `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |part: &str, why: String| Error::spec("model", format!("`{spec}`: {part} {why}"));
        let rest = spec
            .strip_prefix("oci://")
            .ok_or_else(|| bad("the reference", "must start with oci://".to_owned()))?;
        let (registry, path) = rest.split_once('/').ok_or_else(|| {
            bad(
                "the reference",
                "has no repository after the registry host (oci://HOST/REPOSITORY:TAG)".to_owned(),
            )
        })?;
        check_registry(registry).map_err(|why| bad(&format!("the registry `{registry}`"), why))?;
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => {
                check_digest(d).map_err(|why| bad(&format!("the digest `{d}`"), why))?;
                (p, Some(d.to_owned()))
            }
            None => (path, None),
        };
        // A `:` after the last `/` starts the tag.
        let (repository, tag) = match path.rfind(':') {
            Some(i) if !path[i..].contains('/') => (&path[..i], Some(path[i + 1..].to_owned())),
            _ => (path, None),
        };
        check_repository(repository)
            .map_err(|why| bad(&format!("the repository `{repository}`"), why))?;
        if let Some(tag) = &tag {
            check_tag(tag).map_err(|why| bad(&format!("the tag `{tag}`"), why))?;
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            (tag, _) => tag,
        };
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host without the port.
    pub fn host(&self) -> &str {
        match self.registry.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => &self.registry,
        }
    }

    /// A name to serve it under: the repository's last component and the tag (`smollm2:q4`).
    pub fn default_served_name(&self) -> String {
        let name = self
            .repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository);
        match &self.tag {
            Some(tag) => format!("{name}:{tag}"),
            None => name.to_owned(),
        }
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn check_registry(registry: &str) -> std::result::Result<(), String> {
    let (host, port) = if registry.starts_with('[') {
        // `[IPv6]` or `[IPv6]:PORT`.
        match registry.split_once(']') {
            Some((h, "")) => (&registry[..=h.len()], None),
            Some((h, rest)) => match rest.strip_prefix(':') {
                Some(p) => (&registry[..=h.len()], Some(p)),
                None => return Err("is not a host name".to_owned()),
            },
            None => return Err("is not a host name".to_owned()),
        }
    } else {
        match registry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if host.is_empty() {
        return Err("is empty".to_owned());
    }
    let bracketed_ipv6 = host.starts_with('[') && host.ends_with(']');
    if !bracketed_ipv6
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err("is not a host name".to_owned());
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(format!("has port `{port}`, not a number from 1 to 65535"));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
fn check_repository(repository: &str) -> std::result::Result<(), String> {
    if repository.is_empty() {
        return Err("is empty".to_owned());
    }
    for component in repository.split('/') {
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let bytes = component.as_bytes();
        let ok = !bytes.is_empty()
            && alnum(bytes[0])
            && alnum(bytes[bytes.len() - 1])
            && bytes
                .iter()
                .all(|&b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
            && !component.contains("..")
            && !component.contains("___");
        if !ok {
            return Err(format!(
                "has the path component `{component}`; components are lowercase letters and digits, joined by `.`, `_`, `__` or `-`"
            ));
        }
    }
    Ok(())
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("is not a tag (letters, digits, `_`, `.`, `-`; at most 128; not starting with `.` or `-`)".to_owned())
    }
}

fn check_digest(digest: &str) -> std::result::Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err("is not sha256: and 64 lowercase hex digits".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = OciReference::parse("oci://127.0.0.1:5000/models/smollm2:q4").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.host(), "127.0.0.1");
        assert_eq!(r.repository, "models/smollm2");
        assert_eq!(r.tag.as_deref(), Some("q4"));
        assert_eq!(r.manifest_reference(), "q4");
        assert_eq!(r.default_served_name(), "smollm2:q4");
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/models/smollm2:q4");

        let d = format!("sha256:{}", "a".repeat(64));
        let r = OciReference::parse(&format!("oci://reg.example.com/m@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), d);
        let r = OciReference::parse("oci://localhost/m").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
    }

    #[test]
    fn each_error_names_the_bad_part() {
        for (spec, part) in [
            ("oci://reg", "no repository"),
            ("oci://reg:99999/m", "port `99999`"),
            ("oci://re g/m", "the registry `re g`"),
            ("oci://reg/Models/x", "path component `Models`"),
            ("oci://reg/m:-bad", "the tag `-bad`"),
            ("oci://reg/m@sha256:xyz", "the digest `sha256:xyz`"),
            ("oci://reg//m", "path component ``"),
        ] {
            let err = OciReference::parse(spec).unwrap_err().to_string();
            assert!(err.contains(part), "{spec}: {err}");
        }
    }
}
