//! The secure channel's record opener fed a stream of arbitrary records
//! (each a two-byte length and its bytes) on an established session with
//! small key epochs. It must never panic, and every record it opens must be
//! the honest sealer's record at that place in the stream: no forgery,
//! reordering, replay or truncation past a close.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalgate_core::channel::Record;
use vitalgate_fuzz_common::{honest_records, split_records};

fuzz_target!(|data: &[u8]| {
    let (records, plain, mut channel) = honest_records();
    let mut opened = 0;
    for record in split_records(data) {
        let Ok(got) = channel.opener.open(record) else {
            continue;
        };
        assert!(
            opened < records.len(),
            "a record opened after the stream ended"
        );
        assert_eq!(
            record,
            records[opened].as_slice(),
            "a record not sealed here opened"
        );
        assert_eq!(got, plain[opened]);
        opened += 1;
        if got == Record::Close {
            break;
        }
    }
});
