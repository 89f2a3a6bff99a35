//! One process per data directory: an advisory lock on a file inside it,
//! held for the process's life and released by the OS when it exits or
//! crashes. Two services on one directory would race for its store, its
//! identity and its tokens; the second one refuses to start instead and
//! names the process that holds the directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

/// The lock file's name in a data directory.
const LOCK_FILE: &str = "vitalgate.lock";

/// A data directory this process holds; dropping it releases the directory.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
}

/// Takes `dir` (created if missing) for this process, or one line naming
/// the directory and the process that holds it.
pub(crate) fn lock(dir: &Path) -> Result<DataDirLock, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("the data directory {}: {e}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("the data directory's lock {}: {e}", path.display()))?;
    // std's advisory lock (flock on Linux; stable since Rust 1.89, the
    // workspace's rust-version): the kernel drops it when the process ends,
    // however it ends.
    let locked = file.try_lock();
    match locked {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("another vitalgate process (pid {pid})"),
            };
            return Err(format!(
                "the data directory {} is in use by {holder}: stop it, or give this one another data directory",
                dir.display()
            ));
        }
        Err(TryLockError::Error(e)) => {
            return Err(format!("the data directory's lock {}: {e}", path.display()))
        }
    }
    // The holder's pid, for the message a second process prints.
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot write this process's id into the data directory's lock");
    }
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock(dir.path()).expect("first");
        let refused = lock(dir.path()).expect_err("second");
        assert!(
            refused.contains(&format!("(pid {})", std::process::id()))
                && refused.contains(&dir.path().display().to_string()),
            "{refused}"
        );
        drop(first);
        lock(dir.path()).expect("free again");
    }
}
