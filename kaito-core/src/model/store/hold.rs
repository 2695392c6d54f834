//! Markers of processes serving a blob, so that eviction in any process leaves it alone.
//!
//! A hold is the file `held/HEX/HOST-PID-N`, kept fresh by a heartbeat thread (the download
//! lock's). One not refreshed for [`STALE_AFTER`](super::lock::STALE_AFTER) belongs to a process
//! that died and no longer counts; on the host that wrote it, one whose process is gone counts
//! for nothing at once (a cache shared between hosts relies on the heartbeat alone).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::lock::{is_stale, Heartbeat};
use crate::error::{Error, Result};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Keeps blobs of a [`ModelStore`](super::ModelStore) from eviction while it lives.
pub struct Hold {
    markers: Vec<PathBuf>,
    _heartbeat: Heartbeat,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Hold").field(&self.markers).finish()
    }
}

impl Hold {
    /// Holds the blobs with sha256 `hexes` in the store at `root`.
    pub(super) fn take(root: &Path, hexes: &[&str]) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{}-{n}", host(), std::process::id());
        let mut markers: Vec<PathBuf> = Vec::with_capacity(hexes.len());
        for hex in hexes {
            let dir = root.join("held").join(hex);
            let marker = dir.join(&name);
            if markers.contains(&marker) {
                continue;
            }
            let made = fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
                .and_then(|()| {
                    OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&marker)
                        .map_err(|e| Error::io(format!("cannot create {}", marker.display()), e))
                });
            if let Err(e) = made {
                release(&markers);
                return Err(e);
            }
            markers.push(marker);
        }
        Ok(Self {
            _heartbeat: Heartbeat::start(markers.clone()),
            markers,
        })
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        release(&self.markers);
    }
}

fn release(markers: &[PathBuf]) {
    for marker in markers {
        let _ = fs::remove_file(marker);
        if let Some(dir) = marker.parent() {
            // Succeeds only when no other hold is left.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Whether a live process holds the blob `hex`; removes markers left by dead ones.
pub(super) fn is_held(root: &Path, hex: &str) -> bool {
    let dir = root.join("held").join(hex);
    let Ok(entries) = fs::read_dir(&dir) else {
        return false;
    };
    let mut held = false;
    for entry in entries.flatten() {
        let path = entry.path();
        if is_stale(&path) || is_dead_here(&entry.file_name().to_string_lossy()) {
            tracing::debug!(marker = %path.display(), "removing the hold of a process that died");
            let _ = fs::remove_file(&path);
        } else {
            held = true;
        }
    }
    held
}

/// This host's name, as it may appear in a file name.
fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "host".to_owned()
    } else {
        name
    }
}

/// Whether the marker `HOST-PID-N` was written on this host by a process that no longer runs.
fn is_dead_here(marker: &str) -> bool {
    let mut parts = marker.rsplitn(3, '-');
    let (Some(_n), Some(pid), Some(host_name)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let proc_root = Path::new("/proc");
    host_name == host()
        && proc_root.join("self").exists()
        && pid.parse::<u32>().is_ok()
        && !proc_root.join(pid).exists()
}
