//! The responder fed arbitrary messages at each of its states: as M1, as M3
//! after an honest M1, and as a factor answer after an honest M3. It must refuse
//! with an error, never panic, and never establish a session from garbage.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use vitalgate_core::credential::{
    Credential, CredentialBody, KeyProtection, KnownCredential, KnownCredentials, Role, RoleSet,
    TrustStore,
};
use vitalgate_core::factor::{FactorKind, FactorMessage};
use vitalgate_core::handshake::{Initiator, InitiatorConfig, PeerDirectory, Responder, ResponderConfig};
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::UnixTime;

const NOW: UnixTime = UnixTime(1_800_000_000);

struct World {
    trust: TrustStore,
    hsp_known: KnownCredentials,
    device_known: KnownCredentials,
    initiator: InitiatorConfig<AwsLc>,
    responder: ResponderConfig<AwsLc>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let key = |b: u8| SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes([b; 32]));
        let ttp = key(1);
        let mut trust = TrustStore::new();
        trust.add_issuer::<AwsLc>(ttp.public_key());
        let issue = |serial, role, subject: &str, holder: &dyn Signer| {
            let body = CredentialBody {
                serial,
                role,
                subject: subject.as_bytes().to_vec(),
                public_key: holder.public_key(),
                not_before: 1_700_000_000,
                not_after: 1_900_000_000,
                key_protection: KeyProtection::Software,
            };
            Credential::issue::<AwsLc>(body, &ttp).expect("issue")
        };
        let hsp = issue(1, Role::Hsp, "hsp", &key(2));
        let device = issue(2, Role::Device, "device", &key(3));
        let mut hsp_known = KnownCredentials::new();
        hsp_known
            .insert_verified::<AwsLc>(&trust, device.clone(), RoleSet::only(Role::Device), NOW)
            .expect("device");
        let mut device_known = KnownCredentials::new();
        device_known
            .insert_verified::<AwsLc>(&trust, hsp.clone(), RoleSet::only(Role::Hsp), NOW)
            .expect("hsp");
        World {
            initiator: InitiatorConfig::new(
                Box::new(key(3)),
                KnownCredential::new::<AwsLc>(device),
                RoleSet::only(Role::Hsp),
            ),
            responder: ResponderConfig::new(
                Box::new(key(2)),
                KnownCredential::new::<AwsLc>(hsp),
                RoleSet::only(Role::Device),
            ),
            trust,
            hsp_known,
            device_known,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let hsp_peers = PeerDirectory { trust: &w.trust, known: &w.hsp_known };
    let device_peers = PeerDirectory { trust: &w.trust, known: &w.device_known };
    let prefilter = InMemoryReplayCache::new(8);
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let Some((&stage, message)) = data.split_first() else { return };

    match stage % 3 {
        0 => {
            let _ = Responder::handle_m1(&w.responder, message, NOW, &mut rng, &prefilter);
        }
        1 => {
            let (m1, _) = Initiator::start(&w.initiator, &mut rng).expect("m1");
            let (_, r) = Responder::handle_m1(&w.responder, &m1, NOW, &mut rng, &prefilter).expect("m2");
            assert!(r.handle_m3(message, NOW, &hsp_peers).is_err(), "garbage M3 accepted");
        }
        _ => {
            let (m1, i) = Initiator::start(&w.initiator, &mut rng).expect("m1");
            let (m2, r) = Responder::handle_m1(&w.responder, &m1, NOW, &mut rng, &prefilter).expect("m2");
            let (m3, _) = i.handle_m2(&m2, NOW, &device_peers).expect("m2").send_m3(&[]).expect("m3");
            let r = r.handle_m3(&m3, NOW, &hsp_peers).expect("m3");
            let challenge = FactorMessage { kind: FactorKind::Otp, payload: vec![0; 8] };
            let (_, waiting) = r.challenge(&[challenge]).expect("challenge");
            assert!(waiting.handle(message).is_err(), "garbage factor answer accepted");
        }
    }
});
