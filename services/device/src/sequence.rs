//! Per-device sequence numbers that are never reused, across crashes too.
//!
//! The file `sequence` holds the end of a reserved block; numbers are handed
//! out from the block, and a new block is reserved (and synced) before the
//! first number of it is used. A crash skips the rest of a block, never reuses.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const BLOCK: u64 = 1000;

pub(crate) struct SequenceAllocator {
    path: PathBuf,
    next: u64,
    reserved_until: u64,
}

impl SequenceAllocator {
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("sequence");
        let reserved = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            next: reserved + 1,
            reserved_until: reserved,
        })
    }

    pub(crate) fn next(&mut self) -> std::io::Result<u64> {
        if self.next > self.reserved_until {
            let until = self.reserved_until + BLOCK;
            let tmp = self.path.with_extension("tmp");
            let mut file = fs::File::create(&tmp)?;
            file.write_all(until.to_string().as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            self.reserved_until = until;
        }
        let n = self.next;
        self.next += 1;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_never_reused_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = SequenceAllocator::open(dir.path()).expect("open");
        let first: Vec<u64> = (0..5).map(|_| a.next().expect("next")).collect();
        assert_eq!(first, [1, 2, 3, 4, 5]);
        drop(a);
        let mut b = SequenceAllocator::open(dir.path()).expect("reopen");
        assert!(b.next().expect("next") > 5);
    }
}
