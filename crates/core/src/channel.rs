//! The secure channel that follows a handshake: ChaCha20-Poly1305 records.
//!
//! Each direction has its own key and a 64-bit record counter that is the nonce.
//! The counter is implicit (not sent), so over an ordered transport such as a
//! gRPC stream a replayed, reordered, dropped or forged record fails to
//! authenticate, and after one failure the opener refuses everything. A `Close`
//! record ends the stream, so a truncation by an attacker is told apart from a
//! clean end.
//!
//! Keys are replaced after a bounded number of records (both sides count, so no
//! message is needed) and whenever a side sends a `KeyUpdate` record (for a
//! time-based bound the caller chooses). The next key is HKDF-Expand of the old
//! one, which is then zeroized, so a key taken from memory later does not open
//! earlier records.

use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::error::ChannelError;
use crate::provider::{CryptoProvider, Secret32, TAG_LEN};

/// The largest plaintext in one record.
pub const MAX_PLAINTEXT_LEN: usize = 16 * 1024;
/// The largest record on the wire.
pub const MAX_RECORD_LEN: usize = MAX_PLAINTEXT_LEN + 1 + TAG_LEN;
/// Records under one key before both sides move to the next.
pub const DEFAULT_RECORDS_PER_KEY: u64 = 1 << 20;

const CONTENT_DATA: u8 = 1;
const CONTENT_CLOSE: u8 = 2;
const CONTENT_KEY_UPDATE: u8 = 3;
const KEY_UPDATE_LABEL: &[u8] = b"vg1 key update";

/// What an opened record held.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// Application data.
    Data(Vec<u8>),
    /// The peer moved to its next key.
    KeyUpdate,
    /// The peer closed its direction; nothing more will be accepted.
    Close,
}

/// One direction's key and counter.
struct Direction<P: CryptoProvider> {
    key: Secret32,
    counter: u64,
    records_per_key: u64,
    provider: PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> Direction<P> {
    fn new(key: Secret32, records_per_key: u64) -> Self {
        Self {
            key,
            counter: 0,
            records_per_key: records_per_key.max(1),
            provider: PhantomData,
        }
    }

    fn nonce(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.counter.to_be_bytes());
        nonce
    }

    fn next_key(&mut self) {
        let mut next = Secret32([0u8; 32]);
        P::hkdf_expand(&self.key, &[KEY_UPDATE_LABEL], &mut next.0);
        self.key = next;
    }

    /// Moves past a record; switches key at the bound or after a key update.
    fn advance(&mut self, key_update: bool) -> Result<(), ChannelError> {
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(ChannelError::CounterExhausted)?;
        if key_update || self.counter.is_multiple_of(self.records_per_key) {
            self.next_key();
        }
        Ok(())
    }
}

/// Seals this party's outgoing records.
pub struct Sealer<P: CryptoProvider> {
    direction: Direction<P>,
    closed: bool,
}

impl<P: CryptoProvider> Sealer<P> {
    /// Seals application data.
    pub fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, ChannelError> {
        self.seal_content(data, CONTENT_DATA)
    }

    /// Seals a key update and moves to the next key.
    pub fn seal_key_update(&mut self) -> Result<Vec<u8>, ChannelError> {
        self.seal_content(&[], CONTENT_KEY_UPDATE)
    }

    /// Seals the close record; nothing more can be sealed.
    pub fn seal_close(&mut self) -> Result<Vec<u8>, ChannelError> {
        let record = self.seal_content(&[], CONTENT_CLOSE)?;
        self.closed = true;
        Ok(record)
    }

    /// How many records were sealed.
    pub fn records_sealed(&self) -> u64 {
        self.direction.counter
    }

    fn seal_content(&mut self, data: &[u8], content: u8) -> Result<Vec<u8>, ChannelError> {
        check_sealable(self.closed, data)?;
        let mut record = Vec::with_capacity(data.len() + 1 + TAG_LEN);
        record.extend_from_slice(data);
        record.push(content);
        P::aead_seal(
            &self.direction.key,
            self.direction.nonce(),
            &[],
            &mut record,
        );
        self.direction.advance(content == CONTENT_KEY_UPDATE)?;
        Ok(record)
    }
}

/// Whether `data` may be sealed: the direction is open and `data` fits a record.
pub(crate) fn check_sealable(closed: bool, data: &[u8]) -> Result<(), ChannelError> {
    if closed {
        return Err(ChannelError::Closed);
    }
    if data.len() > MAX_PLAINTEXT_LEN {
        return Err(ChannelError::TooLarge {
            len: data.len(),
            max: MAX_PLAINTEXT_LEN,
        });
    }
    Ok(())
}

/// Opens the peer's records, strictly in order.
pub struct Opener<P: CryptoProvider> {
    direction: Direction<P>,
    closed: bool,
}

impl<P: CryptoProvider> Opener<P> {
    /// Opens the next record. A failure closes the opener for good: a stream
    /// that was tampered with is not trusted again.
    pub fn open(&mut self, record: &[u8]) -> Result<Record, ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        let result = self.open_inner(record);
        if !matches!(result, Ok(Record::Data(_)) | Ok(Record::KeyUpdate)) {
            self.closed = true;
        }
        result
    }

    /// How many records were opened.
    pub fn records_opened(&self) -> u64 {
        self.direction.counter
    }

    fn open_inner(&mut self, record: &[u8]) -> Result<Record, ChannelError> {
        if record.len() < 1 + TAG_LEN {
            return Err(ChannelError::Truncated);
        }
        if record.len() > MAX_RECORD_LEN {
            return Err(ChannelError::TooLarge {
                len: record.len(),
                max: MAX_RECORD_LEN,
            });
        }
        let mut buf = record.to_vec();
        let len = P::aead_open(&self.direction.key, self.direction.nonce(), &[], &mut buf)
            .map_err(|_| ChannelError::Forged)?;
        buf.truncate(len);
        let content = buf.pop().ok_or(ChannelError::Truncated)?;
        let opened = match content {
            CONTENT_DATA => Record::Data(buf),
            CONTENT_KEY_UPDATE if buf.is_empty() => Record::KeyUpdate,
            CONTENT_CLOSE if buf.is_empty() => Record::Close,
            other => return Err(ChannelError::UnknownContentType { value: other }),
        };
        self.direction
            .advance(matches!(opened, Record::KeyUpdate))?;
        Ok(opened)
    }
}

/// Both directions of an established session.
pub struct SecureChannel<P: CryptoProvider> {
    /// Outgoing records.
    pub sealer: Sealer<P>,
    /// Incoming records.
    pub opener: Opener<P>,
}

impl<P: CryptoProvider> SecureChannel<P> {
    pub(crate) fn new(send_key: Secret32, receive_key: Secret32) -> Self {
        let records_per_key = DEFAULT_RECORDS_PER_KEY;
        Self {
            sealer: Sealer {
                direction: Direction::new(send_key, records_per_key),
                closed: false,
            },
            opener: Opener {
                direction: Direction::new(receive_key, records_per_key),
                closed: false,
            },
        }
    }

    /// Sets how many records each key seals before both sides move to the next.
    /// Both sides must agree; the default is [`DEFAULT_RECORDS_PER_KEY`].
    pub fn set_records_per_key(&mut self, records_per_key: u64) {
        self.sealer.direction.records_per_key = records_per_key.max(1);
        self.opener.direction.records_per_key = records_per_key.max(1);
    }
}
