//! A cross-process lock file guarding one store key while it is downloaded.
//!
//! The lock is `tmp/KEY.lock`, created with `create_new` (atomic on local and NFSv3+ file systems).
//! Its holder touches it every few seconds; a lock untouched for [`STALE_AFTER`] was left by a
//! process that died and is removed by the next one that wants it.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// How often the holder refreshes the lock's modification time.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A lock not refreshed for this long is considered abandoned.
pub(super) const STALE_AFTER: Duration = Duration::from_secs(60);
/// How often a waiter retries.
const POLL: Duration = Duration::from_millis(200);

/// Held lock; released (file removed) on drop.
pub(crate) struct Lock {
    path: PathBuf,
    _heartbeat: Heartbeat,
}

impl Lock {
    /// Blocks until this process holds the lock at `path`. `what` names the download in logs.
    pub(crate) fn acquire(path: &Path, what: &str) -> Result<Self> {
        let mut told = false;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    // Informational only: who holds it.
                    let _ = writeln!(file, "{}", std::process::id());
                    return Ok(Self::hold(path.to_owned()));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if is_stale(path) {
                        tracing::warn!(lock = %path.display(), "removing abandoned download lock");
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    if !told {
                        tracing::info!(lock = %path.display(), "waiting for another process downloading {what}");
                        told = true;
                    }
                    std::thread::sleep(POLL);
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot create lock {}", path.display()),
                        e,
                    ))
                }
            }
        }
    }

    fn hold(path: PathBuf) -> Self {
        Self {
            _heartbeat: Heartbeat::start(vec![path.clone()]),
            path,
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A thread refreshing files' modification times every [`HEARTBEAT`] until dropped, so that
/// other processes can tell a live holder from a dead one ([`is_stale`]).
pub(super) struct Heartbeat {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    pub(super) fn start(paths: Vec<PathBuf>) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kaito-store-heartbeat".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                    for path in &paths {
                        let _ = File::options()
                            .write(true)
                            .open(path)
                            .and_then(|f| f.set_modified(SystemTime::now()));
                    }
                }
            })
            .ok();
        Self {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether the file at `path` was not refreshed for [`STALE_AFTER`] (its holder died).
pub(super) fn is_stale(path: &Path) -> bool {
    let age = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok());
    age.is_some_and(|age| age > STALE_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.lock");
        let lock = Lock::acquire(&path, "f").unwrap();
        assert!(path.exists());
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let _second = Lock::acquire(&p, "f").unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(600)).is_err(),
            "second holder got in"
        );
        drop(lock);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("second holder never got the lock");
        waiter.join().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn breaks_abandoned_locks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.lock");
        let file = File::create(&path).unwrap();
        file.set_modified(SystemTime::now() - STALE_AFTER * 2)
            .unwrap();
        drop(file);
        let lock = Lock::acquire(&path, "f").unwrap();
        drop(lock);
        assert!(!path.exists());
    }
}
