//! The keys a login or registration yields, and the identifiers OPAQUE may bind.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::suite::KEY_LEN;

/// The key both sides of a successful login share (64 bytes, 3DH's SHA-512
/// output). Zeroized on drop; compared in constant time; prints nothing.
#[derive(Clone)]
pub struct SessionKey(Zeroizing<[u8; KEY_LEN]>);

/// A key only the client can compute, from the password and the server's OPRF
/// key: the same at registration and every login (64 bytes). The server never
/// sees it; a client may use it to encrypt data of its own. Zeroized on drop;
/// compared in constant time; prints nothing.
#[derive(Clone)]
pub struct ExportKey(Zeroizing<[u8; KEY_LEN]>);

macro_rules! secret_key {
    ($name:ident) => {
        impl $name {
            /// Moves the key out of opaque-ke's result, wiping the original.
            pub(crate) fn take(bytes: &mut [u8]) -> Self {
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                key.copy_from_slice(bytes);
                bytes.zeroize();
                Self(key)
            }

            /// The key's bytes.
            pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&*other.0).into()
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_key!(SessionKey);
secret_key!(ExportKey);

/// Identities OPAQUE may bind into the envelope and the 3DH transcript
/// (RFC 9807 section 4.1.2), as @serenity-kit/opaque's optional `identifiers`.
///
/// vitalgate leaves both unset, and then they default to the two public keys:
/// the user is already bound as the credential identifier and the session as
/// the context. Both sides must use the same values at registration and at
/// every login, or the login is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identifiers<'a> {
    /// The client's identity (RFC 9807's `client_identity`).
    pub client: Option<&'a [u8]>,
    /// The server's identity (RFC 9807's `server_identity`).
    pub server: Option<&'a [u8]>,
}

impl<'a> Identifiers<'a> {
    pub(crate) fn to_opaque(self) -> opaque_ke::Identifiers<'a> {
        opaque_ke::Identifiers {
            client: self.client,
            server: self.server,
        }
    }
}

/// opaque-ke's context: `None` when empty, which is what @serenity-kit/opaque
/// (which has no context parameter) always passes.
pub(crate) fn context_param(context: &[u8]) -> Option<&[u8]> {
    (!context.is_empty()).then_some(context)
}
