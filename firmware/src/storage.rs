//! The device's persistent slots, in the memory that stands in for a
//! wearable's flash pages (`STORAGE` in memory.x: not RAM on a real part, so
//! not in the RAM measured), filled from the host's provisioning frame: what
//! a factory line writes into a device after enrollment. On the emulator that
//! memory is writable, so a write is a copy; a real part's driver would erase
//! and program a page through its flash controller, as atomically as
//! [`Storage::write`] asks.

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use vitalgate_sdk::enrollment::MAX_TRUST_ANCHORS;
use vitalgate_sdk::traits::{Slot, Storage, StorageError};
use vitalgate_sdk::vitalgate_core::credential::MAX_ENCODED_LEN;

/// Each slot's capacity, in [`index`] order: key seed, credential, trust
/// anchors, HSP credential, the HSP-knows-device flag, sequence reservation.
const CAPACITY: [usize; 6] = [
    32,
    MAX_ENCODED_LEN,
    32 * MAX_TRUST_ANCHORS,
    MAX_ENCODED_LEN,
    0,
    8,
];
const TOTAL: usize = {
    let mut total = 0;
    let mut i = 0;
    while i < CAPACITY.len() {
        total += CAPACITY[i];
        i += 1;
    }
    total
};

/// The slots in one array, each at a fixed offset; no allocation.
pub(crate) struct FlashStorage {
    bytes: [u8; TOTAL],
    lens: [Option<u16>; CAPACITY.len()],
}

fn index(slot: Slot) -> Result<usize, StorageError> {
    Ok(match slot {
        Slot::KeySeed => 0,
        Slot::Credential => 1,
        Slot::TrustAnchors => 2,
        Slot::HspCredential => 3,
        Slot::HspKnowsDevice => 4,
        Slot::SequenceReservation => 5,
        // `Slot` is non-exhaustive: a slot a later SDK adds needs a place here.
        _ => return Err(StorageError::Failed),
    })
}

/// Where a slot's bytes live.
fn range(i: usize) -> core::ops::Range<usize> {
    let start: usize = CAPACITY[..i].iter().sum();
    start..start + CAPACITY[i]
}

/// The slots' memory, placed by the linker in `STORAGE` (memory.x). NOLOAD,
/// so it is uninitialised until [`FlashStorage::take`] erases it.
#[link_section = ".storage"]
static mut SLOTS: MaybeUninit<FlashStorage> = MaybeUninit::uninit();
static TAKEN: AtomicBool = AtomicBool::new(false);

impl FlashStorage {
    /// The slots, all erased; `None` after the first call (one owner).
    pub(crate) fn take() -> Option<&'static mut FlashStorage> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: TAKEN makes this the only reference to SLOTS ever made,
        // and nothing else names SLOTS; writing a whole value into the
        // uninitialised memory before handing it out makes it initialised.
        let slots = unsafe { &mut *core::ptr::addr_of_mut!(SLOTS) };
        Some(slots.write(FlashStorage {
            bytes: [0; TOTAL],
            lens: [None; CAPACITY.len()],
        }))
    }
}

impl Storage for FlashStorage {
    fn read(&mut self, slot: Slot, buf: &mut [u8]) -> Result<Option<usize>, StorageError> {
        let i = index(slot)?;
        let Some(len) = self.lens[i].map(usize::from) else {
            return Ok(None);
        };
        let out = buf.get_mut(..len).ok_or(StorageError::TooLarge)?;
        out.copy_from_slice(&self.bytes[range(i)][..len]);
        Ok(Some(len))
    }

    fn write(&mut self, slot: Slot, data: &[u8]) -> Result<(), StorageError> {
        let i = index(slot)?;
        self.bytes[range(i)]
            .get_mut(..data.len())
            .ok_or(StorageError::TooLarge)?
            .copy_from_slice(data);
        self.lens[i] = Some(data.len() as u16);
        Ok(())
    }

    fn remove(&mut self, slot: Slot) -> Result<(), StorageError> {
        self.lens[index(slot)?] = None;
        Ok(())
    }
}
