//! A blocking driver over the integrator's [`Transport`]: for firmware with a
//! main loop and no executor. An asynchronous agent uses the sans-I/O parts
//! ([`DeviceHandshake`], [`SampleBuffer`]) itself.

use alloc::vec;

use rand_core::{CryptoRng, RngCore};
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::handshake::{InitiatorConfig, PeerDirectory, Session, MAX_MESSAGE_LEN};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::resumption::Resumed;
use vitalgate_core::UnixTime;

use crate::buffer::{Entry, SampleBuffer};
use crate::handshake::{DeviceHandshake, FactorAnswers, Step};
use crate::resume::Ticket;
use crate::sample::{encode_batch, AckSequences};
use crate::traits::{Clock, Transport};
use crate::SdkError;

/// Runs a whole handshake over `transport`, receiving into a buffer of
/// `MAX_MESSAGE_LEN` (4 KiB) on the heap; see [`handshake_in`] to bring your own.
pub fn handshake<P: CryptoProvider>(
    transport: &mut impl Transport,
    config: &InitiatorConfig<P>,
    peers: &PeerDirectory<'_>,
    clock: &impl Clock,
    rng: &mut (impl RngCore + CryptoRng + ?Sized),
    factors: &mut dyn FactorAnswers,
) -> Result<Session<P>, SdkError> {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    handshake_in(&mut buf, transport, config, peers, clock, rng, factors)
}

/// [`handshake`] receiving into `buf`: firmware short of RAM passes one that
/// fits the largest message its HSP sends (M2 by reference is 109 bytes; with
/// the HSP's credential in full, or factor rounds, more). A longer message
/// fails the handshake with [`SdkError::BufferTooSmall`].
pub fn handshake_in<P: CryptoProvider>(
    buf: &mut [u8],
    transport: &mut impl Transport,
    config: &InitiatorConfig<P>,
    peers: &PeerDirectory<'_>,
    clock: &impl Clock,
    rng: &mut (impl RngCore + CryptoRng + ?Sized),
    factors: &mut dyn FactorAnswers,
) -> Result<Session<P>, SdkError> {
    let (m1, mut handshake) = DeviceHandshake::start(config, rng)?;
    transport.send(&m1)?;
    drop(m1);
    loop {
        let len = transport.receive(buf)?;
        let now = UnixTime(clock.now_unix_ms().unwrap_or(0) / 1000);
        match handshake.handle(&buf[..len], now, peers, factors)? {
            Step::Send(message) => transport.send(&message)?,
            Step::Established(session) => return Ok(session),
        }
    }
}

/// What [`send_and_collect_acks`] received.
#[derive(Debug, Default)]
pub struct Acknowledged {
    /// Samples the HSP acknowledged (and removed from the buffer).
    pub samples: usize,
    /// A resumption ticket for the next connection, if an acknowledgement
    /// carried one (the first of a session does): keep it for
    /// [`resume_in`].
    #[cfg(feature = "resumption")]
    pub ticket: Option<Ticket>,
    /// The TTP's trust-anchor statements the acknowledgements carried (a
    /// key rollover), oldest first: apply them with
    /// [`Enrolled::apply_anchor_statements`](crate::enrollment::Enrolled::apply_anchor_statements).
    #[cfg(feature = "anchor-updates")]
    pub anchor_statements: alloc::vec::Vec<crate::lifecycle::AnchorStatement>,
}

/// Sends what `buffer` holds unsent, `batch` samples per record, and reads one
/// acknowledgement per record sent.
/// Acknowledgements are received into a buffer of `MAX_RECORD_LEN` (16 KiB) on
/// the heap; see [`send_and_collect_acks_in`] to bring your own.
pub fn send_and_collect_acks<P: CryptoProvider, B: AsRef<[Entry]> + AsMut<[Entry]>>(
    transport: &mut impl Transport,
    channel: &mut SecureChannel<P>,
    buffer: &mut SampleBuffer<B>,
    batch: usize,
) -> Result<Acknowledged, SdkError> {
    let mut receive = vec![0u8; vitalgate_core::channel::MAX_RECORD_LEN];
    send_and_collect_acks_in(&mut receive, transport, channel, buffer, batch)
}

/// [`send_and_collect_acks`] receiving into `receive`: an acknowledgement is
/// the sequence numbers of one record's samples (at most 11 bytes each) and
/// now and then a resumption ticket (under 100 bytes), sealed (17 bytes more),
/// so firmware short of RAM passes a few hundred bytes. A longer record fails
/// with [`SdkError::BufferTooSmall`].
pub fn send_and_collect_acks_in<P: CryptoProvider, B: AsRef<[Entry]> + AsMut<[Entry]>>(
    receive: &mut [u8],
    transport: &mut impl Transport,
    channel: &mut SecureChannel<P>,
    buffer: &mut SampleBuffer<B>,
    batch: usize,
) -> Result<Acknowledged, SdkError> {
    let mut plaintext = alloc::vec::Vec::new();
    let mut records = 0;
    while buffer.unsent() > 0 {
        let count = buffer.next_unsent(batch.max(1)).count();
        encode_batch(buffer.next_unsent(batch.max(1)), &mut plaintext);
        transport.send(&channel.sealer.seal(&plaintext)?)?;
        buffer.mark_sent(count);
        records += 1;
    }
    let mut acknowledged = Acknowledged::default();
    for _ in 0..records {
        let len = transport.receive(receive)?;
        match channel.opener.open(&receive[..len])? {
            Record::Data(ack) => {
                acknowledged.samples += buffer.acknowledge(AckSequences::parse(&ack)?.iter());
                #[cfg(feature = "resumption")]
                if let Some(ticket) = crate::sample::ack_ticket(&ack)? {
                    acknowledged.ticket = Some(ticket);
                }
                #[cfg(feature = "anchor-updates")]
                acknowledged
                    .anchor_statements
                    .extend(crate::sample::ack_anchor_statements(&ack)?);
            }
            Record::KeyUpdate => {}
            Record::Close => return Err(SdkError::Transport),
        }
    }
    Ok(acknowledged)
}

/// Resumes with `ticket` over `transport`: RM1 out, RM2 into `buf` (40
/// bytes are enough), and the resumed session, whose channel sends as a
/// full handshake's does. Any failure (the HSP refused the ticket and
/// closed, or RM2 did not verify) leaves the ticket used up: make a full
/// handshake on a new connection.
pub fn resume_in<P: CryptoProvider>(
    buf: &mut [u8],
    transport: &mut impl Transport,
    ticket: Ticket,
    rng: &mut (impl RngCore + CryptoRng + ?Sized),
) -> Result<Resumed<P>, SdkError> {
    let (rm1, resumption) = ticket.resume::<P>(rng);
    transport.send(&rm1)?;
    let len = transport.receive(buf)?;
    resumption.handle(&buf[..len])
}
