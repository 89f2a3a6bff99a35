//! The client's side: what a device SDK, the CLI and the tests run (the browser
//! runs @serenity-kit/opaque, which computes the same).

use core::fmt;

use opaque_ke::{
    ClientLoginFinishParameters, ClientRegistrationFinishParameters, CredentialResponse,
    RegistrationResponse,
};
use rand_core::{CryptoRng, OsRng, RngCore};
use zeroize::Zeroize;

use crate::keys::{context_param, ExportKey, Identifiers, SessionKey};
use crate::suite::{default_ksf, DefaultSuite, Suite, KE2_LEN, REGISTRATION_RESPONSE_LEN};
use crate::PasswordError;

/// A registration in progress on the client: it holds the OPRF blind and the
/// key stretching function. Secret: zeroized on drop, prints nothing.
pub struct ClientRegistration<CS: Suite = DefaultSuite> {
    state: opaque_ke::ClientRegistration<CS>,
    ksf: CS::Ksf,
}

/// A login in progress on the client: the OPRF blind, the ephemeral 3DH key
/// and KE1, and the key stretching function. Secret: zeroized on drop, prints
/// nothing.
pub struct ClientLogin<CS: Suite = DefaultSuite> {
    state: opaque_ke::ClientLogin<CS>,
    ksf: CS::Ksf,
}

impl ClientRegistration {
    /// Starts a registration with the default suite (Argon2id as
    /// @serenity-kit/opaque's "memory-constrained"); returns the state and the
    /// registration request to send.
    pub fn start(
        password: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Self, Vec<u8>), PasswordError> {
        Self::start_with_ksf(password, default_ksf()?, rng)
    }
}

impl<CS: Suite> ClientRegistration<CS> {
    /// Starts a registration whose [`finish`](Self::finish) stretches with `ksf`
    /// (the RFC 9807 test vectors use `opaque_ke::ksf::Identity`).
    pub fn start_with_ksf(
        password: &str,
        ksf: CS::Ksf,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Self, Vec<u8>), PasswordError> {
        let result = opaque_ke::ClientRegistration::<CS>::start(rng, password.as_bytes())
            .map_err(PasswordError::from_step)?;
        let request = result.message.serialize().to_vec();
        Ok((
            Self {
                state: result.state,
                ksf,
            },
            request,
        ))
    }

    /// Finishes with the server's response: returns the upload to send (the
    /// server stores it as the user's record) and the export key. Runs the key
    /// stretching function once.
    ///
    /// A response that reflects the request back is [`PasswordError::Refused`].
    pub fn finish(
        self,
        password: &str,
        response: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Vec<u8>, ExportKey), PasswordError> {
        self.finish_with_identifiers(password, response, Identifiers::default(), rng)
    }

    /// [`finish`](Self::finish) with custom [`Identifiers`], which every
    /// later login must repeat.
    pub fn finish_with_identifiers(
        self,
        password: &str,
        response: &[u8],
        identifiers: Identifiers<'_>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Vec<u8>, ExportKey), PasswordError> {
        if response.len() != REGISTRATION_RESPONSE_LEN {
            return Err(PasswordError::Malformed("registration response"));
        }
        let response = RegistrationResponse::<CS>::deserialize(response)
            .map_err(|_| PasswordError::Malformed("registration response"))?;
        let Self { state, ksf } = self;
        let params = ClientRegistrationFinishParameters::new(identifiers.to_opaque(), Some(&ksf));
        let mut result = state
            .finish(rng, password.as_bytes(), response, params)
            .map_err(PasswordError::from_step)?;
        Ok((
            result.message.serialize().to_vec(),
            ExportKey::take(&mut result.export_key),
        ))
    }
}

impl ClientLogin {
    /// Starts a login with the default suite; returns the state and KE1 to send.
    pub fn start(
        password: &str,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Self, Vec<u8>), PasswordError> {
        Self::start_with_ksf(password, default_ksf()?, rng)
    }
}

impl<CS: Suite> ClientLogin<CS> {
    /// Starts a login whose [`finish`](Self::finish) stretches with `ksf`.
    pub fn start_with_ksf(
        password: &str,
        ksf: CS::Ksf,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Self, Vec<u8>), PasswordError> {
        let result = opaque_ke::ClientLogin::<CS>::start(rng, password.as_bytes())
            .map_err(PasswordError::from_step)?;
        let ke1 = result.message.serialize().to_vec();
        Ok((
            Self {
                state: result.state,
                ksf,
            },
            ke1,
        ))
    }

    /// Finishes with KE2 under `context` (which the server must use too; empty
    /// is @serenity-kit/opaque's default): returns KE3 to send and the session
    /// key. Runs the key stretching function once.
    ///
    /// A wrong password, an unknown user, another server, another context or
    /// a KE2 changed in flight are all [`PasswordError::Refused`].
    pub fn finish(
        self,
        password: &str,
        ke2: &[u8],
        context: &[u8],
    ) -> Result<(Vec<u8>, SessionKey), PasswordError> {
        self.finish_with_identifiers(password, ke2, context, Identifiers::default())
    }

    /// [`finish`](Self::finish) with the custom [`Identifiers`] the
    /// registration used.
    pub fn finish_with_identifiers(
        self,
        password: &str,
        ke2: &[u8],
        context: &[u8],
        identifiers: Identifiers<'_>,
    ) -> Result<(Vec<u8>, SessionKey), PasswordError> {
        if ke2.len() != KE2_LEN {
            return Err(PasswordError::Malformed("KE2"));
        }
        let response = CredentialResponse::<CS>::deserialize(ke2)
            .map_err(|_| PasswordError::Malformed("KE2"))?;
        let Self { state, ksf } = self;
        let params = ClientLoginFinishParameters::new(
            context_param(context),
            identifiers.to_opaque(),
            Some(&ksf),
        );
        // 3DH draws no randomness for KE3; opaque-ke's signature asks for an
        // RNG all the same (its SIGMA-I variant signs).
        let mut result = state
            .finish(&mut OsRng, password.as_bytes(), response, params)
            .map_err(PasswordError::from_step)?;
        result.export_key.zeroize();
        Ok((
            result.message.serialize().to_vec(),
            SessionKey::take(&mut result.session_key),
        ))
    }
}

impl<CS: Suite> fmt::Debug for ClientRegistration<CS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientRegistration(..)")
    }
}

impl<CS: Suite> fmt::Debug for ClientLogin<CS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientLogin(..)")
    }
}
