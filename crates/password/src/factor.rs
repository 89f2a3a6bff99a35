//! The password factor inside the core handshake, and its first message's framing.

use core::fmt;

use rand_core::OsRng;
use vitalgate_core::factor::{FactorBinding, FactorKind, InitiatorFactor};
use vitalgate_core::Error;
use zeroize::Zeroizing;

use crate::client::ClientLogin;
use crate::keys::SessionKey;
use crate::suite::KE1_LEN;
use crate::PasswordError;

/// The longest user name a login request carries, in UTF-8 bytes.
pub const MAX_USER_LEN: usize = 255;

/// The password factor's first message: `user length (1) | user (UTF-8) | KE1`.
///
/// The user name travels inside M3, encrypted like every factor message, and is
/// OPAQUE's credential identifier on the server. It must be 1 to
/// [`MAX_USER_LEN`] bytes.
pub fn encode_login_request(user: &str, ke1: &[u8]) -> Result<Vec<u8>, PasswordError> {
    let len = u8::try_from(user.len())
        .ok()
        .filter(|len| *len > 0)
        .ok_or(PasswordError::Malformed("user name"))?;
    let mut payload = Vec::with_capacity(1 + user.len() + ke1.len());
    payload.push(len);
    payload.extend_from_slice(user.as_bytes());
    payload.extend_from_slice(ke1);
    Ok(payload)
}

/// Splits a login request into the user name and KE1 (whose length is checked
/// here, so a server can refuse a malformed request before any lookup).
pub fn decode_login_request(payload: &[u8]) -> Result<(&str, &[u8]), PasswordError> {
    let (&len, rest) = payload
        .split_first()
        .ok_or(PasswordError::Malformed("login request"))?;
    let len = usize::from(len);
    if len == 0 {
        return Err(PasswordError::Malformed("user name"));
    }
    if rest.len() < len {
        return Err(PasswordError::Malformed("login request"));
    }
    let (user, ke1) = rest.split_at(len);
    let user = core::str::from_utf8(user).map_err(|_| PasswordError::Malformed("user name"))?;
    if ke1.len() != KE1_LEN {
        return Err(PasswordError::Malformed("KE1"));
    }
    Ok((user, ke1))
}

enum Step {
    Ready,
    // Boxed: a login in progress is some 560 bytes.
    AwaitingKe2(Box<ClientLogin>),
    Done,
}

/// The initiator's password factor: KE1 (with the user name) rides in M3, the
/// responder answers with KE2, and [`InitiatorFactor::respond`] sends KE3.
///
/// OPAQUE's context is the [`FactorBinding`] (the transcript hash after M3), so
/// the login proves the password inside this very handshake and cannot be
/// lifted into another. Holds the password (zeroized) until it has answered;
/// afterwards it holds only the session key. Uses the default suite, and the
/// operating system's RNG since the factor interface passes none.
pub struct PasswordFactor {
    user: String,
    password: Zeroizing<String>,
    step: Step,
    session_key: Option<SessionKey>,
}

impl PasswordFactor {
    /// The factor for `user` (at most [`MAX_USER_LEN`] bytes; a longer or
    /// empty name fails at the first message) with `password`.
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: Zeroizing::new(password.to_owned()),
            step: Step::Ready,
            session_key: None,
        }
    }

    /// OPAQUE's session key, once the factor has answered KE2.
    pub fn session_key(&self) -> Option<&SessionKey> {
        self.session_key.as_ref()
    }

    fn finish(&mut self, binding: &FactorBinding, ke2: &[u8]) -> Result<Vec<u8>, PasswordError> {
        let Step::AwaitingKe2(login) = core::mem::replace(&mut self.step, Step::Done) else {
            return Err(PasswordError::OutOfOrder);
        };
        // The password is needed once more, then never again.
        let password = core::mem::take(&mut self.password);
        let (ke3, session_key) = login.finish(&password, ke2, &binding.0)?;
        self.session_key = Some(session_key);
        Ok(ke3)
    }
}

impl fmt::Debug for PasswordFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.step {
            Step::Ready => "ready",
            Step::AwaitingKe2(_) => "awaiting KE2",
            Step::Done => "done",
        };
        f.debug_struct("PasswordFactor")
            .field("user", &self.user)
            .field("step", &step)
            .finish_non_exhaustive()
    }
}

impl InitiatorFactor for PasswordFactor {
    fn kind(&self) -> FactorKind {
        FactorKind::Password
    }

    fn first_message(&mut self) -> Result<Vec<u8>, Error> {
        if !matches!(self.step, Step::Ready) {
            return Err(PasswordError::OutOfOrder.into());
        }
        let (login, ke1) = ClientLogin::start(&self.password, &mut OsRng)?;
        let payload = encode_login_request(&self.user, &ke1)?;
        self.step = Step::AwaitingKe2(Box::new(login));
        Ok(payload)
    }

    fn respond(
        &mut self,
        binding: &FactorBinding,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        Ok(Some(self.finish(binding, message)?))
    }
}
