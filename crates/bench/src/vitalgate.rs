//! vitalgate's device handshake, both sides in one thread, in memory.

use rand_core::OsRng;
use vitalgate_core::credential::{
    Credential, CredentialBody, KeyProtection, KnownCredential, KnownCredentials, Role, RoleSet,
    TrustStore,
};
use vitalgate_core::factor::{AssuranceLevel, FactorSet};
use vitalgate_core::handshake::{
    Initiator, InitiatorConfig, InitiatorProgress, PeerDirectory, Responder, ResponderConfig,
};
use vitalgate_core::provider::{CryptoProvider, Secret32};
use vitalgate_core::replay::{InMemoryReplayCache, ReplayCache as _};
use vitalgate_core::resumption::{issue_ticket, ResumeRequest, Resumer, TicketGrant, TicketKey};
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::UnixTime;

const NOW: UnixTime = UnixTime(1_800_000_000);

/// An enrolled device and HSP, with the caches a real HSP keeps.
pub(crate) struct Setup<P: CryptoProvider> {
    trust: TrustStore,
    device_known: KnownCredentials,
    hsp_known: KnownCredentials,
    initiator: InitiatorConfig<P>,
    responder: ResponderConfig<P>,
    prefilter: InMemoryReplayCache,
    durable: InMemoryReplayCache,
    ticket_key: TicketKey,
}

fn issue<P: CryptoProvider>(
    ttp: &dyn Signer,
    serial: u64,
    role: Role,
    subject: &str,
    key: &dyn Signer,
) -> Credential {
    let body = CredentialBody {
        serial,
        role,
        subject: subject.as_bytes().to_vec(),
        public_key: key.public_key(),
        not_before: 1_700_000_000,
        not_after: 1_900_000_000,
        key_protection: KeyProtection::Software,
    };
    Credential::issue::<P>(body, ttp).expect("issue")
}

impl<P: CryptoProvider> Setup<P> {
    /// `full`: credentials in full both ways, as on first contact.
    pub(crate) fn new(full: bool) -> Self {
        let key = |b: u8| SoftwareSigner::<P>::from_seed(&Secret32::from_bytes([b; 32]));
        let ttp = key(1);
        let mut trust = TrustStore::new();
        trust.add_issuer::<P>(ttp.public_key());
        let hsp_cred = issue::<P>(&ttp, 1, Role::Hsp, "hsp.general-hospital", &key(2));
        let device_cred = issue::<P>(&ttp, 2, Role::Device, "pseudonym-7f3a9c", &key(3));
        let mut device_known = KnownCredentials::new();
        let mut hsp_known = KnownCredentials::new();
        if !full {
            device_known
                .insert_verified::<P>(&trust, hsp_cred.clone(), RoleSet::only(Role::Hsp), NOW)
                .expect("hsp");
            hsp_known
                .insert_verified::<P>(
                    &trust,
                    device_cred.clone(),
                    RoleSet::only(Role::Device),
                    NOW,
                )
                .expect("device");
        }
        let mut initiator = InitiatorConfig::new(
            Box::new(key(3)),
            KnownCredential::new::<P>(device_cred),
            RoleSet::only(Role::Hsp),
        );
        initiator.send_full_credential = full;
        initiator.want_peer_credential = full;
        let responder = ResponderConfig::new(
            Box::new(key(2)),
            KnownCredential::new::<P>(hsp_cred),
            RoleSet::only(Role::Device),
        );
        Self {
            trust,
            device_known,
            hsp_known,
            initiator,
            responder,
            prefilter: InMemoryReplayCache::new(1 << 16),
            durable: InMemoryReplayCache::new(1 << 16),
            ticket_key: TicketKey::new(1, Secret32::from_bytes([4; 32])),
        }
    }

    /// One resumption, as a device moving to another replica runs it: RM1,
    /// the binder and the ticket opened, the ticket's single use claimed,
    /// RM2, the confirmation checked, and the next ticket issued (the
    /// replica's part of every session). Returns the bytes sent each way.
    pub(crate) fn resume(&self) -> (usize, usize) {
        let grant = TicketGrant {
            serial: 2,
            assurance: AssuranceLevel::Aal1,
        };
        let held = issue_ticket::<P>(&self.ticket_key, grant, &mut OsRng);
        let (rm1, resumer) =
            Resumer::<P>::start(&held.ticket, &held.psk, grant.assurance, &mut OsRng);
        let request =
            ResumeRequest::<P>::open(&rm1, std::slice::from_ref(&self.ticket_key)).expect("rm1");
        let first_use = self
            .durable
            .check_and_insert(&request.ticket_id(), NOW.0 + 3600, NOW.0)
            .is_ok();
        let (rm2, _server) = request.accept(first_use, &mut OsRng).expect("rm2");
        let _next = issue_ticket::<P>(&self.ticket_key, grant, &mut OsRng);
        resumer.handle_rm2(&rm2).expect("rm2 verifies");
        (rm1.len(), rm2.len())
    }

    /// One complete handshake; returns the bytes sent each way.
    pub(crate) fn handshake(&self) -> (usize, usize) {
        let device_peers = PeerDirectory {
            trust: &self.trust,
            known: &self.device_known,
        };
        let hsp_peers = PeerDirectory {
            trust: &self.trust,
            known: &self.hsp_known,
        };
        let (m1, i) = Initiator::start(&self.initiator, &mut OsRng).expect("m1");
        let (m2, r) = Responder::handle_m1(&self.responder, &m1, NOW, &mut OsRng, &self.prefilter)
            .expect("m2");
        let (m3, i) = i
            .handle_m2(&m2, NOW, &device_peers)
            .expect("m2")
            .send_m3(&[])
            .expect("m3");
        let r = r.handle_m3(&m3, NOW, &hsp_peers).expect("m3");
        let claim = r.replay_entry().claim_in(&self.durable, NOW.0);
        let (m4, _session) = r
            .finish(FactorSet::EMPTY, FactorSet::EMPTY, claim)
            .expect("m4");
        match i.handle(&m4).expect("m4") {
            InitiatorProgress::Established(_) => {}
            InitiatorProgress::FactorRound(_) => panic!("no factors were asked for"),
        }
        (m1.len() + m3.len(), m2.len() + m4.len())
    }
}
