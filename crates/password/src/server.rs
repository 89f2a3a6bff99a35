//! The server's side: setup, registration, login.
//!
//! Not generic over the suite: the server never runs the key stretching
//! function, and every [`Suite`](crate::Suite) differs from [`DefaultSuite`]
//! only by it, so these functions produce the same bytes for all of them. The
//! RFC 9807 test vectors (KSF Identity) run through exactly this code.

use core::fmt;

use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration,
};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{context_param, Identifiers, SessionKey};
use crate::suite::{
    DefaultSuite, KE1_LEN, KE3_LEN, RECORD_LEN, REGISTRATION_REQUEST_LEN, SERVER_LOGIN_STATE_LEN,
    SERVER_SETUP_LEN,
};
use crate::PasswordError;

/// The server's long-term OPAQUE secrets: the OPRF seed (each user's OPRF key is
/// derived from it and the user name), the server's 3DH key pair, and the
/// public key that fake records carry.
///
/// One per deployment, shared by every replica, kept like any private key. Each
/// password guess against a stolen record needs it (threat 8). Printing it
/// shows nothing.
pub struct ServerSetup {
    inner: opaque_ke::ServerSetup<DefaultSuite>,
}

impl ServerSetup {
    /// A fresh setup.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self {
            inner: opaque_ke::ServerSetup::new(rng),
        }
    }

    /// The setup's bytes ([`SERVER_SETUP_LEN`](crate::SERVER_SETUP_LEN)), secret:
    /// @serenity-kit/opaque's `serverSetup`, base64url-decoded.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = self.inner.serialize();
        let copy = Zeroizing::new(bytes.to_vec());
        bytes.zeroize();
        copy
    }

    /// A setup from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PasswordError> {
        if bytes.len() != SERVER_SETUP_LEN {
            return Err(PasswordError::Malformed("server setup"));
        }
        let inner = opaque_ke::ServerSetup::<DefaultSuite>::deserialize(bytes)
            .map_err(|_| PasswordError::Malformed("server setup"))?;
        Ok(Self { inner })
    }

    /// The server's static public key (the client checks it inside the
    /// envelope; a client may pin it).
    pub fn public_key(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key.copy_from_slice(&self.inner.keypair().public().serialize());
        key
    }
}

impl fmt::Debug for ServerSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSetup").finish_non_exhaustive()
    }
}

/// Answers a client's registration request for `user`.
///
/// `user`'s UTF-8 bytes are OPAQUE's credential identifier (serenity's
/// `userIdentifier`): the user's OPRF key is derived from it, so the very same
/// bytes must be given at every login (the caller picks one normal form for
/// case and Unicode). Stateless: nothing is stored until the upload.
pub fn registration_response(
    setup: &ServerSetup,
    user: &str,
    request: &[u8],
) -> Result<Vec<u8>, PasswordError> {
    if request.len() != REGISTRATION_REQUEST_LEN {
        return Err(PasswordError::Malformed("registration request"));
    }
    let request = RegistrationRequest::<DefaultSuite>::deserialize(request)
        .map_err(|_| PasswordError::Malformed("registration request"))?;
    let result = ServerRegistration::start(&setup.inner, request, user.as_bytes())
        .map_err(PasswordError::from_step)?;
    Ok(result.message.serialize().to_vec())
}

/// Checks that a client's registration upload decodes and returns the record to
/// store for the user ([`RECORD_LEN`](crate::RECORD_LEN) bytes).
///
/// The record is the client's public key, a masking key and the envelope; no
/// password, no hash of it, no salt.
pub fn registration_record(upload: &[u8]) -> Result<Vec<u8>, PasswordError> {
    Ok(decode_record(upload)?.serialize().to_vec())
}

fn decode_record(record: &[u8]) -> Result<ServerRegistration<DefaultSuite>, PasswordError> {
    if record.len() != RECORD_LEN {
        return Err(PasswordError::Malformed("registration record"));
    }
    let upload = RegistrationUpload::<DefaultSuite>::deserialize(record)
        .map_err(|_| PasswordError::Malformed("registration record"))?;
    Ok(ServerRegistration::finish(upload))
}

/// What the server keeps between KE2 and KE3: the session key and the MAC it
/// expects. Secret: zeroized on drop, prints nothing.
///
/// Its bytes ([`to_bytes`](Self::to_bytes)) let another replica finish the login;
/// store them only as long as a login may take, and only once.
pub struct ServerLoginState(Zeroizing<Vec<u8>>);

impl ServerLoginState {
    /// The state's bytes ([`SERVER_LOGIN_STATE_LEN`](crate::SERVER_LOGIN_STATE_LEN)).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.0.clone()
    }

    /// A state from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PasswordError> {
        if bytes.len() != SERVER_LOGIN_STATE_LEN {
            return Err(PasswordError::Malformed("server login state"));
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }
}

impl fmt::Debug for ServerLoginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerLoginState(..)")
    }
}

/// Answers KE1 for `user` with KE2, bound to `context`.
///
/// `record` is the user's stored record, or `None` for a user the server does
/// not know: opaque-ke then answers from a fake record (random masking key, the
/// setup's fake public key), so the KE2 has the same size and shape and costs
/// the same (threat 10). The caller must take the same path for both; the
/// client learns only that its login was refused.
///
/// A guess is decided here: from KE2 alone the client learns whether its
/// password was right, so the caller counts the attempt now, before sending
/// KE2, whether or not a KE3 ever follows (threat 9).
pub fn login_start(
    setup: &ServerSetup,
    user: &str,
    record: Option<&[u8]>,
    ke1: &[u8],
    context: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(Vec<u8>, ServerLoginState), PasswordError> {
    login_start_with_identifiers(
        setup,
        user,
        record,
        ke1,
        context,
        Identifiers::default(),
        rng,
    )
}

/// [`login_start`] with custom [`Identifiers`] (serenity's `identifiers`).
pub fn login_start_with_identifiers(
    setup: &ServerSetup,
    user: &str,
    record: Option<&[u8]>,
    ke1: &[u8],
    context: &[u8],
    identifiers: Identifiers<'_>,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(Vec<u8>, ServerLoginState), PasswordError> {
    if ke1.len() != KE1_LEN {
        return Err(PasswordError::Malformed("KE1"));
    }
    let request = CredentialRequest::<DefaultSuite>::deserialize(ke1)
        .map_err(|_| PasswordError::Malformed("KE1"))?;
    let record = record.map(decode_record).transpose()?;
    let params = ServerLoginParameters {
        context: context_param(context),
        identifiers: identifiers.to_opaque(),
    };
    let result = ServerLogin::start(rng, &setup.inner, record, request, user.as_bytes(), params)
        .map_err(PasswordError::from_step)?;
    let mut state_bytes = result.state.serialize();
    let state = ServerLoginState(Zeroizing::new(state_bytes.to_vec()));
    state_bytes.zeroize();
    Ok((result.message.serialize().to_vec(), state))
}

/// Checks KE3 against the state [`login_start`] left; a wrong password, a
/// forged KE3 or a fake record's login is [`PasswordError::Refused`]. A valid
/// KE3 is where the caller clears the user's failure count.
pub fn login_finish(
    state: ServerLoginState,
    ke3: &[u8],
    context: &[u8],
) -> Result<SessionKey, PasswordError> {
    login_finish_with_identifiers(state, ke3, context, Identifiers::default())
}

/// [`login_finish`] with custom [`Identifiers`] (serenity's `identifiers`).
pub fn login_finish_with_identifiers(
    state: ServerLoginState,
    ke3: &[u8],
    context: &[u8],
    identifiers: Identifiers<'_>,
) -> Result<SessionKey, PasswordError> {
    if ke3.len() != KE3_LEN {
        return Err(PasswordError::Malformed("KE3"));
    }
    let login = ServerLogin::<DefaultSuite>::deserialize(&state.0)
        .map_err(|_| PasswordError::Malformed("server login state"))?;
    let finalization = CredentialFinalization::<DefaultSuite>::deserialize(ke3)
        .map_err(|_| PasswordError::Malformed("KE3"))?;
    let params = ServerLoginParameters {
        context: context_param(context),
        identifiers: identifiers.to_opaque(),
    };
    let mut result = login
        .finish(finalization, params)
        .map_err(PasswordError::from_step)?;
    Ok(SessionKey::take(&mut result.session_key))
}
