//! Just enough URL handling for downloads: resolving relative references and percent-encoding.

/// Resolves `reference` (an `href` or a `Location` header) against the absolute URL `base`
/// (RFC 3986 section 5.2, minus the corner cases HTTP servers never produce).
pub(crate) fn join(base: &str, reference: &str) -> String {
    let reference = reference.trim();
    if has_scheme(reference) {
        return reference.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(net_path) = reference.strip_prefix("//") {
        return format!("{scheme}://{net_path}");
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..authority_end]);
    let base_path = &rest[authority_end..];
    let base_path = &base_path[..base_path.find(['?', '#']).unwrap_or(base_path.len())];
    if reference.is_empty() {
        return format!("{origin}{base_path}");
    }
    if reference.starts_with('#') || reference.starts_with('?') {
        return format!("{origin}{base_path}{reference}");
    }
    let (path, suffix) = match reference.find(['?', '#']) {
        Some(i) => reference.split_at(i),
        None => (reference, ""),
    };
    let merged = if path.starts_with('/') {
        path.to_owned()
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{dir}{path}")
    };
    format!("{origin}{}{suffix}", remove_dot_segments(&merged))
}

/// `scheme://host[:port]` of an absolute URL, lowercased, for same-origin checks.
pub(crate) fn origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::new();
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `/` when `keep_slash`).
pub(crate) fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The last path segment of a URL, without query or fragment.
pub(crate) fn file_name(url: &str) -> &str {
    let path = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    path.rsplit('/').next().unwrap_or(path)
}

fn has_scheme(reference: &str) -> bool {
    match reference.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_references() {
        let base = "https://h.example/simple/pkg/";
        assert_eq!(
            join(base, "https://files.example/a.whl#sha256=ab"),
            "https://files.example/a.whl#sha256=ab"
        );
        assert_eq!(join(base, "//cdn.example/x"), "https://cdn.example/x");
        assert_eq!(join(base, "/abs/x.whl"), "https://h.example/abs/x.whl");
        assert_eq!(
            join(base, "x.whl#sha256=1"),
            "https://h.example/simple/pkg/x.whl#sha256=1"
        );
        assert_eq!(
            join(base, "../../packages/x.whl"),
            "https://h.example/packages/x.whl"
        );
        assert_eq!(join(base, "../../../../x"), "https://h.example/x");
        assert_eq!(join("http://h:8080/a/b?q=1", "c"), "http://h:8080/a/c");
        assert_eq!(join("http://h:8080", "c"), "http://h:8080/c");
        assert_eq!(join("http://h/a/b", "./"), "http://h/a/");
        assert_eq!(join("http://h/a/b", "?x"), "http://h/a/b?x");
    }

    #[test]
    fn origins_names_and_encoding() {
        assert_eq!(origin("HTTPS://User:pw@Hf.co:443/x?y"), "https://hf.co:443");
        assert_ne!(
            origin("https://huggingface.co/a"),
            origin("https://cdn-lfs.hf.co/a")
        );
        assert_eq!(
            file_name("https://h/p/x-1.0.whl?a=b#sha256=00"),
            "x-1.0.whl"
        );
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("dir/a b+.gguf", true), "dir/a%20b%2B.gguf");
    }
}
