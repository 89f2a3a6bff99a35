//! The biometric factor: a fuzzy extractor that turns a noisy binary template
//! (4096 bits, an iris code for instance) into a stable Ed25519 signing key,
//! mixed with a secret the device holds (threat 12).
//!
//! The template never leaves the device. Enrollment stores helper data on the
//! device and gives the server a public key; later, a fresh reading, the helper
//! data and the device secret reproduce the signing key, which proves the factor
//! by signing the handshake's factor binding and the server's challenge
//! ([`BiometricFactor`], [`verify_response`]).
//!
//! # Construction: code offset over a concatenated code
//!
//! As in Hao, Anderson and Daugman's iris keys ("Combining crypto with
//! biometrics effectively", 2006):
//!
//! ```text
//! enroll(template, device secret):
//!   k      = 20 random bytes                          the key message (160 bits)
//!   c      = Hadamard(RS(k)), interleaved             a 4096-bit codeword
//!   mask   = HKDF-SHA256(salt, device secret, "vitalgate biometric helper mask v1")[..512]
//!   helper = version(1) | salt(32) | template ⊕ c ⊕ mask          545 bytes, on the device
//!   seed   = HKDF-SHA256(salt, k ‖ device secret, "vitalgate biometric v1" ‖ SHA-256(helper))
//!   public key = Ed25519(seed)                                      to the server
//!
//! reproduce(reading, helper, device secret):
//!   w = reading ⊕ offset ⊕ mask = c ⊕ (reading ⊕ template)
//!   each of the 32 blocks of w → its nearest Hadamard codeword → one byte
//!   Reed-Solomon decoding of the 32 bytes → k, or refusal → the same seed
//! ```
//!
//! | part | parameters |
//! |---|---|
//! | template | 4096 bits, a grid of 16 rows × 256 columns ([`TEMPLATE_ROWS`]) |
//! | inner code | Hadamard, first-order Reed-Muller RM(1,7): [128, 8, 64], 32 blocks, maximum-likelihood decoding by the fast Hadamard transform |
//! | outer code | Reed-Solomon RS(32, 20) over GF(256) (the `reed-solomon` crate): corrects 6 wrong blocks |
//! | interleaver | block `b` takes, in row `r`, columns `b + 7r + 32i (mod 256)`: any two bits of a block are at least √32 cells apart, and every row and every 32-column sector holds equal shares of every block |
//! | key | HKDF-SHA256 to an Ed25519 seed (ed25519-dalek) |
//!
//! # Why this code
//!
//! **Reed-Solomon over bytes alone fails at these rates.** A byte survives a
//! bit-error rate `p` only with probability `(1 − p)⁸`: 43 % at 10 % BER, 10 %
//! at 25 %. A Reed-Solomon code corrects fewer wrong symbols than half its
//! length, so above `p ≈ 8 %` (where half the bytes are wrong) no Reed-Solomon
//! code over bytes, of any rate, decodes a typical reading. BCH codes correct bits directly, but at 25 % BER they need a rate so low
//! that little key remains.
//!
//! **The inner Hadamard code turns bit errors into few byte errors.** Each byte
//! is spread over 128 bits, and the decoder picks, among all 256 codewords, the
//! one most correlated with the block, which corrects far beyond half the
//! minimum distance. With independent errors a block is decoded wrongly with
//! probability about 5·10⁻⁴ at 25 % BER, 3 % at 30 %, 21 % at 35 % and 92 % at
//! 45 %. The outer code then corrects the few wrong blocks: a genuine reading
//! decodes while at most 6 of 32 blocks fail, so the code gives out sharply
//! between 30 % and 35 % BER, while an impostor's reading, about 47 % away, gets
//! a block or two right. Giving the outer code more or less parity moves
//! that edge by only a point or so of BER per two bytes (RS(32, 16) fails half
//! its readings near 34.5 %, RS(32, 24) near 32.5 %); RS(32, 20) leaves 8 points
//! of margin above 25 % BER for genuine readings and as many below the closest
//! impostor seen, with a 160-bit message.
//!
//! **The interleaver** spreads correlated errors: neighbouring template bits
//! agree and fail together, and an eyelid hides a whole run of them. Scattered
//! over all blocks, such a run costs each block a few bits instead of costing a
//! few blocks everything.
//!
//! # Why the device secret
//!
//! A template carries far less entropy than its length (Daugman counts 249
//! degrees of freedom in a 2048-bit iris code), and any code offset leaks its
//! redundancy: whoever holds the helper data and a candidate template (an iris
//! photographed elsewhere, or the population's most likely bits) could check
//! whether it decodes. So the device secret enters twice: the helper data's
//! offset is masked with a key stream derived from it, so without the device
//! secret helper data is indistinguishable from random and nothing about a guess
//! can be tested offline; and the key seed is derived from it, so stolen
//! helper data and the server's public key never give the key. The factor thus
//! needs both the person and their device.
//!
//! The key is also bound to the helper data itself (its SHA-256 is in the HKDF
//! info): changing helper bits to see which of them matter (hill-climbing on the
//! helper data) gives a different key every time.
//!
//! # No score
//!
//! [`reproduce`] returns a key or [`BiometricError::NotReproduced`], never a
//! distance, a count of corrected errors or any other measure of closeness, and
//! [`verify_response`] accepts or refuses a signature. Nothing can be
//! hill-climbed. The server counts failures (5, then at least 30 s between
//! tries; 50, then disabled): that policy lives in the service, not here.
//!
//! # Measured error rates
//!
//! On the [`synthetic`] population (biased, spatially correlated templates;
//! bursty and scattered noise), by `cargo run --release -p vitalgate-bench --
//! biometric` (400 people, fixed seed):
//!
//! | genuine readings | trials | false non-matches |
//! |---|---|---|
//! | 10, 15, 20, 25 % BER | 1,200 each | 0 each |
//! | 30 % BER | 1,200 | 1 |
//! | 33 % BER | 1,200 | 182 |
//! | realistic mixture (mean 11.5 %) | 1,200 | 0 |
//!
//! False matches: 0 of 159,600 impostor trials (each with the victim's helper
//! data and device secret; one-sided 95 % bound 1.9·10⁻⁵, below NIST's 1 in
//! 10,000); the population's most likely template matched none of the 400
//! enrollments. One reproduction takes about 110 µs (55 µs when refused).
//!
//! # Limits
//!
//! - Alignment (rotation of an iris code) and masking of unusable bits are the
//!   template extractor's job: this crate sees 4096 aligned bits.
//! - The `reed-solomon` crate copies its working buffers on the stack, where
//!   they cannot be zeroized; every buffer of this crate is.
//! - Decoding time depends on the reading (the Reed-Solomon decoder does more
//!   work when it corrects). It runs on the device, on the user's own reading.

#![forbid(unsafe_code)]

mod code;
mod evaluation;
mod factor;
pub mod synthetic;

use core::fmt;

use ed25519_dalek::{Signer, SigningKey};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

pub use evaluation::{evaluate, Condition, Evaluation, EvaluationConfig, GenuineResult, Rate};
pub use factor::{verify_response, BiometricFactor, FACTOR_LABEL};

/// Bits in a template.
pub const TEMPLATE_BITS: usize = 4096;
/// Bytes in a template.
pub const TEMPLATE_BYTES: usize = TEMPLATE_BITS / 8;
/// Rows of the template grid (radial bands, for an iris code).
///
/// Bit `j` of a template is bit `j % 8` (least significant first) of byte
/// `j / 8`, and lies in row `j / TEMPLATE_COLUMNS`, column `j % TEMPLATE_COLUMNS`.
/// Columns wrap around (angle). The interleaver relies on this layout to keep
/// neighbouring bits apart; a template laid out otherwise still works, with
/// less protection against correlated errors.
pub const TEMPLATE_ROWS: usize = 16;
/// Columns of the template grid (angular positions, for an iris code).
pub const TEMPLATE_COLUMNS: usize = TEMPLATE_BITS / TEMPLATE_ROWS;

/// The helper data format version this crate writes and reads.
pub const HELPER_VERSION: u8 = 1;
/// Bytes of random salt in helper data.
pub const SALT_BYTES: usize = 32;
/// Bytes of encoded helper data: version, salt, offset.
pub const HELPER_BYTES: usize = 1 + SALT_BYTES + TEMPLATE_BYTES;

/// HKDF info prefix of the key seed; the SHA-256 of the encoded helper data follows it.
const KEY_LABEL: &[u8] = b"vitalgate biometric v1";
/// HKDF info of the mask that hides the helper data's offset.
const MASK_LABEL: &[u8] = b"vitalgate biometric helper mask v1";

/// The error-correcting code, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeParameters {
    /// Template bits (the concatenated codeword's length).
    pub template_bits: usize,
    /// Inner code length: bits per block.
    pub inner_n: usize,
    /// Inner code dimension: bits per block's symbol.
    pub inner_k: usize,
    /// Inner code minimum distance.
    pub inner_d: usize,
    /// Outer Reed-Solomon length in bytes (one per inner block).
    pub outer_n: usize,
    /// Outer Reed-Solomon message bytes.
    pub outer_k: usize,
    /// Byte errors the outer code corrects.
    pub outer_t: usize,
}

/// The code this crate uses.
pub const CODE: CodeParameters = CodeParameters {
    template_bits: TEMPLATE_BITS,
    inner_n: code::INNER_BITS,
    inner_k: 8,
    inner_d: code::INNER_BITS / 2,
    outer_n: code::BLOCKS,
    outer_k: code::MESSAGE_BYTES,
    outer_t: code::PARITY_BYTES / 2,
};

impl fmt::Display for CodeParameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RS({}, {}) over GF(256), {} byte errors, of Hadamard RM(1,7) [{}, {}, {}] blocks, interleaved over {} template bits; {}-bit key message",
            self.outer_n,
            self.outer_k,
            self.outer_t,
            self.inner_n,
            self.inner_k,
            self.inner_d,
            self.template_bits,
            self.outer_k * 8,
        )
    }
}

/// Why the biometric factor refused.
///
/// A reading that does not reproduce the key gets [`BiometricError::NotReproduced`]
/// and nothing else: no distance, no count of corrected errors, no score.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BiometricError {
    /// The reading is too far from the enrolled template (or is someone else's).
    #[error("the reading does not reproduce a key")]
    NotReproduced,
    /// Helper data of a version this build does not know.
    #[error("unsupported helper data version {version}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// An input of the wrong length.
    #[error("{what} has {len} bytes, expected {expected}")]
    WrongLength {
        /// What was being read.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length expected.
        expected: usize,
    },
    /// The public key is not a valid Ed25519 point.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

/// A binary biometric template or reading: secret, zeroized on drop, never printed.
#[derive(Clone)]
pub struct Template(Box<[u8; TEMPLATE_BYTES]>);

impl Template {
    /// A template from its bytes.
    pub fn new(bytes: [u8; TEMPLATE_BYTES]) -> Self {
        Self(Box::new(bytes))
    }

    /// A template from a slice of exactly [`TEMPLATE_BYTES`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, BiometricError> {
        let bytes: [u8; TEMPLATE_BYTES] =
            bytes.try_into().map_err(|_| BiometricError::WrongLength {
                what: "template",
                len: bytes.len(),
                expected: TEMPLATE_BYTES,
            })?;
        Ok(Self::new(bytes))
    }

    /// The template's bytes.
    pub fn as_bytes(&self) -> &[u8; TEMPLATE_BYTES] {
        &self.0
    }

    /// Bit `index` (see [`TEMPLATE_ROWS`] for the layout).
    ///
    /// # Panics
    /// If `index >= TEMPLATE_BITS`.
    pub fn bit(&self, index: usize) -> bool {
        (self.0[index >> 3] >> (index & 7)) & 1 == 1
    }

    /// The fraction of bits in which two templates differ (evaluation only:
    /// deliberately not public, no API compares templates).
    pub(crate) fn distance(&self, other: &Template) -> f64 {
        let differing: u32 = self
            .0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        f64::from(differing) / TEMPLATE_BITS as f64
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Template(..)")
    }
}

/// Helper data: a salt, and the template XOR a codeword XOR a mask derived from
/// the device secret.
///
/// It is kept on the device beside the device secret. It holds no hash or
/// verifier of the key, and its offset is masked: without the device secret it
/// is indistinguishable from random bytes, so a guessed template cannot be
/// tested against it offline (an unmasked code offset would allow that, since
/// only a reading near the template decodes).
#[derive(Clone, PartialEq, Eq)]
pub struct HelperData {
    salt: [u8; SALT_BYTES],
    offset: Box<[u8; TEMPLATE_BYTES]>,
}

impl HelperData {
    /// The encoding: `version(1) | salt(32) | offset(512)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HELPER_BYTES);
        out.push(HELPER_VERSION);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.offset[..]);
        out
    }

    /// Decodes helper data; another version or length is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BiometricError> {
        if bytes.len() != HELPER_BYTES {
            return Err(BiometricError::WrongLength {
                what: "helper data",
                len: bytes.len(),
                expected: HELPER_BYTES,
            });
        }
        if bytes[0] != HELPER_VERSION {
            return Err(BiometricError::UnsupportedVersion { version: bytes[0] });
        }
        let mut salt = [0u8; SALT_BYTES];
        salt.copy_from_slice(&bytes[1..1 + SALT_BYTES]);
        let mut offset = Box::new([0u8; TEMPLATE_BYTES]);
        offset.copy_from_slice(&bytes[1 + SALT_BYTES..]);
        Ok(Self { salt, offset })
    }

    fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update([HELPER_VERSION]);
        hash.update(self.salt);
        hash.update(&self.offset[..]);
        hash.finalize().into()
    }
}

impl fmt::Debug for HelperData {
    // The offset is a masked template: print neither it nor the salt.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelperData")
            .field("version", &HELPER_VERSION)
            .finish_non_exhaustive()
    }
}

/// The reproduced signing key: zeroized on drop, never printed.
pub struct BiometricKey {
    signing: SigningKey,
}

impl BiometricKey {
    /// The Ed25519 public key, which the server stores at enrollment.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// An Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for BiometricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BiometricKey(..)")
    }
}

/// Enrolls a template on the device: returns the helper data to keep beside the
/// device secret, and the public key the server stores.
///
/// A random 160-bit message is Reed-Solomon and Hadamard encoded; the helper
/// data is the template XOR that codeword, masked under the device secret. The
/// signing key is derived from the message, the device secret, the salt and the
/// helper data itself, so any change to the helper data gives another key.
pub fn enroll<R: RngCore + CryptoRng>(
    template: &Template,
    device_secret: &[u8; 32],
    rng: &mut R,
) -> (HelperData, [u8; 32]) {
    let mut message = Zeroizing::new([0u8; code::MESSAGE_BYTES]);
    rng.fill_bytes(&mut message[..]);
    let mut salt = [0u8; SALT_BYTES];
    rng.fill_bytes(&mut salt);
    let mut offset = Box::new(*template.as_bytes());
    code::xor_codeword(&message, &mut offset);
    xor(&mut offset, &helper_mask(&salt, device_secret));
    let helper = HelperData { salt, offset };
    let public_key = derive_key(&message, device_secret, &helper).public_key();
    (helper, public_key)
}

/// Reproduces the key from a fresh reading, the helper data and the device secret.
///
/// Fails with [`BiometricError::NotReproduced`] and no other detail when the
/// code cannot correct the reading. A reading that decodes to another codeword
/// (too far from the template, yet near some other codeword) yields a wrong
/// key, which the server's signature check refuses.
pub fn reproduce(
    reading: &Template,
    helper: &HelperData,
    device_secret: &[u8; 32],
) -> Result<BiometricKey, BiometricError> {
    let mut word = Zeroizing::new(*reading.as_bytes());
    xor(&mut word, &helper.offset);
    xor(&mut word, &helper_mask(&helper.salt, device_secret));
    let message = code::decode(&word).ok_or(BiometricError::NotReproduced)?;
    Ok(derive_key(&message, device_secret, helper))
}

/// `seed = HKDF-SHA256(salt, message || device secret, label || SHA-256(helper))`.
fn derive_key(
    message: &[u8; code::MESSAGE_BYTES],
    device_secret: &[u8; 32],
    helper: &HelperData,
) -> BiometricKey {
    let mut ikm = Zeroizing::new([0u8; code::MESSAGE_BYTES + 32]);
    ikm[..code::MESSAGE_BYTES].copy_from_slice(message);
    ikm[code::MESSAGE_BYTES..].copy_from_slice(device_secret);
    let mut info = [0u8; KEY_LABEL.len() + 32];
    info[..KEY_LABEL.len()].copy_from_slice(KEY_LABEL);
    info[KEY_LABEL.len()..].copy_from_slice(&helper.digest());
    let mut seed = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&helper.salt), &ikm[..])
        .expand(&info, &mut seed[..])
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    BiometricKey {
        signing: SigningKey::from_bytes(&seed),
    }
}

/// `HKDF-SHA256(salt, device secret, MASK_LABEL)`, one template long.
fn helper_mask(
    salt: &[u8; SALT_BYTES],
    device_secret: &[u8; 32],
) -> Zeroizing<[u8; TEMPLATE_BYTES]> {
    let mut mask = Zeroizing::new([0u8; TEMPLATE_BYTES]);
    Hkdf::<Sha256>::new(Some(salt), device_secret)
        .expand(MASK_LABEL, &mut mask[..])
        .expect("512 bytes is a valid HKDF-SHA256 output length");
    mask
}

fn xor(target: &mut [u8; TEMPLATE_BYTES], other: &[u8; TEMPLATE_BYTES]) {
    for (t, o) in target.iter_mut().zip(other) {
        *t ^= o;
    }
}
