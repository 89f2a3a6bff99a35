//! Session resumption: one round trip, a fresh ephemeral exchange, no
//! signatures (TLS 1.3's `psk_dhe_ke`, cut to the bytes a radio can afford).
//!
//! After a full handshake the responder gives the initiator a ticket and the
//! ticket's secret (the PSK) inside the secure channel. To resume, on any
//! replica that holds the ticket keys:
//!
//! ```text
//! RM1  I -> R : version(1) | flags(1) = RESUME | e_I(32) | ticket(18) | binder(8)   60 bytes
//! RM2  R -> I : e_R(32) | confirmation(8)                                          40 bytes
//! ticket      : key id(1) | nonce(8) | ( serial(8) | assurance(1) ) XOR keystream
//! ```
//!
//! - The ticket is sealed under a ticket key the responder's replicas derive
//!   from a shared root and rotate by epoch; its id names the epoch. The
//!   ticket carries no tag of its own: the PSK is a PRF of the ticket key and
//!   every ticket byte, so only the ticket key's holder could have made the
//!   PSK, and the binder (a MAC under the PSK over RM1) fails for a forged
//!   or altered ticket as it does for a ticket presented without its PSK.
//!   Its contents are encrypted, and each ticket is used once, so nothing in
//!   RM1 links two sessions of one device (identity hiding).
//! - The binder is checked before anything that costs the responder more
//!   than a few hashes: a stolen ticket without the PSK gets nothing, and
//!   does not even use the ticket up.
//! - Keys come from HKDF over the PSK and the fresh X25519 secret, salted
//!   with the transcript: a PSK or ticket key stolen later reveals no session
//!   (forward secrecy), and each key is bound to this exchange.
//! - RM2's confirmation (the responder's key confirmation, binding the
//!   assurance level the ticket carries) must verify before the initiator
//!   sends anything. The initiator's key confirmation is its first record:
//!   no record opens under keys that did not come from the PSK and `e_I`.
//! - Single use is the caller's: [`ResumeRequest::ticket_id`] is claimed in
//!   the store shared by the replicas, and [`ResumeRequest::accept`] takes
//!   the claim's outcome, as the full handshake's durable replay entry does.
//!   What the ticket names (the credential's serial) is checked again by the
//!   caller, so a ticket never outlives its credential or a revocation.
//!
//! Binder and confirmation are HKDF-Expand (HMAC-SHA256) cut to 8 bytes, as
//! EDHOC's 8-byte MACs for constrained links: a forgery is a 2^-64 guess
//! per attempt, and each attempt costs a round trip.

use core::fmt;
use core::marker::PhantomData;

use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;

use crate::channel::SecureChannel;
use crate::error::{DecodeError, Error, HandshakeError};
use crate::factor::AssuranceLevel;
use crate::handshake::{Schedule, Side, VERSION_1};
use crate::provider::{CryptoProvider, Secret32};

/// M1's flag for a resumption (RM1); the full handshake's M1 never sets it.
pub const FLAG_RESUME: u8 = 0x04;
/// The length of a ticket.
pub const TICKET_LEN: usize = 1 + NONCE_LEN + SEALED_LEN;
/// The length of RM1.
pub const RM1_LEN: usize = 2 + 32 + TICKET_LEN + BINDER_LEN;
/// The length of RM2.
pub const RM2_LEN: usize = 32 + CONFIRMATION_LEN;

const NONCE_LEN: usize = 8;
const SEALED_LEN: usize = 8 + 1;
const BINDER_LEN: usize = 8;
const CONFIRMATION_LEN: usize = 8;
/// Where the binder starts in RM1: what it covers comes before it.
const BOUND_LEN: usize = RM1_LEN - BINDER_LEN;

mod label {
    pub(super) const TRANSCRIPT: &[u8] = b"vitalgate/1 resumption transcript";
    pub(super) const TICKET_SEAL: &[u8] = b"vg1 ticket seal";
    pub(super) const TICKET_PSK: &[u8] = b"vg1 ticket psk";
    pub(super) const TICKET_ID: &[u8] = b"vg1 ticket id";
    pub(super) const BINDER: &[u8] = b"vg1 resume initiator binder";
    pub(super) const CONFIRMATION: &[u8] = b"vg1 resume responder confirmation";
    pub(super) const PRK_OUT: &[u8] = b"vg1 resume prk out";
}

/// Whether a first message asks to resume rather than start a handshake.
pub fn is_resumption(first_message: &[u8]) -> bool {
    first_message.len() >= 2 && first_message[1] & FLAG_RESUME != 0
}

/// One epoch's ticket key, held by every replica of the responder.
#[derive(Clone)]
pub struct TicketKey {
    id: u8,
    key: Secret32,
}

impl TicketKey {
    /// The key with its one-byte id (the caller's epoch number, cut to a byte).
    pub fn new(id: u8, key: Secret32) -> Self {
        Self { id, key }
    }

    /// The id its tickets carry.
    pub fn id(&self) -> u8 {
        self.id
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a ticket grants: the credential it was issued to and the assurance
/// level the full handshake reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicketGrant {
    /// The initiator's credential serial.
    pub serial: u64,
    /// The level a resumed session has.
    pub assurance: AssuranceLevel,
}

/// A ticket and its secret, made by the responder and sent to the initiator
/// inside an established session (never in the clear: the PSK is the key).
pub struct IssuedTicket {
    /// What the initiator presents in RM1.
    pub ticket: [u8; TICKET_LEN],
    /// What the initiator proves it holds.
    pub psk: Secret32,
}

impl fmt::Debug for IssuedTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTicket").finish_non_exhaustive()
    }
}

/// Makes a ticket for `grant` under `key`.
pub fn issue_ticket<P: CryptoProvider>(
    key: &TicketKey,
    grant: TicketGrant,
    rng: &mut (impl RngCore + CryptoRng + ?Sized),
) -> IssuedTicket {
    let mut ticket = [0u8; TICKET_LEN];
    ticket[0] = key.id;
    rng.fill_bytes(&mut ticket[1..1 + NONCE_LEN]);
    let sealed = &mut ticket[1 + NONCE_LEN..];
    sealed[..8].copy_from_slice(&grant.serial.to_be_bytes());
    sealed[8] = grant.assurance as u8;
    apply_ticket_keystream::<P>(key, &mut ticket);
    let psk = ticket_psk::<P>(key, &ticket);
    IssuedTicket { ticket, psk }
}

fn apply_ticket_keystream<P: CryptoProvider>(key: &TicketKey, ticket: &mut [u8; TICKET_LEN]) {
    let mut stream = [0u8; SEALED_LEN];
    P::hkdf_expand(
        &key.key,
        &[label::TICKET_SEAL, &ticket[..1 + NONCE_LEN]],
        &mut stream,
    );
    ticket[1 + NONCE_LEN..]
        .iter_mut()
        .zip(stream)
        .for_each(|(b, k)| *b ^= k);
}

fn ticket_psk<P: CryptoProvider>(key: &TicketKey, ticket: &[u8; TICKET_LEN]) -> Secret32 {
    let mut psk = Secret32([0u8; 32]);
    P::hkdf_expand(&key.key, &[label::TICKET_PSK, ticket], &mut psk.0);
    psk
}

fn binder<P: CryptoProvider>(psk: &Secret32, th1: &[u8; 32]) -> [u8; BINDER_LEN] {
    let mut binder = [0u8; BINDER_LEN];
    P::hkdf_expand(psk, &[label::BINDER, th1], &mut binder);
    binder
}

/// The key schedule after RM2's ephemeral key: the PRK over the PSK and the
/// X25519 secret, salted with the transcript.
fn prk<P: CryptoProvider>(psk: &Secret32, shared: &Secret32, th2: &[u8; 32]) -> Secret32 {
    P::hkdf_extract(th2, &[psk.expose().as_slice(), shared.expose()].concat())
}

fn confirmation<P: CryptoProvider>(
    prk: &Secret32,
    th2: &[u8; 32],
    assurance: AssuranceLevel,
) -> [u8; CONFIRMATION_LEN] {
    let mut tag = [0u8; CONFIRMATION_LEN];
    P::hkdf_expand(
        prk,
        &[label::CONFIRMATION, th2, &[assurance as u8]],
        &mut tag,
    );
    tag
}

fn resumed<P: CryptoProvider>(
    prk: &Secret32,
    th2: &[u8; 32],
    side: Side,
    assurance: AssuranceLevel,
) -> Resumed<P> {
    let prk_out = Schedule::<P>::key(prk, label::PRK_OUT, th2);
    let (send_key, receive_key, session_id) = Schedule::<P>::application_keys(&prk_out, side);
    Resumed {
        side,
        assurance,
        session_id,
        send_key,
        receive_key,
        provider: PhantomData,
    }
}

/// The initiator, after RM1: waiting for RM2.
pub struct Resumer<P: CryptoProvider> {
    secret: P::EphemeralSecret,
    psk: Secret32,
    th1: [u8; 32],
    binder: [u8; BINDER_LEN],
    assurance: AssuranceLevel,
}

impl<P: CryptoProvider> fmt::Debug for Resumer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resumer")
            .field("assurance", &self.assurance)
            .finish_non_exhaustive()
    }
}

impl<P: CryptoProvider> Resumer<P> {
    /// RM1 for `ticket`, proving `psk`; `assurance` is the level the ticket
    /// was issued with (the responder confirms it in RM2). A ticket is for
    /// one attempt: forget it once RM1 is sent, whatever happens next.
    pub fn start(
        ticket: &[u8; TICKET_LEN],
        psk: &Secret32,
        assurance: AssuranceLevel,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
    ) -> ([u8; RM1_LEN], Self) {
        let mut random = Secret32([0u8; 32]);
        rng.fill_bytes(&mut random.0);
        let (secret, e_i) = P::x25519_keypair(random);
        let mut rm1 = [0u8; RM1_LEN];
        rm1[0] = VERSION_1;
        rm1[1] = FLAG_RESUME;
        rm1[2..34].copy_from_slice(&e_i);
        rm1[34..BOUND_LEN].copy_from_slice(ticket);
        let th1 = P::sha256(&[label::TRANSCRIPT, &rm1[..BOUND_LEN]]);
        let binder = binder::<P>(psk, &th1);
        rm1[BOUND_LEN..].copy_from_slice(&binder);
        let resumer = Self {
            secret,
            psk: psk.clone(),
            th1,
            binder,
            assurance,
        };
        (rm1, resumer)
    }

    /// Checks RM2: the responder proved the ticket key (through the PSK)
    /// and the fresh exchange. Only then is there a session to send with.
    pub fn handle_rm2(self, rm2: &[u8]) -> Result<Resumed<P>, Error> {
        if rm2.len() != RM2_LEN {
            return Err(DecodeError::WrongLength {
                len: rm2.len(),
                expected: RM2_LEN,
            }
            .into());
        }
        let mut e_r = [0u8; 32];
        e_r.copy_from_slice(&rm2[..32]);
        let shared = P::x25519_agree(self.secret, &e_r).map_err(|_| HandshakeError::BadKeyShare)?;
        let th2 = Schedule::<P>::next(&self.th1, &[&self.binder, &e_r]);
        let prk = prk::<P>(&self.psk, &shared, &th2);
        let expected = confirmation::<P>(&prk, &th2, self.assurance);
        if !bool::from(expected.ct_eq(&rm2[32..])) {
            return Err(HandshakeError::DecryptFailed.into());
        }
        Ok(resumed(&prk, &th2, Side::Initiator, self.assurance))
    }
}

/// RM1 whose binder verified: the responder knows what the ticket grants,
/// and has spent only hashes on it. The caller checks the grant (the
/// credential still valid and unrevoked, the binding, the policy), claims
/// [`ResumeRequest::ticket_id`] once across replicas, then accepts.
pub struct ResumeRequest<P: CryptoProvider> {
    grant: TicketGrant,
    ticket_id: [u8; 32],
    psk: Secret32,
    e_i: [u8; 32],
    th1: [u8; 32],
    binder: [u8; BINDER_LEN],
    provider: PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> fmt::Debug for ResumeRequest<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeRequest")
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl<P: CryptoProvider> ResumeRequest<P> {
    /// Checks RM1: exact length, version and flag, a ticket key with the
    /// ticket's id among `keys` (the epochs the caller still accepts), and
    /// the binder. Any failure is [`HandshakeError::TicketRefused`], which
    /// does not say which check failed.
    pub fn open(rm1: &[u8], keys: &[TicketKey]) -> Result<Self, Error> {
        if rm1.len() != RM1_LEN {
            return Err(DecodeError::WrongLength {
                len: rm1.len(),
                expected: RM1_LEN,
            }
            .into());
        }
        if rm1[0] != VERSION_1 {
            return Err(HandshakeError::UnsupportedVersion { offered: rm1[0] }.into());
        }
        if rm1[1] != FLAG_RESUME {
            return Err(DecodeError::InvalidValue {
                field: "RM1 flags",
                value: rm1[1].into(),
            }
            .into());
        }
        let mut ticket = [0u8; TICKET_LEN];
        ticket.copy_from_slice(&rm1[34..BOUND_LEN]);
        let key = keys
            .iter()
            .find(|k| k.id == ticket[0])
            .ok_or(HandshakeError::TicketRefused)?;
        let psk = ticket_psk::<P>(key, &ticket);
        let th1 = P::sha256(&[label::TRANSCRIPT, &rm1[..BOUND_LEN]]);
        let expected = binder::<P>(&psk, &th1);
        if !bool::from(expected.ct_eq(&rm1[BOUND_LEN..])) {
            return Err(HandshakeError::TicketRefused.into());
        }
        let ticket_id = P::sha256(&[label::TICKET_ID, &ticket]);
        apply_ticket_keystream::<P>(key, &mut ticket);
        let sealed = &ticket[1 + NONCE_LEN..];
        let mut serial = [0u8; 8];
        serial.copy_from_slice(&sealed[..8]);
        // Only the ticket key's holder made this ticket (the binder shows
        // it): a level the encoding lacks means a key compromised or a bug.
        let assurance =
            AssuranceLevel::from_wire(sealed[8]).ok_or(HandshakeError::TicketRefused)?;
        let mut e_i = [0u8; 32];
        e_i.copy_from_slice(&rm1[2..34]);
        let mut binder = [0u8; BINDER_LEN];
        binder.copy_from_slice(&rm1[BOUND_LEN..]);
        Ok(Self {
            grant: TicketGrant {
                serial: u64::from_be_bytes(serial),
                assurance,
            },
            ticket_id,
            psk,
            e_i,
            th1,
            binder,
            provider: PhantomData,
        })
    }

    /// What the ticket grants.
    pub fn grant(&self) -> TicketGrant {
        self.grant
    }

    /// The ticket's identity for the single-use claim (a hash of the whole
    /// ticket, so it names nothing).
    pub fn ticket_id(&self) -> [u8; 32] {
        self.ticket_id
    }

    /// RM2 and the resumed session. `first_use` is the outcome of claiming
    /// [`ResumeRequest::ticket_id`] in the store the replicas share: a ticket
    /// seen before is refused as [`HandshakeError::Replayed`].
    pub fn accept(
        self,
        first_use: bool,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
    ) -> Result<([u8; RM2_LEN], Resumed<P>), Error> {
        if !first_use {
            return Err(HandshakeError::Replayed.into());
        }
        let mut random = Secret32([0u8; 32]);
        rng.fill_bytes(&mut random.0);
        let (secret, e_r) = P::x25519_keypair(random);
        let shared = P::x25519_agree(secret, &self.e_i).map_err(|_| HandshakeError::BadKeyShare)?;
        let th2 = Schedule::<P>::next(&self.th1, &[&self.binder, &e_r]);
        let prk = prk::<P>(&self.psk, &shared, &th2);
        let mut rm2 = [0u8; RM2_LEN];
        rm2[..32].copy_from_slice(&e_r);
        rm2[32..].copy_from_slice(&confirmation::<P>(&prk, &th2, self.grant.assurance));
        Ok((
            rm2,
            resumed(&prk, &th2, Side::Responder, self.grant.assurance),
        ))
    }
}

/// A resumed session: the channel keys, the level the ticket carried, and
/// an identifier the same on both sides.
pub struct Resumed<P: CryptoProvider> {
    side: Side,
    assurance: AssuranceLevel,
    session_id: [u8; 16],
    send_key: Secret32,
    receive_key: Secret32,
    provider: PhantomData<fn() -> P>,
}

impl<P: CryptoProvider> Resumed<P> {
    /// Which end this party was.
    pub fn side(&self) -> Side {
        self.side
    }
    /// The assurance level the ticket carried from the full handshake.
    pub fn assurance(&self) -> AssuranceLevel {
        self.assurance
    }
    /// A public identifier of this session, the same on both sides.
    pub fn session_id(&self) -> [u8; 16] {
        self.session_id
    }
    /// The secure channel for application records.
    pub fn into_channel(self) -> SecureChannel<P> {
        SecureChannel::new(self.send_key.clone(), self.receive_key.clone())
    }
    /// The secure channel for a lossy link ([`crate::datagram`]).
    pub fn into_datagram_channel(self) -> crate::datagram::DatagramChannel<P> {
        crate::datagram::DatagramChannel::new(&self.send_key, &self.receive_key)
    }
}

impl<P: CryptoProvider> fmt::Debug for Resumed<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resumed")
            .field("side", &self.side)
            .field("assurance", &self.assurance)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "aws-lc"))]
mod tests {
    use super::*;
    use crate::provider::AwsLc;
    use core::sync::atomic::{AtomicU8, Ordering};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// A generator seeded differently on each call: every ticket, nonce
    /// and ephemeral key in these tests is fresh.
    fn fresh_rng() -> ChaCha20Rng {
        static SEED: AtomicU8 = AtomicU8::new(1);
        ChaCha20Rng::from_seed([SEED.fetch_add(1, Ordering::Relaxed); 32])
    }

    type P = AwsLc;

    fn key(id: u8, byte: u8) -> TicketKey {
        TicketKey::new(id, Secret32::from_bytes([byte; 32]))
    }

    const GRANT: TicketGrant = TicketGrant {
        serial: 0x0102_0304_0506_0708,
        assurance: AssuranceLevel::Aal2,
    };

    fn resume(
        keys: &[TicketKey],
        issued: &IssuedTicket,
        assurance: AssuranceLevel,
    ) -> Result<(Resumed<P>, Resumed<P>), Error> {
        let (rm1, resumer) =
            Resumer::<P>::start(&issued.ticket, &issued.psk, assurance, &mut fresh_rng());
        let request = ResumeRequest::<P>::open(&rm1, keys)?;
        let (rm2, server) = request.accept(true, &mut fresh_rng())?;
        let client = resumer.handle_rm2(&rm2)?;
        Ok((client, server))
    }

    /// RM1 for `issued`, at the level the test tickets carry.
    fn start(issued: &IssuedTicket) -> ([u8; RM1_LEN], Resumer<P>) {
        Resumer::<P>::start(
            &issued.ticket,
            &issued.psk,
            GRANT.assurance,
            &mut fresh_rng(),
        )
    }

    #[test]
    fn a_ticket_resumes_with_working_channels_in_100_bytes() {
        let keys = [key(7, 1)];
        let issued = issue_ticket::<P>(&keys[0], GRANT, &mut fresh_rng());
        let (rm1, resumer) = start(&issued);
        let request = ResumeRequest::<P>::open(&rm1, &keys).expect("binder");
        assert_eq!(request.grant(), GRANT);
        let (rm2, server) = request.accept(true, &mut fresh_rng()).expect("rm2");
        let client = resumer.handle_rm2(&rm2).expect("confirmation");
        assert_eq!(rm1.len() + rm2.len(), 100);
        assert_eq!(client.session_id(), server.session_id());
        assert_eq!(client.assurance(), AssuranceLevel::Aal2);
        let mut client = client.into_channel();
        let mut server = server.into_channel();
        let record = client.sealer.seal(b"spo2 97").expect("seal");
        assert_eq!(
            server.opener.open(&record).expect("open"),
            crate::channel::Record::Data(b"spo2 97".to_vec())
        );
        let back = server.sealer.seal(b"ack").expect("seal");
        assert!(client.opener.open(&back).is_ok());
    }

    #[test]
    fn tickets_are_unlinkable_and_name_nothing_in_the_clear() {
        let keys = [key(7, 1)];
        let a = issue_ticket::<P>(&keys[0], GRANT, &mut fresh_rng());
        let b = issue_ticket::<P>(&keys[0], GRANT, &mut fresh_rng());
        // Same device, same grant: beyond the epoch's id byte the tickets
        // share nothing, and the serial's bytes appear in neither.
        assert_ne!(a.ticket[1..], b.ticket[1..]);
        let serial = GRANT.serial.to_be_bytes();
        assert!(!a.ticket.windows(8).any(|w| w == serial));
        assert_ne!(a.psk.expose(), b.psk.expose());
    }

    #[test]
    fn a_ticket_without_its_psk_gets_nothing() {
        let keys = [key(7, 1)];
        let issued = issue_ticket::<P>(&keys[0], GRANT, &mut fresh_rng());
        let thief = IssuedTicket {
            ticket: issued.ticket,
            psk: Secret32::from_bytes([9; 32]),
        };
        let refused = resume(&keys, &thief, GRANT.assurance).expect_err("refused");
        assert_eq!(refused, HandshakeError::TicketRefused.into());
    }

    #[test]
    fn another_devices_psk_does_not_open_a_ticket() {
        let keys = [key(7, 1)];
        let mine = issue_ticket::<P>(&keys[0], GRANT, &mut fresh_rng());
        let theirs = issue_ticket::<P>(
            &keys[0],
            TicketGrant {
                serial: 99,
                ..GRANT
            },
            &mut fresh_rng(),
        );
        let mixed = IssuedTicket {
            ticket: theirs.ticket,
            psk: mine.psk.clone(),
        };
        assert_eq!(
            resume(&keys, &mixed, GRANT.assurance).expect_err("refused"),
            HandshakeError::TicketRefused.into()
        );
    }

    #[test]
    fn an_altered_ticket_or_an_unknown_epoch_is_refused() {
        let keys = [key(7, 1)];
        let issued = issue_ticket::<P>(&keys[0], GRANT, &mut fresh_rng());
        for byte in 1..TICKET_LEN {
            let mut altered = IssuedTicket {
                ticket: issued.ticket,
                psk: issued.psk.clone(),
            };
            altered.ticket[byte] ^= 1;
            assert_eq!(
                resume(&keys, &altered, GRANT.assurance).expect_err("refused"),
                HandshakeError::TicketRefused.into(),
                "byte {byte}"
            );
        }
        // The epoch rotated out: its key is no longer among those accepted.
        let later = [key(8, 2)];
        assert_eq!(
            resume(&later, &issued, GRANT.assurance).expect_err("refused"),
            HandshakeError::TicketRefused.into()
        );
        // Same id, another key (the id byte wrapped round): refused too.
        let wrapped = [key(7, 3)];
        assert!(resume(&wrapped, &issued, GRANT.assurance).is_err());
    }

    #[test]
    fn a_ticket_claimed_before_is_refused() {
        let keys = [key(7, 1)];
        let issued = issue_ticket::<P>(&keys[0], GRANT, &mut fresh_rng());
        let (rm1, _) = start(&issued);
        let request = ResumeRequest::<P>::open(&rm1, &keys).expect("binder");
        let again = ResumeRequest::<P>::open(&rm1, &keys).expect("binder");
        assert_eq!(request.ticket_id(), again.ticket_id());
        assert_eq!(
            again.accept(false, &mut fresh_rng()).expect_err("refused"),
            HandshakeError::Replayed.into()
        );
    }

    #[test]
    fn a_changed_rm2_or_level_fails_the_confirmation() {
        let keys = [key(7, 1)];
        let issued = issue_ticket::<P>(&keys[0], GRANT, &mut fresh_rng());
        // The initiator expects another level than the ticket carries.
        assert_eq!(
            resume(&keys, &issued, AssuranceLevel::Aal3).expect_err("refused"),
            HandshakeError::DecryptFailed.into()
        );
        let (rm1, resumer) = start(&issued);
        let request = ResumeRequest::<P>::open(&rm1, &keys).expect("binder");
        let (mut rm2, _) = request.accept(true, &mut fresh_rng()).expect("rm2");
        rm2[RM2_LEN - 1] ^= 1;
        assert_eq!(
            resumer.handle_rm2(&rm2).expect_err("refused"),
            HandshakeError::DecryptFailed.into()
        );
    }

    #[test]
    fn malformed_rm1_is_refused_before_any_key_is_used() {
        let keys = [key(7, 1)];
        assert!(matches!(
            ResumeRequest::<P>::open(&[1, FLAG_RESUME], &keys),
            Err(Error::Decode(DecodeError::WrongLength { .. }))
        ));
        let mut rm1 = [0u8; RM1_LEN];
        rm1[0] = 2;
        rm1[1] = FLAG_RESUME;
        assert!(matches!(
            ResumeRequest::<P>::open(&rm1, &keys),
            Err(Error::Handshake(HandshakeError::UnsupportedVersion {
                offered: 2
            }))
        ));
        rm1[0] = VERSION_1;
        rm1[1] = FLAG_RESUME | 1;
        assert!(matches!(
            ResumeRequest::<P>::open(&rm1, &keys),
            Err(Error::Decode(DecodeError::InvalidValue { .. }))
        ));
        assert!(is_resumption(&[1, FLAG_RESUME]));
        assert!(!is_resumption(&[1, 0]));
    }
}
