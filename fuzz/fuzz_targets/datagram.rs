//! The datagram channel's opener fed arbitrary datagrams (each a two-byte
//! length and its bytes) on an established session, as a lossy link would
//! deliver them: in any order, repeated, changed. It must never panic, every
//! record it opens must be one the honest sealer made, each at most once, and
//! nothing opens after the close.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalgate_core::channel::Record;
use vitalgate_core::datagram::Datagram;
use vitalgate_fuzz_common::{honest_datagrams, split_records};

fuzz_target!(|data: &[u8]| {
    let (records, plain, mut channel) = honest_datagrams();
    let mut opened = vec![false; records.len()];
    for datagram in split_records(data) {
        let Ok(Datagram::Record(record)) = Datagram::parse(datagram) else {
            continue;
        };
        let Ok(got) = channel.opener.open(record) else {
            continue;
        };
        let index = records
            .iter()
            .position(|honest| honest.as_slice() == record)
            .expect("a record not sealed here opened");
        assert!(!opened[index], "a record opened twice");
        opened[index] = true;
        assert_eq!(got, plain[index]);
        if got == Record::Close {
            assert!(
                channel.opener.open(record).is_err(),
                "the close did not end it"
            );
            break;
        }
    }
});
