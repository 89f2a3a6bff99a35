//! The browser's client, @serenity-kit/opaque 1.1.0 in Node, against this
//! crate's server, and this crate's client against records the browser made.
//!
//! Needs `node` and `npm`. Without them the test says it is skipped, unless
//! `CI=true`, where it fails. `npm ci` runs first when `tests/node/node_modules`
//! is missing (the versions are pinned by the committed lock file).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use rand_core::OsRng;
use serde_json::{json, Value};
use vitalgate_password::{
    login_finish, login_start, registration_record, registration_response, ClientLogin,
    ClientRegistration, ServerSetup, KE1_LEN, KE2_LEN, RECORD_LEN,
};

const USER: &str = "bob@clinic.example";
const PASSWORD: &str = "Tr0ub4dor&3 on the night shift";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the Node side can run; without it, fails under CI and skips otherwise.
fn node_available() -> bool {
    let missing: Vec<&str> = ["node", "npm"].into_iter().filter(|t| !runs(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "node_interop: {} not found; the interop test with @serenity-kit/opaque needs Node.js",
        missing.join(" and ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message} (CI=true: failing instead of skipping)");
    }
    eprintln!("{message}: skipped");
    false
}

fn install_packages(dir: &Path) {
    if dir.join("node_modules").is_dir() {
        return;
    }
    eprintln!(
        "node_interop: {} has no node_modules: running `npm ci`",
        dir.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("run npm ci");
    assert!(status.success(), "npm ci failed: {status}");
}

/// The Node process and its line protocol.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    fn spawn(dir: &Path) -> Self {
        let mut child = Command::new("node")
            .arg("interop.mjs")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node interop.mjs");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("node stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, request: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("node stdin");
        writeln!(stdin, "{request}").expect("write to node");
        stdin.flush().expect("flush to node");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from node");
        assert!(!line.is_empty(), "node exited; request was {request}");
        let answer: Value = serde_json::from_str(&line).expect("node answers JSON");
        assert!(
            answer.get("error").is_none(),
            "node failed on {request}: {answer}"
        );
        answer
    }

    fn bytes(answer: &Value, field: &str) -> Vec<u8> {
        let text = answer[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing in {answer}"));
        hex::decode(text).expect("hex from node")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing stdin ends the script's loop.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn serenity_kit_client_interoperates() {
    if !node_available() {
        return;
    }
    let dir = node_dir();
    install_packages(&dir);
    let mut browser = Browser::spawn(&dir);

    // serenity's serverSetup is the same bytes as this crate's.
    let answer = browser.call(json!({"op": "createSetup"}));
    let theirs = ServerSetup::from_bytes(&Browser::bytes(&answer, "setup")).expect("their setup");
    assert_eq!(
        theirs.public_key().to_vec(),
        Browser::bytes(&answer, "publicKey")
    );
    assert_eq!(*theirs.to_bytes(), Browser::bytes(&answer, "setup"));

    let setup = ServerSetup::generate(&mut OsRng);

    // Registration in the browser.
    let answer =
        browser.call(json!({"op": "startRegistration", "id": "reg", "password": PASSWORD}));
    let request = Browser::bytes(&answer, "request");
    let response = registration_response(&setup, USER, &request).expect("registration response");
    let answer = browser.call(json!({
        "op": "finishRegistration", "id": "reg", "password": PASSWORD,
        "response": hex::encode(&response),
    }));
    let record = registration_record(&Browser::bytes(&answer, "upload")).expect("record");
    assert_eq!(record.len(), RECORD_LEN);
    let registration_export_key = Browser::bytes(&answer, "exportKey");

    // Login in the browser: both sides hold the same session key.
    let answer = browser.call(json!({"op": "startLogin", "id": "in", "password": PASSWORD}));
    let ke1 = Browser::bytes(&answer, "ke1");
    assert_eq!(ke1.len(), KE1_LEN);
    let (ke2, state) =
        login_start(&setup, USER, Some(&record), &ke1, b"", &mut OsRng).expect("login start");
    let answer = browser.call(json!({
        "op": "finishLogin", "id": "in", "password": PASSWORD, "ke2": hex::encode(&ke2),
    }));
    assert_eq!(
        answer.get("refused"),
        None,
        "the right password was refused"
    );
    let server_key = login_finish(state, &Browser::bytes(&answer, "ke3"), b"").expect("finish");
    assert_eq!(
        hex::encode(server_key.as_bytes()),
        hex::encode(Browser::bytes(&answer, "sessionKey")),
        "session keys differ"
    );
    assert_eq!(
        Browser::bytes(&answer, "exportKey"),
        registration_export_key
    );

    // A wrong password in the browser: refused there.
    let answer = browser.call(json!({"op": "startLogin", "id": "wrong", "password": "guess"}));
    let (ke2, _state) = login_start(
        &setup,
        USER,
        Some(&record),
        &Browser::bytes(&answer, "ke1"),
        b"",
        &mut OsRng,
    )
    .expect("login start");
    let answer = browser.call(json!({
        "op": "finishLogin", "id": "wrong", "password": "guess", "ke2": hex::encode(&ke2),
    }));
    assert_eq!(answer, json!({"refused": true}));

    // An unknown user: a fake KE2 of the same size, refused in the browser.
    let answer = browser.call(json!({"op": "startLogin", "id": "nobody", "password": PASSWORD}));
    let (ke2, _state) = login_start(
        &setup,
        "nobody@clinic.example",
        None,
        &Browser::bytes(&answer, "ke1"),
        b"",
        &mut OsRng,
    )
    .expect("login start");
    assert_eq!(ke2.len(), KE2_LEN);
    let answer = browser.call(json!({
        "op": "finishLogin", "id": "nobody", "password": PASSWORD, "ke2": hex::encode(&ke2),
    }));
    assert_eq!(answer, json!({"refused": true}));

    // This crate's client logs in with the password the browser registered: the
    // key stretching (Argon2id m=64 MiB, t=3, p=4) is serenity's
    // "memory-constrained".
    let (login, ke1) = ClientLogin::start(PASSWORD, &mut OsRng).expect("client start");
    let (ke2, state) =
        login_start(&setup, USER, Some(&record), &ke1, b"", &mut OsRng).expect("login start");
    let (ke3, client_key) = login
        .finish(PASSWORD, &ke2, b"")
        .expect("the Rust client logs in with a browser-registered password");
    assert_eq!(login_finish(state, &ke3, b"").expect("finish"), client_key);

    // And the browser logs in with a password this crate's client registered.
    let user = "carol@clinic.example";
    let (registration, request) = ClientRegistration::start(PASSWORD, &mut OsRng).expect("start");
    let response = registration_response(&setup, user, &request).expect("response");
    let (upload, _export_key) = registration
        .finish(PASSWORD, &response, &mut OsRng)
        .expect("finish");
    let record = registration_record(&upload).expect("record");
    let answer = browser.call(json!({"op": "startLogin", "id": "carol", "password": PASSWORD}));
    let (ke2, state) = login_start(
        &setup,
        user,
        Some(&record),
        &Browser::bytes(&answer, "ke1"),
        b"",
        &mut OsRng,
    )
    .expect("login start");
    let answer = browser.call(json!({
        "op": "finishLogin", "id": "carol", "password": PASSWORD, "ke2": hex::encode(&ke2),
    }));
    assert_eq!(
        answer.get("refused"),
        None,
        "the browser was refused a Rust-registered password"
    );
    let server_key = login_finish(state, &Browser::bytes(&answer, "ke3"), b"").expect("finish");
    assert_eq!(
        hex::encode(server_key.as_bytes()),
        hex::encode(Browser::bytes(&answer, "sessionKey"))
    );
}
