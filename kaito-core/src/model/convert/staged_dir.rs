//! An output directory written beside its final place (`NAME.partial`) and moved there by a rename
//! once complete, so a reader never sees half a checkpoint.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A directory under construction; dropped without [`StagedDir::commit`], it is removed.
#[derive(Debug)]
pub struct StagedDir {
    target: PathBuf,
    partial: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Starts writing `target`, which must be absent or an empty directory unless `replace` is set
    /// (then an existing directory is replaced whole at commit). A stale `NAME.partial` is cleared.
    pub fn create(target: &Path, replace: bool) -> Result<Self> {
        let name = target.file_name().ok_or_else(|| {
            Error::io(
                format!("output path {}", target.display()),
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "needs a final directory name (e.g. ./smollm2-hf)",
                ),
            )
        })?;
        if target.exists() {
            let exists = |what: &str| {
                Error::io(
                    format!("output directory {}", target.display()),
                    io::Error::new(io::ErrorKind::AlreadyExists, what.to_owned()),
                )
            };
            if !target.is_dir() {
                return Err(exists("exists and is not a directory"));
            }
            let empty = fs::read_dir(target)
                .map_err(|e| Error::io(format!("reading {}", target.display()), e))?
                .next()
                .is_none();
            if !empty && !replace {
                return Err(exists("exists and is not empty (use force to replace it)"));
            }
        }
        let partial = target.with_file_name(format!("{}.partial", name.to_string_lossy()));
        if partial.exists() {
            fs::remove_dir_all(&partial)
                .map_err(|e| Error::io(format!("removing stale {}", partial.display()), e))?;
        }
        fs::create_dir_all(&partial)
            .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
        Ok(Self {
            target: target.to_owned(),
            partial,
            committed: false,
        })
    }

    /// Where to write the files now.
    pub fn path(&self) -> &Path {
        &self.partial
    }

    /// Moves the finished directory to its place, replacing what `create` allowed it to replace.
    pub fn commit(mut self) -> Result<PathBuf> {
        let rename_error = |from: &Path, to: &Path, e| {
            Error::io(format!("moving {} to {}", from.display(), to.display()), e)
        };
        let mut replaced = None;
        if self.target.exists() {
            let aside = self.partial.with_extension("replaced");
            if aside.exists() {
                fs::remove_dir_all(&aside)
                    .map_err(|e| Error::io(format!("removing stale {}", aside.display()), e))?;
            }
            fs::rename(&self.target, &aside).map_err(|e| rename_error(&self.target, &aside, e))?;
            replaced = Some(aside);
        }
        fs::rename(&self.partial, &self.target)
            .map_err(|e| rename_error(&self.partial, &self.target, e))?;
        self.committed = true;
        if let Some(aside) = replaced {
            fs::remove_dir_all(&aside)
                .map_err(|e| Error::io(format!("removing the replaced {}", aside.display()), e))?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_by_rename_and_cleans_up_when_abandoned() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out");

        let staged = StagedDir::create(&target, false).unwrap();
        assert_eq!(staged.path(), root.path().join("out.partial"));
        fs::write(staged.path().join("a"), "1").unwrap();
        drop(staged);
        assert!(!root.path().join("out.partial").exists());
        assert!(!target.exists());

        let staged = StagedDir::create(&target, false).unwrap();
        fs::write(staged.path().join("a"), "1").unwrap();
        staged.commit().unwrap();
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "1");
    }

    #[test]
    fn refuses_a_non_empty_directory_unless_replacing() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out");
        fs::create_dir(&target).unwrap();
        StagedDir::create(&target, false).unwrap(); // empty: fine
        fs::write(target.join("old"), "x").unwrap();
        let err = StagedDir::create(&target, false).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");

        let staged = StagedDir::create(&target, true).unwrap();
        fs::write(staged.path().join("new"), "y").unwrap();
        staged.commit().unwrap();
        assert!(!target.join("old").exists());
        assert!(target.join("new").exists());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);

        let file = root.path().join("file");
        fs::write(&file, "z").unwrap();
        let err = StagedDir::create(&file, true).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
