//! SQLite: the lock that makes one process the database's only dispatcher.
//!
//! On SQLite the dispatcher of the process holding this lock takes due deliveries by
//! reading them, and keeps what it is sending in memory, instead of writing a lease on
//! each (two writes per delivery in SQLite's one writer become one: see
//! `UserService::dispatch_turn`). That is only right while no other process sends from
//! the same file, which this lock guarantees: an exclusive `flock` on a file beside the
//! database, `{database}-outbox.lock`, held as long as the dispatcher runs. The operating
//! system releases it when the process ends, however it ends (`kill -9` included), so a
//! restarted or standing-by process takes over at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct OutboxLock {
    _file: File,
}

impl OutboxLock {
    /// The lock file of the SQLite database at `database`.
    #[must_use]
    pub fn path_for(database: &str) -> PathBuf {
        PathBuf::from(format!("{database}-outbox.lock"))
    }

    /// Takes the lock at `path` (creating the file when missing); `Ok(None)` while another
    /// process (or another holder in this one) has it.
    ///
    /// # Errors
    /// When the file cannot be opened or locked for another reason.
    pub fn try_take(path: &Path) -> io::Result<Option<Self>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_the_next_takes_over_once_it_is_gone() {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-outbox-lock-{}-{}",
            std::process::id(),
            line!()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = OutboxLock::path_for(dir.join("gatehouse.db").to_str().unwrap());
        let first = OutboxLock::try_take(&path).unwrap();
        assert!(first.is_some(), "a free lock is taken");
        assert!(
            OutboxLock::try_take(&path).unwrap().is_none(),
            "a held lock is refused, in this process too"
        );
        drop(first);
        assert!(
            OutboxLock::try_take(&path).unwrap().is_some(),
            "the lock is free again once its holder is gone"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
