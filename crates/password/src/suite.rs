//! The cipher suite: the one @serenity-kit/opaque uses, so a browser interoperates.

use argon2::{Algorithm, Argon2, Params, Version};
use opaque_ke::{CipherSuite, Ristretto255, TripleDh};
use sha2::Sha512;

use crate::PasswordError;

/// ristretto255 for the OPRF and 3DH, SHA-512, Argon2id as the key stretching
/// function: exactly what @serenity-kit/opaque 1.1.0 (opaque-ke 4.0.1) builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultSuite;

impl CipherSuite for DefaultSuite {
    type OprfCs = Ristretto255;
    type KeyExchange = TripleDh<Ristretto255, Sha512>;
    type Ksf = Argon2<'static>;
}

/// A cipher suite this crate runs: ristretto255 for the OPRF and 3DH with
/// SHA-512; only the key stretching function varies.
///
/// Every such suite has the same message sizes (the `*_LEN` constants), and the
/// server's side never runs the KSF, so [`DefaultSuite`] and the RFC 9807 test
/// vectors' suite (KSF `opaque_ke::ksf::Identity`) share every line of server
/// code. Implemented for every matching [`CipherSuite`].
pub trait Suite:
    CipherSuite<OprfCs = Ristretto255, KeyExchange = TripleDh<Ristretto255, Sha512>>
{
}

impl<T> Suite for T where
    T: CipherSuite<OprfCs = Ristretto255, KeyExchange = TripleDh<Ristretto255, Sha512>>
{
}

/// Argon2id memory in KiB (64 MiB): @serenity-kit/opaque's "memory-constrained"
/// setting, RFC 9106's second recommendation.
pub const ARGON2_MEMORY_KIB: u32 = 65536;
/// Argon2id passes.
pub const ARGON2_ITERATIONS: u32 = 3;
/// Argon2id lanes.
pub const ARGON2_PARALLELISM: u32 = 4;

/// The key stretching function of [`DefaultSuite`]: Argon2id version 0x13 with
/// m = 64 MiB, t = 3, p = 4. opaque-ke salts it with sixteen zero bytes (the
/// OPRF output it stretches is already unique per user and server).
pub fn default_ksf() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .map_err(|e| PasswordError::Protocol(format!("Argon2id parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Bytes of the client's registration request (a blinded element).
pub const REGISTRATION_REQUEST_LEN: usize = 32;
/// Bytes of the server's registration response (evaluated element, server key).
pub const REGISTRATION_RESPONSE_LEN: usize = 64;
/// Bytes of the client's registration upload, which is the record the server
/// stores: client public key, masking key, envelope.
pub const RECORD_LEN: usize = 192;
/// Bytes of KE1 (blinded element, client nonce, client key share).
pub const KE1_LEN: usize = 96;
/// Bytes of KE2 (evaluated element, masking nonce, masked response, server
/// nonce, server key share, server MAC).
pub const KE2_LEN: usize = 320;
/// Bytes of KE3 (the client's MAC).
pub const KE3_LEN: usize = 64;
/// Bytes of a serialised [`ServerSetup`](crate::ServerSetup): OPRF seed, server
/// private key, the public key fake records use.
pub const SERVER_SETUP_LEN: usize = 128;
/// Bytes of a serialised [`ServerLoginState`](crate::ServerLoginState): the
/// session key and the expected client MAC.
pub const SERVER_LOGIN_STATE_LEN: usize = 128;
/// Bytes of a [`SessionKey`](crate::SessionKey) and an [`ExportKey`](crate::ExportKey).
pub const KEY_LEN: usize = 64;
