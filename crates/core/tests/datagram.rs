//! The datagram mode's records: each opens once, in any order, on the other
//! side only; refusals do not end the channel.

mod common;

use common::*;
use vitalgate_core::channel::Record;
use vitalgate_core::datagram::{Datagram, DatagramChannel, RECORD_OVERHEAD, REPLAY_WINDOW};
use vitalgate_core::provider::CryptoProvider;
use vitalgate_core::ChannelError;

fn channels<P: CryptoProvider>() -> (DatagramChannel<P>, DatagramChannel<P>) {
    let world = World::<P>::new();
    let t = run(&world, &mut no_tamper());
    (
        t.initiator.expect("i").into_datagram_channel(),
        t.responder.expect("r").into_datagram_channel(),
    )
}

for_each_provider!(
    datagram_records_open_in_any_order_once_each => any_order_once,
    refused_datagrams_leave_the_channel_open => refusals_do_not_close,
    datagram_keys_are_not_the_stream_keys => keys_of_their_own,
    a_datagram_close_ends_the_direction => close_ends,
);

fn any_order_once<P: CryptoProvider>() {
    let (mut device, mut hsp) = channels::<P>();
    let records: Vec<Vec<u8>> = (0..100u8)
        .map(|n| device.sealer.seal(&[n; 30]).expect("seal"))
        .collect();
    assert!(records.iter().all(|r| r.len() == 30 + RECORD_OVERHEAD));
    assert!(records
        .iter()
        .all(|r| matches!(Datagram::parse(r), Ok(Datagram::Record(_)))));
    // Reversed within the window, each twice: the first copy opens, the second is a replay.
    for n in (40..100usize).rev() {
        assert_eq!(
            hsp.opener.open(&records[n]),
            Ok(Record::Data(vec![n as u8; 30]))
        );
        assert_eq!(hsp.opener.open(&records[n]), Err(ChannelError::Replayed));
    }
    // 99 is the highest: 99 - 64 = 35 and below are outside the window.
    assert_eq!(
        hsp.opener.open(&records[99 - REPLAY_WINDOW as usize]),
        Err(ChannelError::Replayed)
    );
    assert_eq!(hsp.opener.replays_refused(), 61);
    // The other direction has its own key and numbering.
    let ack = hsp.sealer.seal(b"ack").expect("seal");
    assert_eq!(device.opener.open(&ack), Ok(Record::Data(b"ack".to_vec())));
    // A record does not open in the direction it was sent from.
    assert_eq!(device.opener.open(&records[1]), Err(ChannelError::Forged));
}

fn refusals_do_not_close<P: CryptoProvider>() {
    let (mut device, mut hsp) = channels::<P>();
    let first = device.sealer.seal(b"first").expect("seal");
    let second = device.sealer.seal(b"second").expect("seal");
    let mut forged = second.clone();
    forged[RECORD_OVERHEAD] ^= 1;
    let mut renumbered = second.clone();
    renumbered[3] ^= 1; // the header is authenticated: another sequence number fails
    assert_eq!(hsp.opener.open(&forged), Err(ChannelError::Forged));
    assert_eq!(hsp.opener.open(&renumbered), Err(ChannelError::Forged));
    assert_eq!(hsp.opener.open(&second[..10]), Err(ChannelError::Truncated));
    assert_eq!(hsp.opener.forgeries_refused(), 2);
    // A forgery did not move the window: both records still open.
    assert_eq!(
        hsp.opener.open(&second),
        Ok(Record::Data(b"second".to_vec()))
    );
    assert_eq!(hsp.opener.open(&first), Ok(Record::Data(b"first".to_vec())));
}

fn keys_of_their_own<P: CryptoProvider>() {
    let world = World::<P>::new();
    let t = run(&world, &mut no_tamper());
    let mut stream = t.initiator.expect("i").into_channel();
    let mut datagrams = t.responder.expect("r").into_datagram_channel();
    let record = stream.sealer.seal(b"vitals").expect("seal");
    let mut as_datagram = vec![0x80, 0, 0, 0];
    as_datagram.extend_from_slice(&record);
    assert_eq!(
        datagrams.opener.open(&as_datagram),
        Err(ChannelError::Forged)
    );
}

fn close_ends<P: CryptoProvider>() {
    let (mut device, mut hsp) = channels::<P>();
    let data = device.sealer.seal(b"last").expect("seal");
    let close = device.sealer.seal_close().expect("close");
    assert_eq!(device.sealer.seal(b"more"), Err(ChannelError::Closed));
    assert_eq!(hsp.opener.open(&close), Ok(Record::Close));
    assert_eq!(hsp.opener.open(&data), Err(ChannelError::Closed));
}
