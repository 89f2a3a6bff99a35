//! The handshake between two honest parties, and every way it must refuse.
//! Threats 1 to 7 and 14 of THREATS.md are each shown here.

mod common;

use common::*;
use vitalgate_core::channel::Record;
use vitalgate_core::credential::{
    CredentialRef, CredentialResolver, KeyProtection, KnownCredentials, Resolution, Role, RoleSet,
};
use vitalgate_core::factor::{AssuranceLevel, FactorKind, FactorSet};
use vitalgate_core::handshake::{Initiator, InitiatorClock, PeerDirectory, Responder, VersionSet};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::signer::SoftwareSigner;
use vitalgate_core::{CredentialError, DecodeError, Error, HandshakeError, UnixTime};

for_each_provider!(
    honest_parties_agree_by_reference => honest_parties_agree_by_reference,
    honest_parties_agree_with_full_credentials => honest_parties_agree_with_full_credentials,
    every_changed_byte_fails_the_handshake => every_changed_byte_fails_the_handshake,
    timestamps_at_the_window_edge => timestamps_at_the_window_edge,
    initiator_checks_responder_time => initiator_checks_responder_time,
    clockless_device_adopts_signed_time => clockless_device_adopts_signed_time,
    clockless_device_refuses_a_time_before_its_floor => clockless_device_refuses_a_time_before_its_floor,
    replayed_first_message_is_refused => replayed_first_message_is_refused,
    recorded_handshake_replayed_never_completes => recorded_handshake_replayed_never_completes,
    durable_record_refuses_second_completion => durable_record_refuses_second_completion,
    reflection_is_refused => reflection_is_refused,
    unknown_key_share_is_refused => unknown_key_share_is_refused,
    key_compromise_impersonation_is_refused => key_compromise_impersonation_is_refused,
    bad_credentials_are_refused => bad_credentials_are_refused,
    references_must_resolve_to_one_credential => references_must_resolve_to_one_credential,
    out_of_order_truncated_and_long_messages => out_of_order_truncated_and_long_messages,
    versions_cannot_be_downgraded => versions_cannot_be_downgraded,
    expected_subject_is_enforced => expected_subject_is_enforced,
    paired_devices_authenticate_and_probers_get_silence => paired_devices,
);

/// Device to device: the responding device answers only an M1 that proves the
/// pairing secret; a prober without it gets no M2 at all, so no credential.
fn paired_devices<P: CryptoProvider>() {
    let pairing = || vitalgate_core::provider::Secret32::from_bytes([0x42; 32]);
    let paired_world = || {
        let mut w = World::<P>::new();
        let watch = w.pki.party(Role::Device, "pseudonym-watch", 0xC1);
        w.device_known = KnownCredentials::new();
        w.device_known
            .insert_verified::<P>(
                &w.pki.trust,
                watch.credential.clone(),
                RoleSet::only(Role::Device),
                NOW,
            )
            .expect("watch");
        w.initiator.peer_roles = RoleSet::only(Role::Device);
        w.initiator.pairing_key = Some(pairing());
        w.responder = watch.responder_config(RoleSet::only(Role::Device));
        w.responder.pairing_key = Some(pairing());
        w
    };
    let w = paired_world();
    let t = run(&w, &mut no_tamper());
    assert_eq!(t.messages[0].len(), 50);
    assert!(
        t.both_established(),
        "{:?} {:?}",
        t.initiator.err(),
        t.responder.err()
    );
    assert_eq!(t.initiator.expect("i").peer().subject(), b"pseudonym-watch");

    // A prober without the secret, and one with the wrong secret: no answer.
    let mut w = paired_world();
    w.initiator.pairing_key = None;
    let t = run(&w, &mut no_tamper());
    assert_eq!(t.messages.len(), 1, "the responder must not answer");
    assert!(matches!(
        t.responder.err(),
        Some(Error::Decode(DecodeError::WrongLength { .. }))
    ));
    let mut w = paired_world();
    w.initiator.pairing_key = Some(vitalgate_core::provider::Secret32::from_bytes([0x43; 32]));
    let t = run(&w, &mut no_tamper());
    assert_eq!(t.messages.len(), 1, "the responder must not answer");
    assert_eq!(
        t.responder.err(),
        Some(Error::Handshake(HandshakeError::PairingRequired))
    );
}

fn honest_parties_agree_by_reference<P: CryptoProvider>() {
    let world = World::<P>::new();
    let t = run(&world, &mut no_tamper());
    let sizes: Vec<usize> = t.messages.iter().map(Vec::len).collect();
    // M1 34, M2 109, M3 94, M4 17: 254 bytes in all (the goal is at most 256).
    assert_eq!(sizes, [34, 109, 94, 17]);
    assert!(t.total_bytes() <= 256);
    let i = t.initiator.expect("initiator session");
    let r = t.responder.expect("responder session");
    assert_eq!(i.session_id(), r.session_id());
    assert_eq!(i.peer(), &world.hsp.credential);
    assert_eq!(r.peer(), &world.device.credential);
    assert_eq!(r.factors(), FactorSet::EMPTY.with(FactorKind::Card));
    assert_eq!(i.assurance(), AssuranceLevel::Aal1);
    assert_eq!(r.peer_time(), NOW.0 as u32);

    // Records flow both ways, each opening only on the other side.
    let (mut ic, mut rc) = (i.into_channel(), r.into_channel());
    let record = ic.sealer.seal(b"hr=72").expect("seal");
    assert_eq!(rc.opener.open(&record), Ok(Record::Data(b"hr=72".to_vec())));
    let back = rc.sealer.seal(b"ack 1").expect("seal");
    assert_eq!(ic.opener.open(&back), Ok(Record::Data(b"ack 1".to_vec())));
}

fn honest_parties_agree_with_full_credentials<P: CryptoProvider>() {
    let world = World::<P>::new().full_credentials();
    let t = run(&world, &mut no_tamper());
    assert!(
        t.both_established(),
        "{:?} {:?}",
        t.initiator.err(),
        t.responder.err()
    );
    // The HSP's 144-byte and the device's 140-byte credentials ride along:
    // 522 bytes in all (the goal is at most 600).
    let sizes: Vec<usize> = t.messages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [34, 245, 226, 17]);
    assert!(t.total_bytes() <= 600, "{} bytes", t.total_bytes());
    assert_eq!(
        t.initiator.as_ref().expect("i").session_id(),
        t.responder.as_ref().expect("r").session_id()
    );
}

/// Threat 1: one byte changed anywhere in any message fails the handshake on
/// both sides. A changed M4 fails the initiator; the responder's session then
/// never sees a valid record, since the initiator never sends one.
fn every_changed_byte_fails_the_handshake<P: CryptoProvider>() {
    let world_ref = World::<P>::new();
    let world_full = World::<P>::new().full_credentials();
    for world in [&world_ref, &world_full] {
        let honest = run(world, &mut no_tamper());
        for (index, message) in honest.messages.iter().enumerate() {
            for position in 0..message.len() {
                let mut tamper = |i: usize, m: &mut Vec<u8>| {
                    if i == index {
                        m[position] ^= 0x01;
                    }
                };
                // A fresh prefilter per run: each run is a new handshake.
                let world_run = World::<P> {
                    prefilter: InMemoryReplayCache::new(16),
                    durable: InMemoryReplayCache::new(16),
                    ..clone_world(world)
                };
                let t = run(&world_run, &mut tamper);
                assert!(
                    t.initiator.is_err(),
                    "M{} byte {position} changed: initiator established",
                    index + 1
                );
                if index < 3 {
                    assert!(
                        t.responder.is_err(),
                        "M{} byte {position} changed: responder established",
                        index + 1
                    );
                }
            }
        }
    }
}

/// Rebuilds a world with the same parties (worlds hold non-clonable signers).
fn clone_world<P: CryptoProvider>(world: &World<P>) -> World<P> {
    let mut w = World::<P>::new();
    w.initiator.send_full_credential = world.initiator.send_full_credential;
    w.initiator.want_peer_credential = world.initiator.want_peer_credential;
    w.initiator.peer_subject = world.initiator.peer_subject.clone();
    w.device_known = world.device_known.clone();
    w.hsp_known = world.hsp_known.clone();
    w
}

/// Threat 3, at the responder: the initiator's (encrypted) timestamp at the
/// window's edge is accepted, one second past it either way refused, with the reason.
fn timestamps_at_the_window_edge<P: CryptoProvider>() {
    let mut world = World::<P>::new();
    // Let the initiator accept any responder time, so only the responder's check runs.
    world.initiator.skew_window_secs = 1000;
    let cases: [(i64, Option<HandshakeError>); 4] = [
        (-30, None),
        (30, None),
        (-31, Some(HandshakeError::TimestampTooOld { skew_secs: 31 })),
        (
            31,
            Some(HandshakeError::TimestampInFuture { skew_secs: 31 }),
        ),
    ];
    for (seed, (offset, expected)) in cases.into_iter().enumerate() {
        let initiator_now = UnixTime((NOW.0 as i64 + offset) as u64);
        let t = run_at(
            &world,
            initiator_now,
            NOW,
            &mut no_tamper(),
            10 + seed as u8,
            2,
        );
        match expected {
            None => assert!(
                t.both_established(),
                "offset {offset}: {:?}",
                t.responder.err()
            ),
            Some(reason) => {
                assert_eq!(
                    t.responder.err(),
                    Some(Error::Handshake(reason)),
                    "offset {offset}"
                )
            }
        }
    }
}

/// Threat 3, at the initiator: the responder's timestamp, checked before its signature.
fn initiator_checks_responder_time<P: CryptoProvider>() {
    let mut world = World::<P>::new();
    world.responder.skew_window_secs = 1000;
    for (seed, (offset, ok)) in [(-30i64, true), (30, true), (-31, false), (31, false)]
        .into_iter()
        .enumerate()
    {
        let responder_now = UnixTime((NOW.0 as i64 + offset) as u64);
        let t = run_at(
            &world,
            NOW,
            responder_now,
            &mut no_tamper(),
            20 + seed as u8,
            2,
        );
        assert_eq!(
            t.initiator.is_ok(),
            ok,
            "offset {offset}: {:?}",
            t.initiator.err()
        );
        if !ok {
            let skew = 31;
            let expected = if offset < 0 {
                HandshakeError::TimestampTooOld { skew_secs: skew }
            } else {
                HandshakeError::TimestampInFuture { skew_secs: skew }
            };
            assert_eq!(t.initiator.err(), Some(Error::Handshake(expected)));
        }
    }
}

fn clockless_device_adopts_signed_time<P: CryptoProvider>() {
    let mut world = World::<P>::new();
    world.initiator.clock = InitiatorClock::AdoptResponderTime;
    // The device's clock reads 1970: it adopts the HSP's signed time instead.
    let t = run_at(&world, UnixTime(0), NOW, &mut no_tamper(), 1, 2);
    assert!(t.both_established(), "{:?}", t.responder.err());
    assert_eq!(t.initiator.expect("i").peer_time(), NOW.0 as u32);
}

/// Threat 13 (a stolen HSP key): a clockless device never goes back in time.
/// Having seen a time (its floor), it refuses a responder whose signed time
/// is earlier by more than the skew window, so an old key cannot pretend it
/// is still before its credential's end; within the window it accepts.
fn clockless_device_refuses_a_time_before_its_floor<P: CryptoProvider>() {
    let mut world = World::<P>::new();
    world.initiator.clock = InitiatorClock::AdoptResponderTime;
    let window = u64::from(world.initiator.skew_window_secs);
    let later = UnixTime(NOW.0 + window + 3600);
    let t = run_at(&world, later, NOW, &mut no_tamper(), 1, 2);
    assert_eq!(
        t.initiator.err(),
        Some(Error::Handshake(HandshakeError::TimestampTooOld {
            skew_secs: window + 3600
        }))
    );
    let t = run_at(
        &world,
        UnixTime(NOW.0 + window),
        NOW,
        &mut no_tamper(),
        3,
        4,
    );
    assert!(t.both_established(), "{:?}", t.initiator.err());
}

/// Threat 2: the same first message twice to one replica is refused at once,
/// before any key exchange.
fn replayed_first_message_is_refused<P: CryptoProvider>() {
    let world = World::<P>::new();
    let (m1, _) = Initiator::start(&world.initiator, &mut rng(1)).expect("start");
    Responder::handle_m1(&world.responder, &m1, NOW, &mut rng(2), &world.prefilter).expect("first");
    let again = Responder::handle_m1(&world.responder, &m1, NOW, &mut rng(3), &world.prefilter);
    assert_eq!(
        again.err(),
        Some(Error::Handshake(HandshakeError::Replayed))
    );
}

/// Threat 2: a recorded complete handshake replayed to another replica (a fresh
/// pre-filter) never completes: the new M2 changes every later key, so the
/// recorded M3 fails.
fn recorded_handshake_replayed_never_completes<P: CryptoProvider>() {
    let world = World::<P>::new();
    let recorded = run(&world, &mut no_tamper());
    assert!(recorded.both_established());
    let other_replica = InMemoryReplayCache::new(16);
    let (_m2, r) = Responder::handle_m1(
        &world.responder,
        &recorded.messages[0],
        NOW,
        &mut rng(9),
        &other_replica,
    )
    .expect("a new replica answers the recorded M1");
    let result = r.handle_m3(&recorded.messages[2], NOW, &world.hsp_peers());
    assert_eq!(
        result.err(),
        Some(Error::Handshake(HandshakeError::DecryptFailed))
    );
    // And on the first replica, the recorded M1 is already refused.
    let again = Responder::handle_m1(
        &world.responder,
        &recorded.messages[0],
        NOW,
        &mut rng(9),
        &world.prefilter,
    );
    assert_eq!(
        again.err(),
        Some(Error::Handshake(HandshakeError::Replayed))
    );
}

/// Threat 2: the durable record shared by replicas refuses a second completion
/// with the same initiator ephemeral key, even on a replica whose pre-filter
/// never saw it.
fn durable_record_refuses_second_completion<P: CryptoProvider>() {
    let world = World::<P>::new();
    assert!(run(&world, &mut no_tamper()).both_established());
    // Replica B: its own pre-filter, the shared durable cache. The initiator's
    // RNG seed is the same, so its ephemeral key is the one already used.
    let replica_b = World::<P> {
        durable: InMemoryReplayCache::new(16),
        ..World::<P>::new()
    };
    let shared_durable = &world.durable;
    let (m1, i) = Initiator::start(&replica_b.initiator, &mut rng(1)).expect("start");
    let (m2, r) = Responder::handle_m1(
        &replica_b.responder,
        &m1,
        NOW,
        &mut rng(5),
        &replica_b.prefilter,
    )
    .expect("fresh pre-filter");
    let i = i
        .handle_m2(&m2, NOW, &replica_b.device_peers())
        .expect("m2");
    let (m3, _) = i.send_m3(&[]).expect("m3");
    let r = r
        .handle_m3(&m3, NOW, &replica_b.hsp_peers())
        .expect("m3 verifies");
    let claim = r.replay_entry().claim_in(shared_durable, NOW.0);
    let finished = r.finish(FactorSet::EMPTY, FactorSet::EMPTY, claim);
    assert_eq!(
        finished.err(),
        Some(Error::Handshake(HandshakeError::Replayed))
    );
}

/// Threat 4: role labels in every key and signature stop reflection.
fn reflection_is_refused<P: CryptoProvider>() {
    let world = World::<P>::new();
    let t = run(&world, &mut no_tamper());
    // The responder's M2 sent back to it as a first message.
    let reflected = Responder::handle_m1(
        &world.responder,
        &t.messages[1],
        NOW,
        &mut rng(7),
        &world.prefilter,
    );
    assert!(matches!(
        reflected,
        Err(Error::Decode(DecodeError::WrongLength { .. }))
    ));

    // A device answering device-to-device: its own M1 reflected to its own
    // responder, whose M2 comes back to it. Same keys, same transcript, but the
    // credential is its own: refused.
    let mut d2d = World::<P>::new();
    d2d.initiator.peer_roles = RoleSet::only(Role::Device);
    d2d.responder = d2d.device.responder_config(RoleSet::only(Role::Device));
    d2d.device_known = KnownCredentials::new();
    d2d.device_known
        .insert_verified::<P>(
            &d2d.pki.trust,
            d2d.device.credential.clone(),
            RoleSet::only(Role::Device),
            NOW,
        )
        .expect("own credential");
    let t = run(&d2d, &mut no_tamper());
    assert_eq!(
        t.initiator.err(),
        Some(Error::Handshake(HandshakeError::PeerIsSelf))
    );

    // A responder's factor challenge sent back to it as the initiator's answer:
    // the directions have different labels, so it does not decrypt.
    let (m1, i) = Initiator::start(&world.initiator, &mut rng(40)).expect("start");
    let (m2, r) = Responder::handle_m1(&world.responder, &m1, NOW, &mut rng(41), &world.prefilter)
        .expect("m2");
    let (m3, _i) = i
        .handle_m2(&m2, NOW, &world.device_peers())
        .expect("m2")
        .send_m3(&[])
        .expect("m3");
    let r = r.handle_m3(&m3, NOW, &world.hsp_peers()).expect("m3");
    let challenge = vitalgate_core::factor::FactorMessage {
        kind: FactorKind::Otp,
        payload: vec![1, 2, 3],
    };
    let (challenge_bytes, waiting) = r.challenge(&[challenge]).expect("challenge");
    assert_eq!(
        waiting.handle(&challenge_bytes).err(),
        Some(Error::Handshake(HandshakeError::DecryptFailed))
    );
}

/// Threat 5: a second enrolled device cannot take over an honest device's
/// handshake: it cannot read the honest M3, and its own M3 does not fit the
/// honest transcript. The responder's session is never attributed to it.
fn unknown_key_share_is_refused<P: CryptoProvider>() {
    let mut world = World::<P>::new();
    let mallory = world.pki.party(Role::Device, "pseudonym-mallory", 0xD0);
    world
        .hsp_known
        .insert_verified::<P>(
            &world.pki.trust,
            mallory.credential.clone(),
            RoleSet::only(Role::Device),
            NOW,
        )
        .expect("mallory is enrolled");
    let mallory_config = mallory.initiator_config(RoleSet::only(Role::Hsp));

    // The honest device starts; Mallory forwards its M1 to the HSP.
    let (m1, honest) = Initiator::start(&world.initiator, &mut rng(1)).expect("start");
    let (m2, r) = Responder::handle_m1(&world.responder, &m1, NOW, &mut rng(2), &world.prefilter)
        .expect("m2");
    // Mallory runs its own handshake alongside to get an M3 signed with its key …
    let (m1_m, mallory_i) = Initiator::start(&mallory_config, &mut rng(3)).expect("start");
    let (m2_m, _r2) =
        Responder::handle_m1(&world.responder, &m1_m, NOW, &mut rng(4), &world.prefilter)
            .expect("m2");
    let (m3_mallory, _) = mallory_i
        .handle_m2(&m2_m, NOW, &world.device_peers())
        .expect("mallory's m2")
        .send_m3(&[])
        .expect("m3");
    // … and substitutes it for the honest device's M3: refused.
    let honest = honest
        .handle_m2(&m2, NOW, &world.device_peers())
        .expect("honest m2");
    let (m3_honest, _) = honest.send_m3(&[]).expect("m3");
    assert_ne!(m3_honest, m3_mallory);
    assert_eq!(
        r.handle_m3(&m3_mallory, NOW, &world.hsp_peers()).err(),
        Some(Error::Handshake(HandshakeError::DecryptFailed))
    );
    // Relayed unchanged, the honest M3 gives a session attributed to the honest device.
    let world2 = World::<P>::new();
    let t = run(&world2, &mut no_tamper());
    assert_eq!(
        t.responder.expect("r").peer().subject(),
        b"pseudonym-7f3a9c"
    );
}

/// Threat 6: an attacker holding a device's long-term key tries to impersonate
/// the HSP to that device. Whatever credential it presents, it cannot sign as the HSP.
fn key_compromise_impersonation_is_refused<P: CryptoProvider>() {
    let world = World::<P>::new();
    let stolen_key = || Box::new(SoftwareSigner::<P>::from_seed(&seed(world.device.key_seed)));
    // 1. The HSP's credential with the stolen device key: the signature fails.
    let mut attacker = world.hsp.responder_config(RoleSet::only(Role::Device));
    attacker.signer = stolen_key();
    let t = run(
        &World {
            responder: attacker,
            ..clone_world(&world)
        },
        &mut no_tamper(),
    );
    assert_eq!(
        t.initiator.err(),
        Some(Error::Handshake(HandshakeError::BadSignature))
    );

    // 2. The device's own credential and key, sent in full: a device is not an HSP.
    let mut attacker = world.device.responder_config(RoleSet::only(Role::Device));
    attacker.always_send_full_credential = true;
    let t = run(
        &World {
            responder: attacker,
            ..clone_world(&world)
        },
        &mut no_tamper(),
    );
    assert!(matches!(
        t.initiator.err(),
        Some(Error::Credential(CredentialError::WrongRole {
            found: Role::Device,
            ..
        }))
    ));

    // 3. A self-made HSP credential for the stolen key: not issued by the TTP.
    let rogue_ttp = SoftwareSigner::<P>::from_seed(&seed(0xEE));
    let mut pki = Pki::<P>::new();
    let body = pki.body(Role::Hsp, "hsp.general-hospital", &*stolen_key());
    let forged =
        vitalgate_core::credential::Credential::issue::<P>(body, &rogue_ttp).expect("issue");
    let mut attacker = world.hsp.responder_config(RoleSet::only(Role::Device));
    attacker.signer = stolen_key();
    attacker.credential = vitalgate_core::credential::KnownCredential::new::<P>(forged);
    attacker.always_send_full_credential = true;
    let t = run(
        &World {
            responder: attacker,
            ..clone_world(&world)
        },
        &mut no_tamper(),
    );
    assert!(matches!(
        t.initiator.err(),
        Some(Error::Credential(CredentialError::UnknownIssuer { .. }))
    ));
}

/// Threat 7: self-signed, expired, not-yet-valid, wrong-role and revoked
/// credentials, each refused with its own error.
fn bad_credentials_are_refused<P: CryptoProvider>() {
    type Check = fn(&Error) -> bool;
    let cases: [(&str, Check); 5] = [
        ("self-signed", |e| {
            matches!(e, Error::Credential(CredentialError::UnknownIssuer { .. }))
        }),
        ("expired", |e| {
            matches!(e, Error::Credential(CredentialError::Expired { .. }))
        }),
        ("not yet valid", |e| {
            matches!(e, Error::Credential(CredentialError::NotYetValid { .. }))
        }),
        ("wrong role", |e| {
            matches!(
                e,
                Error::Credential(CredentialError::WrongRole {
                    found: Role::Clinician,
                    ..
                })
            )
        }),
        ("revoked", |e| {
            matches!(e, Error::Credential(CredentialError::Revoked { serial: 2 }))
        }),
    ];
    for (case, check) in cases {
        let mut world = World::<P>::new().full_credentials();
        let mut body = world.device.credential.body().clone();
        let credential = match case {
            "self-signed" => {
                let own = SoftwareSigner::<P>::from_seed(&seed(world.device.key_seed));
                vitalgate_core::credential::Credential::issue::<P>(body, &own).expect("issue")
            }
            "expired" => {
                body.not_after = NOW.0 as u32 - 1;
                world.pki.issue(body)
            }
            "not yet valid" => {
                body.not_before = NOW.0 as u32 + 1;
                world.pki.issue(body)
            }
            "wrong role" => {
                body.role = Role::Clinician;
                world.pki.issue(body)
            }
            _ => {
                world.pki.trust.revoke(world.device.credential.serial());
                world.device.credential.clone()
            }
        };
        world.initiator.credential =
            vitalgate_core::credential::KnownCredential::new::<P>(credential);
        let t = run(&world, &mut no_tamper());
        let error = t.responder.expect_err(case);
        assert!(check(&error), "{case}: {error:?}");
    }

    // Revocation also reaches credentials known by reference.
    let mut world = World::<P>::new();
    world.pki.trust.revoke(world.device.credential.serial());
    let t = run(&world, &mut no_tamper());
    assert_eq!(
        t.responder.err(),
        Some(Error::Credential(CredentialError::Revoked { serial: 2 }))
    );

    // A key-protection flag the TTP did not set cannot be claimed: it is signed.
    let mut world = World::<P>::new().full_credentials();
    let mut encoded = world.device.known().encoded().to_vec();
    encoded[1] = 1; // Hardware
    let lying = vitalgate_core::credential::Credential::decode(&encoded).expect("decodes");
    assert_eq!(lying.body().key_protection, KeyProtection::Hardware);
    world.initiator.credential = vitalgate_core::credential::KnownCredential::new::<P>(lying);
    let t = run(&world, &mut no_tamper());
    assert_eq!(
        t.responder.err(),
        Some(Error::Credential(CredentialError::BadSignature))
    );
}

struct Ambiguous;
impl CredentialResolver for Ambiguous {
    fn resolve(&self, _: &CredentialRef) -> Resolution<'_> {
        Resolution::Ambiguous
    }
}

fn references_must_resolve_to_one_credential<P: CryptoProvider>() {
    // The HSP has never seen this device: unknown reference.
    let mut world = World::<P>::new();
    world.hsp_known = KnownCredentials::new();
    let t = run(&world, &mut no_tamper());
    assert_eq!(
        t.responder.err(),
        Some(Error::Credential(CredentialError::UnknownReference))
    );

    // The device does not hold the HSP's credential and did not ask for it.
    let mut world = World::<P>::new();
    world.device_known = KnownCredentials::new();
    let t = run(&world, &mut no_tamper());
    assert_eq!(
        t.initiator.err(),
        Some(Error::Credential(CredentialError::UnknownReference))
    );

    // A reference matching two credentials is refused, not guessed.
    let world = World::<P>::new();
    let (m1, i) = Initiator::start(&world.initiator, &mut rng(1)).expect("start");
    let (m2, r) = Responder::handle_m1(&world.responder, &m1, NOW, &mut rng(2), &world.prefilter)
        .expect("m2");
    let (m3, _) = i
        .handle_m2(&m2, NOW, &world.device_peers())
        .expect("m2")
        .send_m3(&[])
        .expect("m3");
    let ambiguous = PeerDirectory {
        trust: &world.pki.trust,
        known: &Ambiguous,
    };
    assert_eq!(
        r.handle_m3(&m3, NOW, &ambiguous).err(),
        Some(Error::Credential(CredentialError::AmbiguousReference))
    );
}

fn out_of_order_truncated_and_long_messages<P: CryptoProvider>() {
    let world = World::<P>::new();
    let honest = run(&world, &mut no_tamper());
    let m = &honest.messages;

    // Each message one byte short and one byte long.
    for index in 0..4 {
        for change in ["truncate", "extend"] {
            let mut tamper = |i: usize, msg: &mut Vec<u8>| {
                if i == index {
                    if change == "truncate" {
                        msg.pop();
                    } else {
                        msg.push(0);
                    }
                }
            };
            let t = run(&clone_world(&world), &mut tamper);
            assert!(t.initiator.is_err(), "M{} {change}d", index + 1);
        }
    }

    // Messages in the wrong state: M3 where M2 is awaited, M1 where M3 is, M3 where M4 is.
    let (_, i) = Initiator::start(&world.initiator, &mut rng(50)).expect("start");
    assert!(i.handle_m2(&m[2], NOW, &world.device_peers()).is_err());
    let fresh = clone_world(&world);
    let (m1, i) = Initiator::start(&fresh.initiator, &mut rng(51)).expect("start");
    let (m2, r) = Responder::handle_m1(&fresh.responder, &m1, NOW, &mut rng(52), &fresh.prefilter)
        .expect("m2");
    assert!(matches!(
        r.handle_m3(&m1, NOW, &fresh.hsp_peers()),
        Err(Error::Decode(DecodeError::Truncated { .. }))
    ));
    let (m3, i) = i
        .handle_m2(&m2, NOW, &fresh.device_peers())
        .expect("m2")
        .send_m3(&[])
        .expect("m3");
    assert!(matches!(
        i.handle(&m3),
        Err(Error::Handshake(HandshakeError::DecryptFailed))
    ));

    // A 64 MiB message is refused by its length, before any work.
    let huge = vec![0u8; 64 << 20];
    let (_, i) = Initiator::start(&world.initiator, &mut rng(53)).expect("start");
    assert!(matches!(
        i.handle_m2(&huge, NOW, &world.device_peers()),
        Err(Error::Decode(DecodeError::TooLong { .. }))
    ));
}

/// Threat 14: the version byte and the version list are bound into the transcript.
fn versions_cannot_be_downgraded<P: CryptoProvider>() {
    // An unknown version byte in M1 is refused outright.
    let world = World::<P>::new();
    let (mut m1, _) = Initiator::start(&world.initiator, &mut rng(1)).expect("start");
    m1[0] = 2;
    let refused = Responder::handle_m1(&world.responder, &m1, NOW, &mut rng(2), &world.prefilter);
    assert_eq!(
        refused.err(),
        Some(Error::Handshake(HandshakeError::UnsupportedVersion {
            offered: 2
        }))
    );

    // Both sides accept a version 2, yet version 1 was used: the initiator fell
    // back (an attacker made its version-2 attempt fail). The responder sees the
    // initiator's list, encrypted and signed in M3, and refuses the downgrade.
    let mut world = World::<P>::new();
    world.initiator.accepted_versions = VersionSet::from_bits(0b11);
    world.responder.accepted_versions = VersionSet::from_bits(0b11);
    let t = run(&world, &mut no_tamper());
    assert_eq!(
        t.responder.err(),
        Some(Error::Handshake(HandshakeError::Downgrade {
            used: 1,
            expected: 2
        }))
    );

    // If only the initiator knows version 2, version 1 is the right choice.
    let mut world = World::<P>::new();
    world.initiator.accepted_versions = VersionSet::from_bits(0b11);
    assert!(run(&world, &mut no_tamper()).both_established());
}

fn expected_subject_is_enforced<P: CryptoProvider>() {
    let mut world = World::<P>::new();
    world.initiator.peer_subject = Some(b"hsp.other-hospital".to_vec());
    let t = run(&world, &mut no_tamper());
    assert_eq!(
        t.initiator.err(),
        Some(Error::Credential(CredentialError::UnexpectedSubject))
    );
    world.initiator.peer_subject = Some(b"hsp.general-hospital".to_vec());
    assert!(run(&clone_world(&world), &mut no_tamper()).both_established());
}
