//! Registration and login through the public API, with the default suite.
//!
//! Every client `finish` runs Argon2id with 64 MiB, so the tests share one
//! registration and each runs at most one client finish.

use std::sync::OnceLock;
use std::time::Instant;

use rand_core::{OsRng, RngCore};
use vitalgate_core::factor::{FactorBinding, FactorKind, InitiatorFactor};
use vitalgate_core::{DecodeError, FactorError};
use vitalgate_password::{
    decode_login_request, encode_login_request, login_finish, login_start, registration_record,
    registration_response, ClientLogin, ClientRegistration, PasswordError, PasswordFactor,
    ServerLoginState, ServerSetup, KE1_LEN, KE2_LEN, KE3_LEN, RECORD_LEN, REGISTRATION_REQUEST_LEN,
    REGISTRATION_RESPONSE_LEN, SERVER_LOGIN_STATE_LEN, SERVER_SETUP_LEN,
};

const USER: &str = "alice@ward-7.example";
const PASSWORD: &str = "correct horse battery staple";

struct Registered {
    setup: ServerSetup,
    record: Vec<u8>,
}

/// One registration, shared by the tests of this binary.
fn registered() -> &'static Registered {
    static REGISTERED: OnceLock<Registered> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        let setup = ServerSetup::generate(&mut OsRng);
        let (registration, request) =
            ClientRegistration::start(PASSWORD, &mut OsRng).expect("registration start");
        assert_eq!(request.len(), REGISTRATION_REQUEST_LEN);
        let response = registration_response(&setup, USER, &request).expect("response");
        assert_eq!(response.len(), REGISTRATION_RESPONSE_LEN);
        let (upload, _export_key) = registration
            .finish(PASSWORD, &response, &mut OsRng)
            .expect("registration finish");
        let record = registration_record(&upload).expect("record");
        assert_eq!(record.len(), RECORD_LEN);
        Registered { setup, record }
    })
}

/// A client login started and answered by the server; the client has not
/// finished.
fn started(
    setup: &ServerSetup,
    record: Option<&[u8]>,
    password: &str,
    server_context: &[u8],
) -> (ClientLogin, Vec<u8>, ServerLoginState) {
    let (login, ke1) = ClientLogin::start(password, &mut OsRng).expect("login start");
    assert_eq!(ke1.len(), KE1_LEN);
    let (ke2, state) =
        login_start(setup, USER, record, &ke1, server_context, &mut OsRng).expect("server start");
    assert_eq!(ke2.len(), KE2_LEN);
    (login, ke2, state)
}

#[test]
fn right_password_logs_in_and_another_replica_finishes() {
    let r = registered();
    let context = b"transcript hash";
    let (login, ke2, state) = started(&r.setup, Some(&r.record), PASSWORD, context);

    let begun = Instant::now();
    let (ke3, client_key) = login
        .finish(PASSWORD, &ke2, context)
        .expect("client finish");
    eprintln!(
        "one client login finish (Argon2id m=64 MiB t=3 p=4, this profile): {:?}",
        begun.elapsed()
    );
    assert_eq!(ke3.len(), KE3_LEN);

    // Another replica finishes from the state's bytes.
    let state_bytes = state.to_bytes();
    assert_eq!(state_bytes.len(), SERVER_LOGIN_STATE_LEN);
    drop(state);
    let state = ServerLoginState::from_bytes(&state_bytes).expect("state from bytes");
    let server_key = login_finish(state, &ke3, context).expect("server finish");
    assert_eq!(client_key, server_key);
}

#[test]
fn wrong_password_is_refused_by_the_client() {
    let r = registered();
    let (login, ke2, _state) = started(&r.setup, Some(&r.record), PASSWORD, b"");
    assert_eq!(
        login
            .finish("correct horse battery stapler", &ke2, b"")
            .map(|_| ()),
        Err(PasswordError::Refused)
    );
}

#[test]
fn forged_or_malformed_ke3_is_refused_by_the_server() {
    let r = registered();
    let check = |ke3: &[u8], expected: PasswordError| {
        let (_login, _ke2, state) = started(&r.setup, Some(&r.record), PASSWORD, b"");
        assert_eq!(login_finish(state, ke3, b""), Err(expected));
    };
    let mut random = [0u8; KE3_LEN];
    OsRng.fill_bytes(&mut random);
    check(&random, PasswordError::Refused);
    check(&[0u8; KE3_LEN], PasswordError::Refused);
    check(&[0u8; KE3_LEN - 1], PasswordError::Malformed("KE3"));
    check(&[0u8; KE3_LEN + 1], PasswordError::Malformed("KE3"));
}

#[test]
fn ke2_changed_in_flight_is_refused_by_the_client() {
    let r = registered();
    let (login, mut ke2, _state) = started(&r.setup, Some(&r.record), PASSWORD, b"");
    // The last byte of the server's MAC.
    ke2[KE2_LEN - 1] ^= 0x01;
    assert_eq!(
        login.finish(PASSWORD, &ke2, b"").map(|_| ()),
        Err(PasswordError::Refused)
    );
}

#[test]
fn a_context_other_than_the_servers_is_refused() {
    let r = registered();
    let (login, ke2, _state) = started(&r.setup, Some(&r.record), PASSWORD, b"handshake A");
    assert_eq!(
        login.finish(PASSWORD, &ke2, b"handshake B").map(|_| ()),
        Err(PasswordError::Refused)
    );
}

#[test]
fn an_unknown_user_gets_a_fake_answer_of_the_same_shape() {
    let r = registered();
    let (_, real_ke2, real_state) = started(&r.setup, Some(&r.record), PASSWORD, b"");
    let (login, fake_ke2, fake_state) = started(&r.setup, None, PASSWORD, b"");
    assert_eq!(fake_ke2.len(), real_ke2.len());
    assert_eq!(fake_state.to_bytes().len(), real_state.to_bytes().len());
    assert_eq!(
        login.finish(PASSWORD, &fake_ke2, b"").map(|_| ()),
        Err(PasswordError::Refused)
    );
}

#[test]
fn the_record_holds_no_password_and_is_useless_without_the_setup() {
    let r = registered();
    assert!(
        !r.record
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes()),
        "the record contains the password"
    );
    // The same record under another server setup (another OPRF key): refused.
    let other = ServerSetup::generate(&mut OsRng);
    let (login, ke2, _state) = started(&other, Some(&r.record), PASSWORD, b"");
    assert_eq!(
        login.finish(PASSWORD, &ke2, b"").map(|_| ()),
        Err(PasswordError::Refused)
    );
}

#[test]
fn a_reflected_registration_response_is_refused() {
    let r = registered();
    let (registration, request) =
        ClientRegistration::start(PASSWORD, &mut OsRng).expect("registration start");
    let reflected = [request.as_slice(), &r.setup.public_key()].concat();
    assert_eq!(
        registration
            .finish(PASSWORD, &reflected, &mut OsRng)
            .map(|_| ()),
        Err(PasswordError::Refused)
    );
}

#[test]
fn malformed_messages_are_named() {
    let r = registered();
    let (_login, ke1) = ClientLogin::start(PASSWORD, &mut OsRng).expect("login start");
    let not_a_point = [0xffu8; 32];
    let cases: Vec<(&str, Result<(), PasswordError>, &'static str)> = vec![
        (
            "request too short",
            registration_response(&r.setup, USER, &[0u8; 31]).map(|_| ()),
            "registration request",
        ),
        (
            "request not a point",
            registration_response(&r.setup, USER, &not_a_point).map(|_| ()),
            "registration request",
        ),
        (
            "request the identity",
            registration_response(&r.setup, USER, &[0u8; 32]).map(|_| ()),
            "registration request",
        ),
        (
            "upload too long",
            registration_record(&[r.record.as_slice(), &[0]].concat()).map(|_| ()),
            "registration record",
        ),
        (
            "upload with no client key",
            registration_record(&[0xffu8; RECORD_LEN]).map(|_| ()),
            "registration record",
        ),
        (
            "KE1 too short",
            login_start(&r.setup, USER, Some(&r.record), &ke1[1..], b"", &mut OsRng).map(|_| ()),
            "KE1",
        ),
        (
            "KE1 not a point",
            login_start(
                &r.setup,
                USER,
                Some(&r.record),
                &[&not_a_point[..], &ke1[32..]].concat(),
                b"",
                &mut OsRng,
            )
            .map(|_| ()),
            "KE1",
        ),
        (
            "stored record corrupt",
            login_start(&r.setup, USER, Some(&r.record[1..]), &ke1, b"", &mut OsRng).map(|_| ()),
            "registration record",
        ),
        (
            "setup too short",
            ServerSetup::from_bytes(&[0u8; SERVER_SETUP_LEN - 1]).map(|_| ()),
            "server setup",
        ),
        (
            "setup key not a scalar",
            ServerSetup::from_bytes(&[0xffu8; SERVER_SETUP_LEN]).map(|_| ()),
            "server setup",
        ),
        (
            "login state too short",
            ServerLoginState::from_bytes(&[0u8; SERVER_LOGIN_STATE_LEN - 1]).map(|_| ()),
            "server login state",
        ),
    ];
    for (name, result, message) in cases {
        assert_eq!(result, Err(PasswordError::Malformed(message)), "{name}");
    }
    // The client's side: checked before any key stretching.
    let (login, _) = ClientLogin::start(PASSWORD, &mut OsRng).expect("login start");
    assert_eq!(
        login.finish(PASSWORD, &[0u8; KE2_LEN - 1], b"").map(|_| ()),
        Err(PasswordError::Malformed("KE2"))
    );
    let (registration, _) = ClientRegistration::start(PASSWORD, &mut OsRng).expect("start");
    assert_eq!(
        registration
            .finish(PASSWORD, &[0xffu8; REGISTRATION_RESPONSE_LEN], &mut OsRng)
            .map(|_| ()),
        Err(PasswordError::Malformed("registration response"))
    );
}

#[test]
fn setup_round_trips_and_secrets_print_nothing() {
    let r = registered();
    let bytes = r.setup.to_bytes();
    assert_eq!(bytes.len(), SERVER_SETUP_LEN);
    let again = ServerSetup::from_bytes(&bytes).expect("setup from bytes");
    assert_eq!(*again.to_bytes(), *bytes);
    assert_eq!(again.public_key(), r.setup.public_key());

    let (login, _ke2, state) = started(&r.setup, Some(&r.record), PASSWORD, b"");
    let printed = format!("{:?} {:?} {:?}", r.setup, state, login);
    let secret_hex = hex::encode(&bytes[..64]);
    assert!(!printed.contains(&secret_hex[..16]), "{printed}");
    assert!(
        !printed.contains(&hex::encode(&state.to_bytes()[..8])),
        "{printed}"
    );
    assert_eq!(
        printed,
        "ServerSetup { .. } ServerLoginState(..) ClientLogin(..)"
    );
    let factor = PasswordFactor::new(USER, PASSWORD);
    assert!(!format!("{factor:?}").contains(PASSWORD));
}

#[test]
fn login_requests_frame_the_user_name() {
    let ke1 = [7u8; KE1_LEN];
    let long = "é".repeat(127) + "a"; // 255 bytes
    for user in ["a", USER, "Zoë", long.as_str()] {
        let payload = encode_login_request(user, &ke1).expect("encode");
        assert_eq!(payload.len(), 1 + user.len() + KE1_LEN);
        assert_eq!(decode_login_request(&payload), Ok((user, &ke1[..])));
    }
    assert_eq!(
        encode_login_request("", &ke1),
        Err(PasswordError::Malformed("user name"))
    );
    assert_eq!(
        encode_login_request(&(long.clone() + "b"), &ke1),
        Err(PasswordError::Malformed("user name"))
    );

    let cases: [(&str, Vec<u8>, &'static str); 6] = [
        ("empty", vec![], "login request"),
        ("zero-length user", [&[0u8][..], &ke1].concat(), "user name"),
        ("user cut short", vec![5, b'a', b'b'], "login request"),
        (
            "user not UTF-8",
            [&[2u8, 0xc3, 0x28][..], &ke1].concat(),
            "user name",
        ),
        ("KE1 short", [&[1u8, b'a'][..], &ke1[1..]].concat(), "KE1"),
        ("KE1 long", [&[1u8, b'a'][..], &ke1, &[0]].concat(), "KE1"),
    ];
    for (name, payload, message) in cases {
        assert_eq!(
            decode_login_request(&payload),
            Err(PasswordError::Malformed(message)),
            "{name}"
        );
    }
}

#[test]
fn errors_map_onto_the_core() {
    let kind = FactorKind::Password;
    let core = |e: PasswordError| vitalgate_core::Error::from(e);
    assert_eq!(
        core(PasswordError::Refused),
        FactorError::Rejected { kind }.into()
    );
    assert_eq!(
        core(PasswordError::Malformed("KE1")),
        DecodeError::InvalidValue {
            field: "KE1",
            value: 0
        }
        .into()
    );
    assert_eq!(
        core(PasswordError::OutOfOrder),
        FactorError::OutOfOrder { kind }.into()
    );
    assert_eq!(
        core(PasswordError::Protocol("KsfError".into())),
        FactorError::Rejected { kind }.into()
    );
}

#[test]
fn the_factor_logs_in_bound_to_the_handshake() {
    let r = registered();
    let binding = FactorBinding([0x5a; 32]);
    let mut factor = PasswordFactor::new(USER, PASSWORD);
    assert_eq!(factor.kind(), FactorKind::Password);
    assert!(factor.session_key().is_none());

    let first = factor.first_message().expect("first message");
    assert!(factor.first_message().is_err(), "a second first message");
    let (user, ke1) = decode_login_request(&first).expect("decode");
    assert_eq!(user, USER);

    let (ke2, state) =
        login_start(&r.setup, user, Some(&r.record), ke1, &binding.0, &mut OsRng).expect("start");
    let ke3 = factor
        .respond(&binding, &ke2)
        .expect("respond")
        .expect("KE3");
    let server_key = login_finish(state, &ke3, &binding.0).expect("server finish");
    assert_eq!(factor.session_key(), Some(&server_key));

    assert_eq!(
        factor.respond(&binding, &ke2),
        Err(FactorError::OutOfOrder {
            kind: FactorKind::Password
        }
        .into())
    );
}

#[test]
fn shared_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ServerSetup>();
    send_sync::<ServerLoginState>();
    send_sync::<vitalgate_password::SessionKey>();
    send::<ClientLogin>();
    send::<PasswordFactor>();
}
