//! RFC 9807 Appendix C through this crate's own functions, byte for byte.
//!
//! The vectors for OPRF ristretto255-SHA512 and 3DH over ristretto255 with
//! SHA-512 (KSF Identity): real vectors 1 (no identities) and 2 (client
//! "alice", server "bob"), and fake vector 1 (an unknown user). The server's
//! side runs the production functions unchanged (the server never runs the KSF);
//! the client's side runs with a suite whose KSF is Identity. A replaying RNG
//! hands out the vector's blinds, seeds and nonces in the order opaque-ke draws
//! them, and must be spent exactly.
//!
//! The other vectors of Appendix C use curve25519 or P-256 for the key exchange,
//! which this crate does not run.

use std::path::Path;

use opaque_ke::ksf::Identity;
use opaque_ke::{CipherSuite, Ristretto255, TripleDh};
use rand_core::{CryptoRng, RngCore};
use serde::Deserialize;
use vitalgate_password::{
    login_finish_with_identifiers, login_start_with_identifiers, registration_record,
    registration_response, ClientLogin, ClientRegistration, Identifiers, PasswordError,
    ServerSetup, KE2_LEN,
};

/// The RFC's suite: this crate's, with the identity as key stretching function.
struct RfcSuite;

impl CipherSuite for RfcSuite {
    type OprfCs = Ristretto255;
    type KeyExchange = TripleDh<Ristretto255, sha2::Sha512>;
    type Ksf = Identity;
}

/// Hands out fixed bytes, in order, and nothing more.
struct Replay {
    bytes: Vec<u8>,
    at: usize,
}

impl Replay {
    fn new(parts: &[&[u8]]) -> Self {
        Self {
            bytes: parts.concat(),
            at: 0,
        }
    }

    fn assert_spent(&self, what: &str) {
        assert_eq!(
            self.at,
            self.bytes.len(),
            "{what}: {} of {} random bytes drawn",
            self.at,
            self.bytes.len()
        );
    }
}

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let end = self.at + dest.len();
        assert!(
            end <= self.bytes.len(),
            "more randomness drawn than the vector has"
        );
        dest.copy_from_slice(&self.bytes[self.at..end]);
        self.at = end;
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Replay {}

#[derive(Deserialize)]
struct Vectors {
    real: Vec<Vector>,
    fake: Vec<Vector>,
}

/// One vector's values (hex), as named in the RFC.
#[derive(Deserialize)]
struct Vector {
    name: String,
    context: String,
    client_identity: Option<String>,
    server_identity: Option<String>,
    oprf_seed: String,
    credential_identifier: String,
    password: Option<String>,
    envelope_nonce: Option<String>,
    masking_nonce: String,
    masking_key: Option<String>,
    client_public_key: String,
    server_private_key: String,
    server_public_key: String,
    server_nonce: String,
    client_nonce: Option<String>,
    client_keyshare_seed: String,
    server_keyshare_seed: String,
    blind_registration: Option<String>,
    blind_login: Option<String>,
    registration_request: Option<String>,
    registration_response: Option<String>,
    registration_upload: Option<String>,
    #[serde(rename = "KE1")]
    ke1: String,
    #[serde(rename = "KE2")]
    ke2: String,
    #[serde(rename = "KE3")]
    ke3: Option<String>,
    export_key: Option<String>,
    session_key: Option<String>,
}

fn load() -> Vectors {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/rfc9807.json");
    let text = std::fs::read_to_string(&path).expect("read the vectors");
    serde_json::from_str(&text).expect("parse the vectors")
}

fn bytes(hex_value: &str) -> Vec<u8> {
    hex::decode(hex_value).expect("hex")
}

fn field(value: &Option<String>, name: &str) -> Vec<u8> {
    bytes(value.as_deref().unwrap_or_else(|| panic!("{name} missing")))
}

fn utf8(value: &[u8]) -> &str {
    std::str::from_utf8(value).expect("UTF-8")
}

/// A scalar as 64 bytes whose wide reduction is the scalar itself: how
/// curve25519-dalek draws a random scalar.
fn wide(scalar: &[u8]) -> Vec<u8> {
    [scalar, &[0u8; 32]].concat()
}

#[test]
fn real_vectors_reproduce_byte_for_byte() {
    let vectors = load();
    assert_eq!(vectors.real.len(), 2);
    for v in &vectors.real {
        check_real(v);
    }
}

fn check_real(v: &Vector) {
    let name = v.name.as_str();
    let context = bytes(&v.context);
    let client_identity = v.client_identity.as_deref().map(bytes);
    let server_identity = v.server_identity.as_deref().map(bytes);
    let ids = Identifiers {
        client: client_identity.as_deref(),
        server: server_identity.as_deref(),
    };
    let user = bytes(&v.credential_identifier);
    let user = utf8(&user);
    let password = field(&v.password, "password");
    let password = utf8(&password);
    let server_public_key = bytes(&v.server_public_key);
    let request = field(&v.registration_request, "registration_request");
    let response = field(&v.registration_response, "registration_response");
    let upload = field(&v.registration_upload, "registration_upload");
    let ke1 = bytes(&v.ke1);
    let ke2 = bytes(&v.ke2);
    let ke3 = field(&v.ke3, "KE3");
    let session_key = field(&v.session_key, "session_key");

    // The setup's bytes are oprf_seed | server private key | the fake records'
    // public key; a real login draws a fake record too but does not use it.
    let setup = ServerSetup::from_bytes(
        &[
            bytes(&v.oprf_seed),
            bytes(&v.server_private_key),
            server_public_key.clone(),
        ]
        .concat(),
    )
    .expect("setup from the vector");
    assert_eq!(setup.public_key().to_vec(), server_public_key, "{name}");

    // Registration.
    let mut rng = Replay::new(&[&wide(&field(&v.blind_registration, "blind_registration"))]);
    let (registration, client_request) =
        ClientRegistration::<RfcSuite>::start_with_ksf(password, Identity, &mut rng)
            .expect("client registration start");
    rng.assert_spent(name);
    assert_eq!(
        hex::encode(client_request),
        hex::encode(&request),
        "{name}: registration_request"
    );

    let server_response = registration_response(&setup, user, &request).expect("response");
    assert_eq!(
        hex::encode(server_response),
        hex::encode(&response),
        "{name}: registration_response"
    );

    let mut rng = Replay::new(&[&field(&v.envelope_nonce, "envelope_nonce")]);
    let (client_upload, export_key) = registration
        .finish_with_identifiers(password, &response, ids, &mut rng)
        .expect("client registration finish");
    rng.assert_spent(name);
    assert_eq!(
        hex::encode(client_upload),
        hex::encode(&upload),
        "{name}: registration_upload"
    );
    assert_eq!(
        hex::encode(export_key.as_bytes()),
        hex::encode(field(&v.export_key, "export_key")),
        "{name}: export_key"
    );

    let record = registration_record(&upload).expect("record");
    assert_eq!(hex::encode(&record), hex::encode(&upload), "{name}: record");

    // Login.
    let mut rng = Replay::new(&[
        &wide(&field(&v.blind_login, "blind_login")),
        &bytes(&v.client_keyshare_seed),
        &field(&v.client_nonce, "client_nonce"),
    ]);
    let (login, client_ke1) = ClientLogin::<RfcSuite>::start_with_ksf(password, Identity, &mut rng)
        .expect("client login start");
    rng.assert_spent(name);
    assert_eq!(hex::encode(client_ke1), hex::encode(&ke1), "{name}: KE1");

    // opaque-ke draws the fake record's masking key on every login (it picks
    // between the real and the fake record in constant time), then the masking
    // nonce, the server's key share seed and its nonce.
    let mut rng = Replay::new(&[
        &[0u8; 64],
        &bytes(&v.masking_nonce),
        &bytes(&v.server_keyshare_seed),
        &bytes(&v.server_nonce),
    ]);
    let (server_ke2, state) =
        login_start_with_identifiers(&setup, user, Some(&record), &ke1, &context, ids, &mut rng)
            .expect("server login start");
    rng.assert_spent(name);
    assert_eq!(hex::encode(server_ke2), hex::encode(&ke2), "{name}: KE2");

    let (client_ke3, client_key) = login
        .finish_with_identifiers(password, &ke2, &context, ids)
        .expect("client login finish");
    assert_eq!(hex::encode(client_ke3), hex::encode(&ke3), "{name}: KE3");
    assert_eq!(
        hex::encode(client_key.as_bytes()),
        hex::encode(&session_key),
        "{name}: client session_key"
    );

    let state_bytes = state.to_bytes();
    let server_key =
        login_finish_with_identifiers(state, &ke3, &context, ids).expect("server login finish");
    assert_eq!(
        hex::encode(server_key.as_bytes()),
        hex::encode(&session_key),
        "{name}: server session_key"
    );

    // The same state refuses a KE3 with one bit changed.
    let mut forged = ke3.clone();
    forged[0] ^= 1;
    let state = vitalgate_password::ServerLoginState::from_bytes(&state_bytes).expect("state");
    assert_eq!(
        login_finish_with_identifiers(state, &forged, &context, ids),
        Err(PasswordError::Refused),
        "{name}: forged KE3"
    );
}

#[test]
fn fake_vector_reproduces_byte_for_byte() {
    let vectors = load();
    assert_eq!(vectors.fake.len(), 1);
    for v in &vectors.fake {
        let name = v.name.as_str();
        let context = bytes(&v.context);
        let client_identity = v.client_identity.as_deref().map(bytes);
        let server_identity = v.server_identity.as_deref().map(bytes);
        let ids = Identifiers {
            client: client_identity.as_deref(),
            server: server_identity.as_deref(),
        };
        let user = bytes(&v.credential_identifier);

        // The fake record's public key is the setup's third part; its masking
        // key is the first randomness a login draws.
        let setup = ServerSetup::from_bytes(
            &[
                bytes(&v.oprf_seed),
                bytes(&v.server_private_key),
                bytes(&v.client_public_key),
            ]
            .concat(),
        )
        .expect("setup from the vector");
        assert_eq!(
            setup.public_key().to_vec(),
            bytes(&v.server_public_key),
            "{name}"
        );

        let mut rng = Replay::new(&[
            &field(&v.masking_key, "masking_key"),
            &bytes(&v.masking_nonce),
            &bytes(&v.server_keyshare_seed),
            &bytes(&v.server_nonce),
        ]);
        let (ke2, _state) = login_start_with_identifiers(
            &setup,
            utf8(&user),
            None,
            &bytes(&v.ke1),
            &context,
            ids,
            &mut rng,
        )
        .expect("server login start without a record");
        rng.assert_spent(name);
        assert_eq!(ke2.len(), KE2_LEN);
        assert_eq!(hex::encode(ke2), v.ke2, "{name}: KE2");
    }
}
