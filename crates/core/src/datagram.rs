//! The datagram mode, for links that lose, duplicate and reorder packets (a
//! BLE or 802.15.4 radio, UDP): the same handshake and the same keys as over a
//! stream, with what a stream gave for free made explicit, as DTLS 1.3 does
//! for TLS.
//!
//! Every datagram starts with one byte that says what it carries:
//!
//! ```text
//! handshake   0n | message                      n = 1 (M1), 2 (M2), 3 (M3), 4 (M4), 5.. (factor rounds)
//! record      1s ss ss ss | AEAD(data | type)   top bit set, then a 31-bit sequence number
//! ```
//!
//! - **Handshake**: the message number lets each side drop a duplicate or a
//!   stale message without handing it to the handshake's states (which end on
//!   any message they do not expect). The initiator retransmits its last
//!   message on a timer ([`RetransmitTimer`]); the responder never sets one,
//!   it answers a repeated message with its stored reply ([`HandshakeReplies`]),
//!   so a lost answer costs it no signature.
//! - **Records**: the sequence number is explicit and is the nonce; the four
//!   header bytes are the AEAD's associated data, so a changed header fails to
//!   authenticate. Each side keeps a sliding window of the last
//!   [`REPLAY_WINDOW`] sequence numbers it accepted (RFC 4303 section 3.4.3,
//!   RFC 9147 section 4.5.1): a duplicate, or a record older than the window,
//!   is refused, and the window moves only for a record that authenticated, so
//!   forgeries cannot push it. A refused datagram does not end the channel
//!   (a radio link carries noise); the opener counts it.
//! - **Keys**: HKDF-Expand of the session's application keys with a label of
//!   their own, so no key protects both a stream record and a datagram. One
//!   key per direction for the session: no key update (which would need both
//!   sides to agree on where it happened despite loss). A direction seals at
//!   most 2^31 records; the device makes a new handshake (or resumes) long
//!   before that.
//!
//! Overhead: 21 bytes a record (4 of header, 1 of content type, 16 of tag),
//! 1 byte a handshake message.

use alloc::vec::Vec;
use core::marker::PhantomData;

use crate::channel::{check_sealable, Record, MAX_PLAINTEXT_LEN};
use crate::error::ChannelError;
use crate::provider::{CryptoProvider, Secret32, TAG_LEN};

/// The bytes before a record's ciphertext.
pub const RECORD_HEADER_LEN: usize = 4;
/// What a record adds to its plaintext: header, content type and tag.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + 1 + TAG_LEN;
/// The byte before a handshake message.
pub const HANDSHAKE_HEADER_LEN: usize = 1;
/// How many sequence numbers behind the highest one a record may arrive.
pub const REPLAY_WINDOW: u32 = 64;
/// The last sequence number a direction may seal.
pub const MAX_SEQUENCE: u32 = (1 << 31) - 1;

const RECORD_FLAG: u8 = 0x80;
const KEY_LABEL: &[u8] = b"vg1 datagram key";
const CONTENT_DATA: u8 = 1;
const CONTENT_CLOSE: u8 = 2;

/// What a datagram carries, told by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// Handshake message `number` (1 for M1, 2 for M2 and so on).
    Handshake {
        /// The message's place in the handshake.
        number: u8,
        /// The message, as the handshake's states take it.
        message: &'a [u8],
    },
    /// A sealed record (header included): for a [`DatagramOpener`].
    Record(&'a [u8]),
}

impl<'a> Datagram<'a> {
    /// Reads the first byte. An empty datagram, or a handshake number of 0, is
    /// [`ChannelError::Truncated`].
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ChannelError> {
        match datagram.first() {
            Some(&first) if first & RECORD_FLAG != 0 => Ok(Datagram::Record(datagram)),
            Some(&number) if number != 0 => Ok(Datagram::Handshake {
                number,
                message: &datagram[HANDSHAKE_HEADER_LEN..],
            }),
            _ => Err(ChannelError::Truncated),
        }
    }
}

/// Frames handshake message `number` (1 to 127) as one datagram.
pub fn handshake_datagram(number: u8, message: &[u8]) -> Vec<u8> {
    debug_assert!(number != 0 && number & RECORD_FLAG == 0);
    let mut datagram = Vec::with_capacity(HANDSHAKE_HEADER_LEN + message.len());
    datagram.push(number & !RECORD_FLAG);
    datagram.extend_from_slice(message);
    datagram
}

/// The sequence numbers a direction has accepted, as a window of
/// [`REPLAY_WINDOW`] below the highest.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// The highest sequence number accepted, if any.
    highest: Option<u32>,
    /// Bit `i` set: `highest - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// Whether `sequence` may still be accepted: not seen, not below the window.
    pub fn check(&self, sequence: u32) -> Result<(), ChannelError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if sequence > highest {
            return Ok(());
        }
        let behind = highest - sequence;
        if behind >= REPLAY_WINDOW || self.seen & (1 << behind) != 0 {
            return Err(ChannelError::Replayed);
        }
        Ok(())
    }

    /// Records `sequence` as accepted (after it authenticated).
    pub fn accept(&mut self, sequence: u32) {
        match self.highest {
            Some(highest) if sequence <= highest => {
                let behind = highest - sequence;
                if behind < REPLAY_WINDOW {
                    self.seen |= 1 << behind;
                }
            }
            Some(highest) => {
                let ahead = sequence - highest;
                self.seen = if ahead >= REPLAY_WINDOW {
                    0
                } else {
                    self.seen << ahead
                };
                self.seen |= 1;
                self.highest = Some(sequence);
            }
            None => {
                self.seen = 1;
                self.highest = Some(sequence);
            }
        }
    }
}

fn datagram_key<P: CryptoProvider>(application_key: &Secret32) -> Secret32 {
    let mut key = Secret32([0u8; 32]);
    P::hkdf_expand(application_key, &[KEY_LABEL], &mut key.0);
    key
}

fn nonce(sequence: u32) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[8..].copy_from_slice(&sequence.to_be_bytes());
    nonce
}

/// Seals this party's outgoing datagram records.
pub struct DatagramSealer<P: CryptoProvider> {
    key: Secret32,
    next: u32,
    closed: bool,
    provider: PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> DatagramSealer<P> {
    /// Seals application data as one datagram.
    pub fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, ChannelError> {
        self.seal_content(data, CONTENT_DATA)
    }

    /// Seals the close record; nothing more can be sealed. A lost close is
    /// the peer's idle timeout: the datagram mode cannot promise delivery.
    pub fn seal_close(&mut self) -> Result<Vec<u8>, ChannelError> {
        let record = self.seal_content(&[], CONTENT_CLOSE)?;
        self.closed = true;
        Ok(record)
    }

    /// How many records were sealed.
    pub fn records_sealed(&self) -> u32 {
        self.next
    }

    fn seal_content(&mut self, data: &[u8], content: u8) -> Result<Vec<u8>, ChannelError> {
        check_sealable(self.closed, data)?;
        let sequence = self.next;
        if sequence > MAX_SEQUENCE {
            return Err(ChannelError::CounterExhausted);
        }
        let header = (sequence | u32::from(RECORD_FLAG) << 24).to_be_bytes();
        let mut body = Vec::with_capacity(data.len() + 1 + TAG_LEN);
        body.extend_from_slice(data);
        body.push(content);
        P::aead_seal(&self.key, nonce(sequence), &header, &mut body);
        self.next += 1;
        let mut datagram = Vec::with_capacity(RECORD_HEADER_LEN + body.len());
        datagram.extend_from_slice(&header);
        datagram.extend_from_slice(&body);
        Ok(datagram)
    }
}

/// Opens the peer's datagram records in any order, each at most once.
pub struct DatagramOpener<P: CryptoProvider> {
    key: Secret32,
    window: ReplayWindow,
    closed: bool,
    replays: u64,
    forgeries: u64,
    provider: PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> DatagramOpener<P> {
    /// Opens one record (a [`Datagram::Record`], header included).
    ///
    /// A duplicate or a record older than the window is
    /// [`ChannelError::Replayed`]; one that does not authenticate is
    /// [`ChannelError::Forged`]. Neither ends the channel: the caller drops
    /// the datagram and goes on. After a [`Record::Close`] every record is
    /// [`ChannelError::Closed`].
    pub fn open(&mut self, record: &[u8]) -> Result<Record, ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        if record.len() < RECORD_OVERHEAD {
            return Err(ChannelError::Truncated);
        }
        if record.len() > RECORD_OVERHEAD + MAX_PLAINTEXT_LEN {
            return Err(ChannelError::TooLarge {
                len: record.len(),
                max: RECORD_OVERHEAD + MAX_PLAINTEXT_LEN,
            });
        }
        let (header, sealed) = record.split_at(RECORD_HEADER_LEN);
        let word = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if word & (u32::from(RECORD_FLAG) << 24) == 0 {
            return Err(ChannelError::UnknownContentType { value: header[0] });
        }
        let sequence = word & MAX_SEQUENCE;
        // Before the AEAD: a duplicate costs no decryption.
        if let Err(e) = self.window.check(sequence) {
            self.replays += 1;
            return Err(e);
        }
        let mut buf = sealed.to_vec();
        let Ok(len) = P::aead_open(&self.key, nonce(sequence), header, &mut buf) else {
            self.forgeries += 1;
            return Err(ChannelError::Forged);
        };
        buf.truncate(len);
        let opened = match buf.pop() {
            Some(CONTENT_DATA) => Record::Data(buf),
            Some(CONTENT_CLOSE) if buf.is_empty() => Record::Close,
            Some(other) => return Err(ChannelError::UnknownContentType { value: other }),
            None => return Err(ChannelError::Truncated),
        };
        self.window.accept(sequence);
        if opened == Record::Close {
            self.closed = true;
        }
        Ok(opened)
    }

    /// Records refused as duplicates or too old.
    pub fn replays_refused(&self) -> u64 {
        self.replays
    }

    /// Records refused because they did not authenticate.
    pub fn forgeries_refused(&self) -> u64 {
        self.forgeries
    }
}

/// Both directions of an established session, over datagrams.
pub struct DatagramChannel<P: CryptoProvider> {
    /// Outgoing records.
    pub sealer: DatagramSealer<P>,
    /// Incoming records.
    pub opener: DatagramOpener<P>,
}

impl<P: CryptoProvider> DatagramChannel<P> {
    pub(crate) fn new(send_key: &Secret32, receive_key: &Secret32) -> Self {
        Self {
            sealer: DatagramSealer {
                key: datagram_key::<P>(send_key),
                next: 0,
                closed: false,
                provider: PhantomData,
            },
            opener: DatagramOpener {
                key: datagram_key::<P>(receive_key),
                window: ReplayWindow::default(),
                closed: false,
                replays: 0,
                forgeries: 0,
                provider: PhantomData,
            },
        }
    }
}

/// The initiator's retransmission timer: its last message goes again when no
/// answer came in time, with the wait doubling each time (RFC 9147 section
/// 5.8), until it gives up. Times are the integrator's clock in milliseconds;
/// any monotonic one will do.
#[derive(Debug, Clone)]
pub struct RetransmitTimer {
    timeout_ms: u64,
    max_timeout_ms: u64,
    attempts_left: u32,
    deadline_ms: u64,
}

impl RetransmitTimer {
    /// A timer first due `initial_timeout_ms` after `now_ms`, doubling to at
    /// most `max_timeout_ms`, that allows `max_retransmissions` resends.
    pub fn new(
        now_ms: u64,
        initial_timeout_ms: u64,
        max_timeout_ms: u64,
        max_retransmissions: u32,
    ) -> Self {
        let timeout_ms = initial_timeout_ms.max(1);
        Self {
            timeout_ms,
            max_timeout_ms: max_timeout_ms.max(timeout_ms),
            attempts_left: max_retransmissions,
            deadline_ms: now_ms.saturating_add(timeout_ms),
        }
    }

    /// A new message went out (the handshake moved on): the wait starts again
    /// from the initial timeout, with all resends allowed again.
    pub fn restart(&mut self, now_ms: u64, initial_timeout_ms: u64, max_retransmissions: u32) {
        self.timeout_ms = initial_timeout_ms.max(1);
        self.attempts_left = max_retransmissions;
        self.deadline_ms = now_ms.saturating_add(self.timeout_ms);
    }

    /// When the next resend is due.
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// At `now_ms`: `Ok(true)` if the last message should go again now (and
    /// the timer moves to the next, doubled, deadline), `Ok(false)` if not yet,
    /// `Err` when the resends are used up.
    pub fn poll(&mut self, now_ms: u64) -> Result<bool, RetransmitExhausted> {
        if now_ms < self.deadline_ms {
            return Ok(false);
        }
        if self.attempts_left == 0 {
            return Err(RetransmitExhausted);
        }
        self.attempts_left -= 1;
        self.timeout_ms = self.timeout_ms.saturating_mul(2).min(self.max_timeout_ms);
        self.deadline_ms = now_ms.saturating_add(self.timeout_ms);
        Ok(true)
    }
}

/// A [`RetransmitTimer`] used every resend without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitExhausted;

/// The responder's memory of its last answer in one handshake, so a repeated
/// message gets the same reply (a lost reply costs no new signature and no
/// new state) and a stale one is dropped.
#[derive(Debug, Clone, Default)]
pub struct HandshakeReplies {
    /// The last message answered: its number and its bytes.
    answered: Option<(u8, Vec<u8>)>,
    /// The datagram sent in reply.
    reply: Vec<u8>,
}

/// What to do with a handshake message, by [`HandshakeReplies::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'r> {
    /// New: give it to the handshake's state.
    New,
    /// The message just answered, again: send this reply again.
    Repeat(&'r [u8]),
    /// An older message, or a different one under the number just answered:
    /// drop it.
    Stale,
}

impl HandshakeReplies {
    /// Says whether message `number` with `message` is new, a repeat of the
    /// one answered last, or stale. An M1 that is not the one answered is new:
    /// the initiator gave up and began again.
    pub fn classify(&self, number: u8, message: &[u8]) -> Incoming<'_> {
        match &self.answered {
            None => Incoming::New,
            Some((last, bytes)) if number == *last && bytes == message => {
                Incoming::Repeat(&self.reply)
            }
            Some(_) if number == 1 => Incoming::New,
            Some((last, _)) if number > *last => Incoming::New,
            Some(_) => Incoming::Stale,
        }
    }

    /// Remembers that message `number` was answered with `reply` (a datagram).
    pub fn answered(&mut self, number: u8, message: &[u8], reply: &[u8]) {
        self.answered = Some((number, message.to_vec()));
        self.reply.clear();
        self.reply.extend_from_slice(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_accepts_each_sequence_once_in_any_order_within_its_width() {
        let mut window = ReplayWindow::default();
        for sequence in [5u32, 3, 9, 4, 70, 7] {
            window.check(sequence).expect("new");
            window.accept(sequence);
            assert_eq!(window.check(sequence), Err(ChannelError::Replayed));
        }
        // 70 moved the window: 6 is now more than 64 behind, 8 is not.
        assert_eq!(window.check(6), Err(ChannelError::Replayed));
        assert_eq!(window.check(8), Ok(()));
        assert_eq!(window.check(70 - 64), Err(ChannelError::Replayed));
        assert_eq!(window.check(70 - 63), Err(ChannelError::Replayed)); // 7 was seen
        window.accept(200);
        assert_eq!(window.check(137), Ok(()));
        assert_eq!(window.check(136), Err(ChannelError::Replayed));
    }

    #[test]
    fn the_retransmit_timer_doubles_up_to_its_bound_then_gives_up() {
        let mut timer = RetransmitTimer::new(1_000, 500, 1_500, 3);
        assert_eq!(timer.poll(1_499), Ok(false));
        assert_eq!(timer.poll(1_500), Ok(true));
        assert_eq!(timer.deadline_ms(), 2_500);
        assert_eq!(timer.poll(2_500), Ok(true));
        assert_eq!(timer.deadline_ms(), 4_000);
        assert_eq!(timer.poll(4_000), Ok(true));
        assert_eq!(timer.poll(5_500), Err(RetransmitExhausted));
        timer.restart(6_000, 500, 3);
        assert_eq!(timer.poll(6_499), Ok(false));
    }

    #[test]
    fn replies_are_repeated_for_the_same_message_and_stale_ones_dropped() {
        let mut replies = HandshakeReplies::default();
        assert_eq!(replies.classify(1, b"m1"), Incoming::New);
        replies.answered(1, b"m1", b"\x02m2");
        assert_eq!(replies.classify(1, b"m1"), Incoming::Repeat(b"\x02m2"));
        assert_eq!(replies.classify(1, b"another m1"), Incoming::New);
        assert_eq!(replies.classify(3, b"m3"), Incoming::New);
        replies.answered(3, b"m3", b"\x04m4");
        assert_eq!(replies.classify(3, b"m3"), Incoming::Repeat(b"\x04m4"));
        assert_eq!(replies.classify(3, b"forged m3"), Incoming::Stale);
        assert_eq!(replies.classify(2, b"m2"), Incoming::Stale);
    }

    #[test]
    fn datagrams_are_told_apart_by_their_first_byte() {
        assert_eq!(
            Datagram::parse(&handshake_datagram(3, b"m3")),
            Ok(Datagram::Handshake {
                number: 3,
                message: b"m3"
            })
        );
        assert_eq!(
            Datagram::parse(&[0x80, 0, 0, 1, 9]),
            Ok(Datagram::Record(&[0x80, 0, 0, 1, 9]))
        );
        assert_eq!(Datagram::parse(&[]), Err(ChannelError::Truncated));
        assert_eq!(Datagram::parse(&[0, 1]), Err(ChannelError::Truncated));
    }
}
