//! The portal's JSON bodies, query strings and forwarded-address headers,
//! parsed by the same axum extractors into the same request types as its
//! handlers, then taken through the handlers' steps before the store
//! (base64url fields, OPAQUE's KE1, KE3 and registration messages). The first
//! byte picks the endpoint. Nothing may panic, and no KE3 may open a login
//! on an unknown user's fake record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitalgate_hsp::fuzzing::{portal_input, PortalInput};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let kind = PortalInput::ALL[usize::from(pick) % PortalInput::ALL.len()];
    let _ = portal_input(kind, input);
});
