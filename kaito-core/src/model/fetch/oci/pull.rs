//! An OCI artifact as a [`Source`]: the manifest is read from the registry, the layers that make
//! the model (one GGUF file, the shards of a split one, or a checkpoint directory) streamed into
//! the store while they are hashed (several at once; each resumed with `Range`), checked against
//! their digests and committed under the key `oci/REGISTRY/REPOSITORY:TAG` (or `@DIGEST`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::credentials::Credentials;
use super::media::{self, Descriptor};
use super::registry::Registry;
use crate::error::{Error, Result};
use crate::model::fetch::http::{self, Download, Failure, Get};
use crate::model::fetch::ranged;
use crate::model::store::{
    listing_hex, IncomingFile, Ingest, ModelFile, ModelFormat, ModelStore, Progress, Source,
    StoredModel,
};
use crate::model::OciReference;

/// A model artifact in an OCI registry.
#[derive(Debug, Clone)]
pub struct OciArtifact {
    reference: OciReference,
    insecure: bool,
}

impl OciArtifact {
    /// The artifact `reference` names; `insecure` speaks plain HTTP to its registry.
    pub fn new(reference: OciReference, insecure: bool) -> Self {
        Self {
            reference,
            insecure,
        }
    }

    /// The artifact, over plain HTTP when its registry is on this machine (`localhost`,
    /// `127.0.0.1`, `::1`) or listed in `insecure_registries` (`HOST[:PORT]` or `HOST`).
    pub fn with_insecure_list(reference: OciReference, insecure_registries: &[String]) -> Self {
        let insecure = is_loopback(reference.host())
            || insecure_registries
                .iter()
                .any(|r| r == &reference.registry || r == reference.host());
        Self::new(reference, insecure)
    }

    /// The reference.
    pub fn reference(&self) -> &OciReference {
        &self.reference
    }

    /// Whether its registry is spoken to over plain HTTP.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }
}

impl Source for OciArtifact {
    fn key(&self) -> String {
        let r = &self.reference;
        match (&r.tag, &r.digest) {
            (_, Some(digest)) => format!("oci/{}/{}@{digest}", r.registry, r.repository),
            (Some(tag), None) => format!("oci/{}/{}:{tag}", r.registry, r.repository),
            (None, None) => format!("oci/{}/{}", r.registry, r.repository),
        }
    }

    fn resolve(&self, store: &ModelStore, progress: &dyn Progress) -> Result<StoredModel> {
        let key = self.key();
        // A digest never moves; a tag may, so a stored tag is checked against the registry's
        // manifest unless KAITO_OFFLINE is set (or the registry cannot answer).
        let cached = match store.lookup(&key, None)? {
            Some(found) if self.reference.digest.is_some() || offline() => {
                tracing::debug!(path = %found.primary.display(), "using the stored artifact");
                return Ok(found);
            }
            other => other,
        };
        let credentials = Credentials::find(&self.reference.registry)?;
        let registry = Registry::new(&self.reference, self.insecure, credentials);
        let (manifest, fetched) = match registry.manifest(self.reference.manifest_reference()) {
            Ok(found) => found,
            Err(e) => match cached {
                Some(found) => {
                    tracing::warn!(artifact = %self.reference, error = %e, "cannot ask the registry whether the tag moved; using the stored copy");
                    return Ok(found);
                }
                None => return Err(e),
            },
        };
        let layers = media::model_layers(&manifest)?;
        let files = layers
            .files
            .iter()
            .map(|(layer, path)| {
                Ok(ModelFile {
                    path: path.clone(),
                    sha256: layer_hex(&registry, layer)?,
                    size: layer.size,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let digest_now = match files.as_slice() {
            [one] => format!("sha256:{}", one.sha256),
            several => format!("sha256:{}", listing_hex(several)),
        };
        if let Some(found) = cached {
            if found.digest.as_deref() == Some(digest_now.as_str()) {
                tracing::debug!(path = %found.primary.display(), "the tag still names the stored artifact");
                return Ok(found);
            }
            tracing::info!(artifact = %self.reference, was = found.digest.as_deref().unwrap_or("?"), now = %digest_now, "the tag moved; pulling what it names now");
        }
        tracing::info!(artifact = %self.reference, manifest = %fetched.digest, files = files.len(), size = layers.size(), "pulling");
        let ingest = store.ingest(&key, &self.reference.to_string())?;
        if let Some(found) = ingest.lookup(None)? {
            if found.digest.as_deref() == Some(digest_now.as_str()) {
                return Ok(found);
            }
        }
        match (files.as_slice(), layers.primary.as_deref()) {
            ([file], Some(primary)) => self.pull_one(
                &registry,
                ingest,
                &layers.files[0].0,
                file,
                primary,
                progress,
            ),
            _ => {
                let local = is_loopback(self.reference.host());
                let incoming = pull_layers(&registry, &ingest, &layers, &files, progress, local)?;
                ingest.commit_files(incoming, layers.format, layers.primary.as_deref())
            }
        }
    }
}

impl OciArtifact {
    /// A model of one file: linked when the store has its blob, else downloaded into the
    /// key's part file.
    fn pull_one(
        &self,
        registry: &Registry,
        ingest: Ingest<'_>,
        layer: &Descriptor,
        file: &ModelFile,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<StoredModel> {
        // The same layer under another tag or repository: link it, no download.
        let ingest = match ingest.link_stored(name, &file.sha256, ModelFormat::Gguf)? {
            Ok(found) => return Ok(found),
            Err(ingest) => ingest,
        };
        let part = ingest.part();
        let streams = range_streams(layer.size, 1, is_loopback(self.reference.host()));
        let sha = download_layer(registry, layer, name, &part, progress, streams)?;
        // The digest matched, so these are the layer's bytes, whatever size the manifest claims.
        ingest.commit(name, &sha, ModelFormat::Gguf)
    }
}

/// How many layers of one artifact download at once.
const PARALLEL_LAYERS: usize = 4;

/// The most connections one pull opens at once (layers × ranges): `$KAITO_PULL_STREAMS`,
/// default 4.
fn pull_streams() -> usize {
    env_number("KAITO_PULL_STREAMS").unwrap_or(4).clamp(1, 16) as usize
}

/// How many ranges a layer of `size` bytes is fetched in while `layers` layers download at once:
/// the streams left to each layer, for a layer of at least `$KAITO_PULL_RANGE_MIN_MIB` MiB
/// (default 512, and none from a registry on this machine, `local`, where one stream that hashes
/// as it writes is faster than ranges hashed afterwards: 402 against 323 MB/s for a 1 GiB layer,
/// docs/performance.md); else one.
fn range_streams(size: u64, layers: usize, local: bool) -> usize {
    let min = match env_number("KAITO_PULL_RANGE_MIN_MIB") {
        Some(mib) => mib << 20,
        None if local => return 1,
        None => 512 << 20,
    };
    let per_layer = pull_streams() / layers.max(1);
    if size >= min.max(1) && per_layer > 1 {
        per_layer
    } else {
        1
    }
}

/// Whether `host` is this machine.
fn is_loopback(host: &str) -> bool {
    matches!(
        host.trim_start_matches('[').trim_end_matches(']'),
        "localhost" | "127.0.0.1" | "::1"
    )
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// The layers of a model of several files: those the store lacks are downloaded, up to
/// [`PARALLEL_LAYERS`] at once, each into its own part file (resumed after an interruption),
/// while one progress bar counts the bytes of all of them.
fn pull_layers(
    registry: &Registry,
    ingest: &Ingest<'_>,
    layers: &media::ModelLayers,
    files: &[ModelFile],
    progress: &dyn Progress,
    local: bool,
) -> Result<Vec<IncomingFile>> {
    let store = ingest.store();
    let mut incoming: Vec<Option<IncomingFile>> = vec![None; files.len()];
    let mut wanted = Vec::new();
    for (i, file) in files.iter().enumerate() {
        if store.has_blob(&file.sha256, file.size) {
            incoming[i] = Some(IncomingFile {
                from: store.blob_path(&file.sha256),
                file: file.clone(),
            });
        } else if !wanted
            .iter()
            .any(|&j: &usize| files[j].sha256 == file.sha256)
        {
            wanted.push(i);
        }
    }
    let label = format!("{} files", files.len());
    let total: u64 = wanted.iter().map(|&i| files[i].size).sum();
    let combined = Combined {
        inner: progress,
        label: &label,
        total,
        done: Mutex::new(BTreeMap::new()),
    };
    let at_once = PARALLEL_LAYERS.min(wanted.len()).min(pull_streams());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Result<String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..at_once {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = wanted.get(n) else { break };
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let (layer, path) = &layers.files[i];
                let part = ingest.part_for(&files[i].sha256);
                let streams = range_streams(layer.size, at_once, local);
                let result = download_layer(registry, layer, path, &part, &combined, streams);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut first_error = None;
    for (i, result) in results {
        match result {
            Ok(_) => {
                incoming[i] = Some(IncomingFile {
                    from: ingest.part_for(&files[i].sha256),
                    file: files[i].clone(),
                })
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    progress.finished(&label, first_error.is_none());
    if let Some(e) = first_error {
        return Err(e);
    }
    // A file listed twice (the same bytes under two names) was downloaded once.
    for i in 0..files.len() {
        if incoming[i].is_none() {
            let from = incoming
                .iter()
                .flatten()
                .find(|f| f.file.sha256 == files[i].sha256)
                .map(|f| f.from.clone())
                .ok_or_else(|| {
                    Error::Engine(format!("layer {} was not pulled", files[i].sha256))
                })?;
            incoming[i] = Some(IncomingFile {
                from,
                file: files[i].clone(),
            });
        }
    }
    Ok(incoming.into_iter().flatten().collect())
}

/// Streams `layer` into `part` (resuming what it holds) while hashing it — or, with `streams`
/// above one, as that many byte ranges at once, hashed at the end (a registry that does not
/// answer ranges gets the one stream); a digest mismatch deletes `part` and the error names the
/// layer and its file.
fn download_layer(
    registry: &Registry,
    layer: &Descriptor,
    name: &str,
    part: &std::path::Path,
    progress: &dyn Progress,
    streams: usize,
) -> Result<String> {
    let hex = layer
        .digest
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    let url = registry.blob_url(&layer.digest);
    let authorization = registry.authorization();
    let download = Download {
        get: Get {
            url: &url,
            authorization: authorization.as_deref(),
            ..Get::default()
        },
        expected_sha256: Some(&hex),
        progress,
        label: name,
    };
    let agent = http::agent();
    let result = if streams > 1 {
        tracing::info!(layer = %layer.digest, file = name, size = layer.size, ranges = streams, "pulling a layer in ranges");
        match ranged::download(&agent, &download, layer.size, streams, part) {
            Err(Failure::Restart { url, message }) => {
                tracing::warn!(%url, "{message}; pulling the layer as one stream");
                http::download(&agent, &download, part)
            }
            other => other,
        }
    } else {
        http::download(&agent, &download, part)
    };
    result.map_err(|f| match Error::from(f) {
        Error::Download { url, message } => Error::Download {
            url,
            message: format!("layer {} ({name}): {message}", layer.digest),
        },
        other => other,
    })
}

/// The lowercase hex of a layer's sha256 digest, or an error naming the layer.
fn layer_hex(registry: &Registry, layer: &Descriptor) -> Result<String> {
    layer
        .digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| Error::Download {
            url: registry.blob_url(&layer.digest),
            message: format!("the layer has digest `{}`, not a sha256", layer.digest),
        })
}

/// The progress of several downloads as one bar.
struct Combined<'a> {
    inner: &'a dyn Progress,
    label: &'a str,
    total: u64,
    done: Mutex<BTreeMap<String, u64>>,
}

impl Progress for Combined<'_> {
    fn transferred(&self, label: &str, done: u64, _total: Option<u64>) {
        let sum = {
            let mut map = self.done.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(label.to_owned(), done);
            map.values().sum()
        };
        self.inner.transferred(self.label, sum, Some(self.total));
    }

    fn finished(&self, _label: &str, _completed: bool) {}
}

/// `KAITO_OFFLINE` set to anything but `0`/`false`/empty: use stored tags without asking the
/// registry whether they moved.
fn offline() -> bool {
    std::env::var("KAITO_OFFLINE")
        .map(|v| !matches!(v.trim(), "" | "0" | "false"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_layers_from_other_machines_come_in_ranges() {
        if std::env::var_os("KAITO_PULL_RANGE_MIN_MIB").is_some()
            || std::env::var_os("KAITO_PULL_STREAMS").is_some()
        {
            return; // the defaults are what is tested
        }
        let gib = 1 << 30;
        assert_eq!(range_streams(gib, 1, false), 4);
        assert_eq!(range_streams(gib, 2, false), 2);
        assert_eq!(range_streams(gib, 4, false), 1);
        assert_eq!(range_streams(100 << 20, 1, false), 1);
        assert_eq!(range_streams(gib, 1, true), 1);
        assert!(is_loopback("[::1]") && is_loopback("localhost") && !is_loopback("ghcr.io"));
    }
}
