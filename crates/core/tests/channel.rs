//! The secure channel: records open once, in order, on the other side only.

mod common;

use common::*;
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::replay::{InMemoryReplayCache, ReplayCache, Replayed};
use vitalgate_core::ChannelError;

fn channels<P: CryptoProvider>() -> (SecureChannel<P>, SecureChannel<P>) {
    let world = World::<P>::new();
    let t = run(&world, &mut no_tamper());
    (
        t.initiator.expect("i").into_channel(),
        t.responder.expect("r").into_channel(),
    )
}

for_each_provider!(
    replayed_reordered_forged_truncated_records_are_refused => refused_records,
    a_failure_closes_the_opener => failure_closes,
    close_ends_the_stream => close_ends,
    keys_rotate_after_a_bound_and_on_request => keys_rotate,
    oversized_records_are_refused => oversized,
);

fn refused_records<P: CryptoProvider>() {
    type Mangle = fn(&[Vec<u8>]) -> Vec<u8>;
    let cases: [(&str, Mangle, ChannelError); 5] = [
        ("replayed", |r| r[0].clone(), ChannelError::Forged),
        ("reordered", |r| r[2].clone(), ChannelError::Forged),
        (
            "forged",
            |r| {
                let mut x = r[1].clone();
                x[0] ^= 1;
                x
            },
            ChannelError::Forged,
        ),
        (
            "truncated",
            |r| r[1][..r[1].len() - 1].to_vec(),
            ChannelError::Forged,
        ),
        (
            "cut to a stub",
            |r| r[1][..10].to_vec(),
            ChannelError::Truncated,
        ),
    ];
    for (case, mangle, expected) in cases {
        let (mut i, mut r) = channels::<P>();
        let records: Vec<Vec<u8>> = (0..3u8)
            .map(|n| i.sealer.seal(&[n; 20]).expect("seal"))
            .collect();
        assert_eq!(r.opener.open(&records[0]), Ok(Record::Data(vec![0; 20])));
        assert_eq!(r.opener.open(&mangle(&records)), Err(expected), "{case}");
    }
    // A record sealed by a party does not open on its own side.
    let (mut i, _) = channels::<P>();
    let own = i.sealer.seal(b"x").expect("seal");
    assert_eq!(i.opener.open(&own), Err(ChannelError::Forged));
}

fn failure_closes<P: CryptoProvider>() {
    let (mut i, mut r) = channels::<P>();
    let good = i.sealer.seal(b"spo2=97").expect("seal");
    assert_eq!(
        r.opener.open(b"garbage garbage garbage"),
        Err(ChannelError::Forged)
    );
    assert_eq!(r.opener.open(&good), Err(ChannelError::Closed));
}

fn close_ends<P: CryptoProvider>() {
    let (mut i, mut r) = channels::<P>();
    let close = i.sealer.seal_close().expect("close");
    assert_eq!(i.sealer.seal(b"late"), Err(ChannelError::Closed));
    assert_eq!(r.opener.open(&close), Ok(Record::Close));
    assert_eq!(r.opener.open(&close), Err(ChannelError::Closed));
}

fn keys_rotate<P: CryptoProvider>() {
    let (mut i, mut r) = channels::<P>();
    i.set_records_per_key(3);
    r.set_records_per_key(3);
    let mut sealed = Vec::new();
    for n in 0..10u8 {
        sealed.push(i.sealer.seal(&[n]).expect("seal"));
        if n == 4 {
            let update = i.sealer.seal_key_update().expect("update");
            sealed.push(update);
        }
    }
    for record in &sealed {
        assert!(r.opener.open(record).is_ok());
    }
    assert_eq!(r.opener.records_opened(), 11);
    // A receiver that does not rotate at the same bound cannot follow.
    let (mut i, mut r) = channels::<P>();
    i.set_records_per_key(2);
    let records: Vec<_> = (0..3u8)
        .map(|n| i.sealer.seal(&[n]).expect("seal"))
        .collect();
    assert!(r.opener.open(&records[0]).is_ok());
    assert!(r.opener.open(&records[1]).is_ok());
    assert_eq!(r.opener.open(&records[2]), Err(ChannelError::Forged));
}

fn oversized<P: CryptoProvider>() {
    let (mut i, mut r) = channels::<P>();
    let too_big = vec![0u8; vitalgate_core::channel::MAX_PLAINTEXT_LEN + 1];
    assert!(matches!(
        i.sealer.seal(&too_big),
        Err(ChannelError::TooLarge { .. })
    ));
    let wire = vec![0u8; vitalgate_core::channel::MAX_RECORD_LEN + 1];
    assert!(matches!(
        r.opener.open(&wire),
        Err(ChannelError::TooLarge { .. })
    ));
}

#[test]
fn replay_cache_expires_and_stays_bounded() {
    let cache = InMemoryReplayCache::new(3);
    assert_eq!(cache.check_and_insert(&[1; 32], 100, 10), Ok(()));
    assert_eq!(cache.check_and_insert(&[1; 32], 100, 50), Err(Replayed));
    // Past its expiry the key is forgotten.
    assert_eq!(cache.check_and_insert(&[1; 32], 200, 100), Ok(()));
    for k in 2..10u8 {
        assert_eq!(cache.check_and_insert(&[k; 32], 300, 101), Ok(()));
        assert!(cache.len() <= 3);
    }
    // The newest keys are still refused.
    assert_eq!(cache.check_and_insert(&[9; 32], 300, 102), Err(Replayed));
}

#[test]
fn secrets_print_nothing_of_themselves() {
    let secret = vitalgate_core::provider::Secret32::from_bytes([0xAB; 32]);
    let shown = format!("{secret:?}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab"),
        "{shown}"
    );
}
