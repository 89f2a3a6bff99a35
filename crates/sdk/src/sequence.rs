//! Per-device sample sequence numbers that are never reused, across power
//! losses too.
//!
//! The storage slot holds the end of a reserved block; numbers are handed out
//! from it, and the next block is reserved (durably) before its first number is
//! used. A power loss skips the rest of a block and never reuses a number, which
//! the HSP's de-duplication by (device, sequence) depends on. Numbers start at 1.

use crate::traits::{Slot, Storage};
use crate::SdkError;

/// Numbers reserved per storage write: flash wears out, so one write per block.
pub const DEFAULT_BLOCK: u64 = 1000;

/// Hands out sequence numbers, reserving them in blocks in [`Slot::SequenceReservation`].
#[derive(Debug)]
pub struct SequenceAllocator {
    next: u64,
    reserved_until: u64,
    block: u64,
}

impl SequenceAllocator {
    /// Resumes after the last reserved block.
    pub fn open(storage: &mut impl Storage) -> Result<Self, SdkError> {
        Self::with_block(storage, DEFAULT_BLOCK)
    }

    /// Resumes, reserving `block` numbers per write (at least 1).
    pub fn with_block(storage: &mut impl Storage, block: u64) -> Result<Self, SdkError> {
        let mut buf = [0u8; 8];
        let reserved = match storage.read(Slot::SequenceReservation, &mut buf)? {
            None => 0,
            Some(8) => u64::from_be_bytes(buf),
            Some(_) => return Err(SdkError::DamagedStorage),
        };
        Ok(Self {
            next: reserved.checked_add(1).ok_or(SdkError::DamagedStorage)?,
            reserved_until: reserved,
            block: block.max(1),
        })
    }

    /// The next number, reserving a new block first when this one is used up.
    pub fn next(&mut self, storage: &mut impl Storage) -> Result<u64, SdkError> {
        if self.next > self.reserved_until {
            let until = self
                .reserved_until
                .checked_add(self.block)
                .ok_or(SdkError::DamagedStorage)?;
            storage.write(Slot::SequenceReservation, &until.to_be_bytes())?;
            self.reserved_until = until;
        }
        let n = self.next;
        self.next += 1;
        Ok(n)
    }
}
