//! The file a backup is written to: created beside its final path, readable and writable by
//! its owner only, and linked into place once complete.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use crate::BackupError;

/// A new, empty file (mode 0600) beside the backup's final path, removed when dropped.
#[derive(Debug)]
pub(crate) struct Partial {
    path: PathBuf,
}

impl Partial {
    /// Creates `.NAME.partial-N` in the directory of `target` (N the first number free).
    pub(crate) fn create(target: &Path) -> io::Result<Self> {
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?
            .to_string_lossy()
            .into_owned();
        let dir = target.parent().unwrap_or_else(|| Path::new(""));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let pid = std::process::id();
        for n in 0..100 {
            let path = dir.join(format!(".{name}.partial-{pid}-{n}"));
            match options.open(&path) {
                Ok(_) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free name for the partial backup file",
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the complete copy at `target`: a hard link, which fails rather than replace a
    /// file that appeared there meanwhile; a rename where links are not supported.
    pub(crate) fn finish(self, target: &Path) -> Result<(), BackupError> {
        std::fs::File::open(&self.path)
            .and_then(|file| file.sync_all())
            .map_err(|e| BackupError::Failed(format!("syncing the copy: {e}")))?;
        match std::fs::hard_link(&self.path, target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(BackupError::Exists(target.to_owned()))
            }
            Err(_) if !target.exists() => std::fs::rename(&self.path, target)
                .map_err(|e| BackupError::Failed(format!("{}: {e}", target.display()))),
            Err(e) => Err(BackupError::Failed(format!("{}: {e}", target.display()))),
        }
        // Dropping `self` removes the partial name (after a rename there is none left).
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
