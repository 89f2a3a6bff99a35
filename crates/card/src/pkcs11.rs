//! A signing key on a PKCS#11 token (a smart card, a secure element, or
//! SoftHSM2 for tests). The key is generated on the token, marked sensitive and
//! not extractable, and signs with CKM_EDDSA; it never leaves the token.
//!
//! Tokens differ in how they count wrong PINs (SoftHSM2 never locks), so this
//! backend keeps its own count in a file beside the configuration, writes it
//! before each login attempt, refuses to try once it reaches ten, and also
//! honours the token's own CKF_USER_PIN_LOCKED flag.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use vitalgate_core::signer::Signer;
use vitalgate_core::SignerError;

use crate::{CardError, MAX_PIN_ATTEMPTS};

/// CKA_EC_PARAMS for Ed25519: the DER of RFC 8410's id-Ed25519 (1.3.101.112),
/// which SoftHSM2 and most tokens accept (PKCS#11 3.0 also allows the
/// curve's name as a printable string).
const ED25519_PARAMS: [u8; 5] = [0x06, 0x03, 0x2B, 0x65, 0x70];

/// Where Debian's SoftHSM2 puts its module.
pub const SOFTHSM2_MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

fn token_error(e: Pkcs11Error) -> CardError {
    CardError::Token(e.to_string())
}

/// One token in a PKCS#11 module.
pub struct Pkcs11Token {
    context: Pkcs11,
    slot: Slot,
    counter_path: PathBuf,
}

impl std::fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Token")
            .field("slot", &self.slot)
            .field("counter", &self.counter_path)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Token {
    /// Opens the token labelled `label` in the module at `module`; the PIN
    /// counter lives in `state_dir`.
    pub fn open(module: &Path, label: &str, state_dir: &Path) -> Result<Self, CardError> {
        let context = Pkcs11::new(module).map_err(token_error)?;
        context
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(token_error)?;
        let slot = context
            .get_slots_with_token()
            .map_err(token_error)?
            .into_iter()
            .find(|slot| {
                context
                    .get_token_info(*slot)
                    .map(|info| info.label().trim_end() == label)
                    .unwrap_or(false)
            })
            .ok_or_else(|| CardError::Token(format!("no token labelled {label:?}")))?;
        std::fs::create_dir_all(state_dir)?;
        let counter_path = state_dir.join(format!("pin-failures-{}", label.replace('/', "_")));
        Ok(Self {
            context,
            slot,
            counter_path,
        })
    }

    fn failures(&self) -> Result<u8, CardError> {
        match std::fs::read_to_string(&self.counter_path) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| CardError::Invalid("PIN failure counter")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn set_failures(&self, n: u8) -> Result<(), CardError> {
        let tmp = self.counter_path.with_extension("tmp");
        std::fs::write(&tmp, n.to_string())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.counter_path)?;
        Ok(())
    }

    /// Logs in with `pin`, counting the attempt first. A locked token (by our
    /// count or its own flag) refuses without trying the PIN.
    fn login(&self, pin: &str) -> Result<Session, CardError> {
        let failures = self.failures()?;
        let info = self
            .context
            .get_token_info(self.slot)
            .map_err(token_error)?;
        if failures >= MAX_PIN_ATTEMPTS || info.user_pin_locked() {
            return Err(CardError::Locked);
        }
        self.set_failures(failures + 1)?;
        let session = self
            .context
            .open_rw_session(self.slot)
            .map_err(token_error)?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) => {
                self.set_failures(0)?;
                Ok(session)
            }
            Err(Pkcs11Error::Pkcs11(RvError::PinIncorrect, _)) => {
                let remaining = MAX_PIN_ATTEMPTS - (failures + 1);
                Err(if remaining == 0 {
                    CardError::Locked
                } else {
                    CardError::WrongPin { remaining }
                })
            }
            Err(Pkcs11Error::Pkcs11(RvError::PinLocked, _)) => Err(CardError::Locked),
            // PKCS#11 logins are per application: while another session of
            // ours is logged in, the PIN is not checked at all, so this is no
            // attempt (and no success either).
            Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                self.set_failures(failures)?;
                Err(CardError::Token(
                    "the token is already unlocked by another session of this process".into(),
                ))
            }
            Err(e) => Err(token_error(e)),
        }
    }

    /// Generates an Ed25519 key pair labelled `key_label` on the token; returns
    /// its public key.
    pub fn generate_key(&self, pin: &str, key_label: &str) -> Result<[u8; 32], CardError> {
        let session = self.login(pin)?;
        let label = key_label.as_bytes().to_vec();
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(ED25519_PARAMS.to_vec()),
            Attribute::Label(label.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
        ];
        let (public, _) = session
            .generate_key_pair(
                &Mechanism::EccEdwardsKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(token_error)?;
        public_key_of(&session, public)
    }

    /// Unlocks the key labelled `key_label` with `pin`.
    pub fn unlock(&self, pin: &str, key_label: &str) -> Result<Pkcs11Card, CardError> {
        let session = self.login(pin)?;
        let find = |class| {
            session
                .find_objects(&[
                    Attribute::Class(class),
                    Attribute::KeyType(KeyType::EC_EDWARDS),
                    Attribute::Label(key_label.as_bytes().to_vec()),
                ])
                .map_err(token_error)
        };
        let private = match find(ObjectClass::PRIVATE_KEY)?.as_slice() {
            [one] => *one,
            [] => return Err(CardError::KeyNotFound(key_label.to_string())),
            _ => {
                return Err(CardError::Token(format!(
                    "several keys labelled {key_label:?}"
                )))
            }
        };
        let public_handle = *find(ObjectClass::PUBLIC_KEY)?
            .first()
            .ok_or_else(|| CardError::Token(format!("no public key labelled {key_label:?}")))?;
        let public = public_key_of(&session, public_handle)?;
        Ok(Pkcs11Card {
            session: Mutex::new(session),
            private,
            public,
        })
    }
}

/// The 32-byte key from CKA_EC_POINT (a DER OCTET STRING around it, or the
/// raw bytes, as tokens differ).
fn public_key_of(session: &Session, handle: ObjectHandle) -> Result<[u8; 32], CardError> {
    let attributes = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(token_error)?;
    let point = attributes
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(point) => Some(point),
            _ => None,
        })
        .ok_or(CardError::Invalid("no CKA_EC_POINT"))?;
    let raw = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        raw if raw.len() == 32 => raw,
        _ => return Err(CardError::Invalid("CKA_EC_POINT is not an Ed25519 key")),
    };
    raw.try_into()
        .map_err(|_| CardError::Invalid("CKA_EC_POINT"))
}

/// A key on a token, logged in: the signer for the card factor.
pub struct Pkcs11Card {
    session: Mutex<Session>,
    private: ObjectHandle,
    public: [u8; 32],
}

impl std::fmt::Debug for Pkcs11Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Card")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Signer for Pkcs11Card {
    fn public_key(&self) -> [u8; 32] {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignerError> {
        let session = self.session.lock().map_err(|_| SignerError::Unavailable)?;
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let signature = session
            .sign(&mechanism, self.private, message)
            .map_err(|_| SignerError::Unavailable)?;
        signature
            .as_slice()
            .try_into()
            .map_err(|_| SignerError::Unavailable)
    }
}
