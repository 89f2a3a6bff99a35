//! The device over a link that loses, duplicates and reorders packets (a BLE
//! or 802.15.4 radio, UDP through a gateway), on the core's datagram mode
//! ([`vitalgate_core::datagram`]): the same handshake and keys as over a
//! stream, each message in one datagram, retransmitted on a timer; then
//! records with explicit sequence numbers that the HSP opens once each, and
//! samples sent again until the HSP acknowledges them.
//!
//! ```text
//!   DatagramHandshake::start ──[1|M1]──►      poll(now): the last datagram again when its timer is due
//!   handle([2|M2])           ──[3|M3]──►      (a duplicate or stale message is Dropped)
//!   handle([4|M4])           ──► Established ──► Session::into_datagram_channel
//!   Uplink::poll(now)        ──[record]──►    unsent samples; unacknowledged ones again after ack_timeout_ms
//!   Uplink::receive([ack])   ◄─[record]──     acknowledged samples leave the buffer
//! ```
//!
//! Sans-I/O like the rest of the SDK: the integrator moves the datagrams and
//! calls [`DatagramHandshake::poll`] and [`Uplink::poll`] from its main loop
//! or a timer with its clock's milliseconds (any monotonic clock).
//!
//! # Sizes
//!
//! The reference handshake (credentials by reference) is 35, 110, 95 and 18
//! bytes as datagrams: it fits a link MTU of 110 bytes. With full credentials
//! M2 is up to 290 and M3 up to 275. BLE's default ATT MTU (23, so 20 bytes of
//! payload) is too small for any message but M4: negotiate a larger ATT MTU
//! (BLE 4.2 and later: up to 247) or use an L2CAP connection-oriented channel,
//! which segments. A record is its samples plus 21 bytes;
//! [`Uplink::new`] puts as many samples in one as the MTU allows.

use alloc::vec::Vec;

use rand_core::{CryptoRng, RngCore};
use vitalgate_core::channel::Record;
use vitalgate_core::datagram::{
    handshake_datagram, Datagram, DatagramOpener, DatagramSealer, RetransmitTimer, RECORD_OVERHEAD,
};
use vitalgate_core::handshake::{InitiatorConfig, PeerDirectory, Session};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::UnixTime;

use crate::buffer::{Entry, SampleBuffer};
use crate::handshake::{DeviceHandshake, FactorAnswers, Step};
use crate::sample::{encode_batch, AckSequences, MAX_SAMPLE_FRAME_LEN};
use crate::SdkError;

/// What the link carries and how patient the device is with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// The largest datagram the link carries whole. A handshake message that
    /// would be larger fails with [`SdkError::DatagramTooLarge`].
    pub mtu: usize,
    /// The first wait for an answer before a handshake message goes again.
    pub initial_timeout_ms: u64,
    /// The longest wait: each resend doubles it up to this.
    pub max_timeout_ms: u64,
    /// Resends of one handshake message before [`SdkError::TimedOut`].
    pub max_retransmissions: u32,
    /// How long a sent sample waits for its acknowledgement before it is
    /// sent again (it may wait up to twice this: see [`Uplink`]).
    pub ack_timeout_ms: u64,
}

impl Default for LinkConfig {
    /// A BLE link with a negotiated ATT MTU of 247 (244 bytes a
    /// notification), RFC 9147's one-second first timeout, resends up to
    /// about a minute in all.
    fn default() -> Self {
        Self {
            mtu: 244,
            initial_timeout_ms: 1_000,
            max_timeout_ms: 16_000,
            max_retransmissions: 6,
            ack_timeout_ms: 2_000,
        }
    }
}

/// What to do after a datagram from the HSP.
// One value per message of a handshake, moved once (as `Step`).
#[allow(clippy::large_enum_variant)]
pub enum DatagramStep<P: CryptoProvider> {
    /// Send this datagram to the HSP.
    Send(Vec<u8>),
    /// The HSP confirmed the session: make its channel with
    /// [`Session::into_datagram_channel`].
    Established(Session<P>),
    /// A duplicate, a stale message or a record from an earlier session:
    /// nothing to do.
    Dropped,
}

/// One handshake of a device with its HSP over datagrams: [`DeviceHandshake`]
/// with message numbers and a retransmission timer.
pub struct DatagramHandshake<'a, P: CryptoProvider> {
    handshake: DeviceHandshake<'a, P>,
    link: LinkConfig,
    /// The last datagram sent, for resending, and its message number.
    sent: Vec<u8>,
    sent_number: u8,
    timer: RetransmitTimer,
}

impl<'a, P: CryptoProvider> DatagramHandshake<'a, P> {
    /// Makes M1 (a fresh ephemeral key from `rng`) as a datagram and starts
    /// its timer at `now_ms`.
    pub fn start(
        config: &'a InitiatorConfig<P>,
        link: LinkConfig,
        now_ms: u64,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
    ) -> Result<(Vec<u8>, Self), SdkError> {
        let (m1, handshake) = DeviceHandshake::start(config, rng)?;
        let sent = framed(1, &m1, link.mtu)?;
        let timer = RetransmitTimer::new(
            now_ms,
            link.initial_timeout_ms,
            link.max_timeout_ms,
            link.max_retransmissions,
        );
        Ok((
            sent.clone(),
            Self {
                handshake,
                link,
                sent,
                sent_number: 1,
                timer,
            },
        ))
    }

    /// Handles one datagram from the HSP at `now_ms` (`now` is the device's
    /// Unix time for the handshake, ignored when it adopts the HSP's).
    ///
    /// Only the message that answers the last one sent goes to the
    /// handshake; anything else is [`DatagramStep::Dropped`]. An answer that
    /// the handshake refuses (forged, or from another HSP) ends this
    /// handshake with its error: start a new one.
    pub fn handle(
        &mut self,
        datagram: &[u8],
        now_ms: u64,
        now: UnixTime,
        peers: &PeerDirectory<'_>,
        factors: &mut dyn FactorAnswers,
    ) -> Result<DatagramStep<P>, SdkError> {
        let Ok(Datagram::Handshake { number, message }) = Datagram::parse(datagram) else {
            return Ok(DatagramStep::Dropped);
        };
        if Some(number) != self.sent_number.checked_add(1) {
            return Ok(DatagramStep::Dropped);
        }
        match self.handshake.handle(message, now, peers, factors)? {
            Step::Send(reply) => {
                let number = number.checked_add(1).ok_or(SdkError::UnexpectedMessage)?;
                self.sent = framed(number, &reply, self.link.mtu)?;
                self.sent_number = number;
                self.timer.restart(
                    now_ms,
                    self.link.initial_timeout_ms,
                    self.link.max_retransmissions,
                );
                Ok(DatagramStep::Send(self.sent.clone()))
            }
            Step::Established(session) => Ok(DatagramStep::Established(session)),
        }
    }

    /// At `now_ms`: the last datagram again if its timer is due, `None` if
    /// not yet, [`SdkError::TimedOut`] when the resends are used up (the HSP
    /// is unreachable: try later with a new handshake).
    pub fn poll(&mut self, now_ms: u64) -> Result<Option<&[u8]>, SdkError> {
        match self.timer.poll(now_ms) {
            Ok(true) => Ok(Some(&self.sent)),
            Ok(false) => Ok(None),
            Err(_) => Err(SdkError::TimedOut),
        }
    }

    /// When [`poll`](Self::poll) next has something to do: sleep until then.
    pub fn deadline_ms(&self) -> u64 {
        self.timer.deadline_ms()
    }
}

fn framed(number: u8, message: &[u8], mtu: usize) -> Result<Vec<u8>, SdkError> {
    let datagram = handshake_datagram(number, message);
    if datagram.len() > mtu {
        return Err(SdkError::DatagramTooLarge {
            len: datagram.len(),
            mtu,
        });
    }
    Ok(datagram)
}

/// The samples' way up over datagrams: records of as many samples as the MTU
/// allows, and each sample again, every `ack_timeout_ms`, until the HSP
/// acknowledges it. The HSP stores each (device, sequence) once, so a sample
/// that arrives twice is stored once.
///
/// The timer needs no time per sample (the buffer's entries stay 56 bytes):
/// at each check the highest sequence number sent so far is noted, and at the
/// next check every sample still unacknowledged at or below it has waited at
/// least `ack_timeout_ms` and goes again.
#[derive(Debug, Clone)]
pub struct Uplink {
    per_record: usize,
    ack_timeout_ms: u64,
    next_check_ms: u64,
    /// The highest sequence sent at the last check.
    sent_by_last_check: Option<u64>,
}

impl Uplink {
    /// At most `per_record` samples a record, fewer if the MTU needs it (at
    /// least one: a link too small for one sample fails on sending).
    pub fn new(link: &LinkConfig, per_record: usize) -> Self {
        let fit = link.mtu.saturating_sub(RECORD_OVERHEAD) / MAX_SAMPLE_FRAME_LEN;
        Self {
            per_record: per_record.min(fit).max(1),
            ack_timeout_ms: link.ack_timeout_ms.max(1),
            next_check_ms: 0,
            sent_by_last_check: None,
        }
    }

    /// Samples in one record.
    pub fn samples_per_record(&self) -> usize {
        self.per_record
    }

    /// At `now_ms`: the records to send. When a check is due, the samples
    /// sent before the last check and still unacknowledged go again; then
    /// every sample not sent yet goes, `samples_per_record` a record.
    pub fn poll<P: CryptoProvider, B: AsRef<[Entry]> + AsMut<[Entry]>>(
        &mut self,
        now_ms: u64,
        sealer: &mut DatagramSealer<P>,
        buffer: &mut SampleBuffer<B>,
    ) -> Result<Vec<Vec<u8>>, SdkError> {
        let mut records = Vec::new();
        let mut plaintext = Vec::new();
        let sent = buffer.len() - buffer.unsent();
        if now_ms >= self.next_check_ms {
            if let Some(mark) = self.sent_by_last_check {
                let overdue: Vec<_> = buffer
                    .iter()
                    .take(sent)
                    .take_while(|sample| sample.sequence <= mark)
                    .collect();
                for chunk in overdue.chunks(self.per_record) {
                    encode_batch(chunk.iter().copied(), &mut plaintext);
                    records.push(sealer.seal(&plaintext)?);
                }
            }
            self.sent_by_last_check = buffer.iter().take(sent).last().map(|s| s.sequence);
            self.next_check_ms = now_ms.saturating_add(self.ack_timeout_ms);
        }
        while buffer.unsent() > 0 {
            let count = buffer.next_unsent(self.per_record).count();
            encode_batch(buffer.next_unsent(self.per_record), &mut plaintext);
            records.push(sealer.seal(&plaintext)?);
            buffer.mark_sent(count);
        }
        Ok(records)
    }

    /// A datagram from the HSP: returns how many samples it acknowledged. A
    /// duplicate, a forgery or a late handshake message is dropped (0; the
    /// opener counts replays and forgeries); the HSP's close is
    /// [`SdkError::Transport`]: the session is over.
    pub fn receive<P: CryptoProvider, B: AsRef<[Entry]> + AsMut<[Entry]>>(
        &mut self,
        datagram: &[u8],
        opener: &mut DatagramOpener<P>,
        buffer: &mut SampleBuffer<B>,
    ) -> Result<usize, SdkError> {
        let Ok(Datagram::Record(record)) = Datagram::parse(datagram) else {
            return Ok(0);
        };
        match opener.open(record) {
            Ok(Record::Data(ack)) => Ok(buffer.acknowledge(AckSequences::parse(&ack)?.iter())),
            Ok(Record::Close) => Err(SdkError::Transport),
            Ok(Record::KeyUpdate) | Err(_) => Ok(0),
        }
    }
}
