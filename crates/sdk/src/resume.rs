//! Resumption: after a full handshake the HSP sends a ticket in its first
//! acknowledgement; the next connection presents it (RM1, 60 bytes) and is
//! confirmed (RM2, 40 bytes) in one round trip with a fresh X25519 exchange
//! and no signature, on any replica (`vitalgate_core::resumption`).
//!
//! ```text
//!   send_and_collect_acks ──► Acknowledged { ticket: Some(ticket) }   keep it in RAM
//!   ticket.resume(rng) ──RM1──►
//!   DeviceResumption::handle(RM2) ──► Resumed ──► into_channel
//! ```
//!
//! A ticket is for one attempt, accepted or not (the HSP claims it once, on
//! any replica), so [`Ticket::resume`] consumes it; after a refusal the
//! device makes a full handshake. It lives [`Ticket::valid_secs`] from its
//! arrival and never outlives the credential or a revocation (the HSP checks
//! both again). Keep it in RAM only: its secret is a session key's parent.

use core::fmt;

use rand_core::{CryptoRng, RngCore};
use vitalgate_core::factor::AssuranceLevel;
use vitalgate_core::provider::{CryptoProvider, Secret32};
use vitalgate_core::resumption::{Resumed, Resumer, RM1_LEN, TICKET_LEN};

use crate::SdkError;

/// A resumption ticket and its secret, as an acknowledgement carried them.
pub struct Ticket {
    pub(crate) ticket: [u8; TICKET_LEN],
    pub(crate) psk: Secret32,
    pub(crate) assurance: AssuranceLevel,
    pub(crate) valid_secs: u32,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("assurance", &self.assurance)
            .field("valid_secs", &self.valid_secs)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// Seconds from its arrival after which the HSP refuses it.
    pub fn valid_secs(&self) -> u32 {
        self.valid_secs
    }

    /// The assurance level a resumed session has.
    pub fn assurance(&self) -> AssuranceLevel {
        self.assurance
    }

    /// RM1 for this ticket with a fresh ephemeral key from `rng`; the ticket
    /// is used up whatever the answer.
    pub fn resume<P: CryptoProvider>(
        self,
        rng: &mut (impl RngCore + CryptoRng + ?Sized),
    ) -> ([u8; RM1_LEN], DeviceResumption<P>) {
        let (rm1, resumer) = Resumer::start(&self.ticket, &self.psk, self.assurance, rng);
        (rm1, DeviceResumption { resumer })
    }
}

/// A resumption waiting for the HSP's RM2.
pub struct DeviceResumption<P: CryptoProvider> {
    resumer: Resumer<P>,
}

impl<P: CryptoProvider> fmt::Debug for DeviceResumption<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceResumption").finish_non_exhaustive()
    }
}

impl<P: CryptoProvider> DeviceResumption<P> {
    /// Checks RM2 (the HSP proved the ticket key and the fresh exchange):
    /// only then is there a channel to send with. A refusal from the HSP
    /// arrives as anything but a valid RM2 (it closes the stream): make a
    /// full handshake.
    pub fn handle(self, rm2: &[u8]) -> Result<Resumed<P>, SdkError> {
        Ok(self.resumer.handle_rm2(rm2)?)
    }
}
