//! The credential decoder: arbitrary bytes never panic, and whatever decodes
//! encodes back to the same bytes (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalgate_core::credential::Credential;

fuzz_target!(|data: &[u8]| {
    if let Ok(credential) = Credential::decode(data) {
        assert_eq!(credential.encode(), data);
    }
});
