//! Out-of-band codes against the real SQLite store, with a sender that keeps
//! the codes in memory (and the development file sender): expiry, replacement,
//! purpose binding, guess and send limits, single use under concurrency
//! (threat 11).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use vitalgate_otp::oob::{SEND_SCOPE, VERIFY_SCOPE};
use vitalgate_otp::{
    CodeMessage, CodeSender, Destination, FileSender, OobCodes, OobError, OobPolicy, SendError,
};
use vitalgate_store::{AttemptLimit, SqliteStore, Store};
use zeroize::Zeroizing;

const T0: u64 = 1_700_000_000;
const KEY: [u8; 32] = [7; 32];
const ALICE: &str = "clinician:alice";
const SIGN_IN: &str = "sign-in";

/// Keeps each message's code, as a phone or inbox would.
#[derive(Default)]
struct Inbox {
    codes: Mutex<Vec<(Destination, String)>>,
}

impl Inbox {
    fn last(&self) -> String {
        self.codes
            .lock()
            .expect("inbox")
            .last()
            .expect("a code")
            .1
            .clone()
    }
}

#[async_trait]
impl CodeSender for Inbox {
    async fn send_code(
        &self,
        destination: &Destination,
        message: &CodeMessage,
    ) -> Result<(), SendError> {
        self.codes
            .lock()
            .expect("inbox")
            .push((destination.clone(), message.code().to_string()));
        Ok(())
    }
}

struct Setup {
    store: Arc<dyn Store>,
    inbox: Arc<Inbox>,
    codes: Arc<OobCodes>,
}

fn setup(policy: OobPolicy) -> Setup {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
    let inbox = Arc::new(Inbox::default());
    let codes =
        OobCodes::new(store.clone(), inbox.clone(), Zeroizing::new(KEY), policy).expect("policy");
    Setup {
        store,
        inbox,
        codes: Arc::new(codes),
    }
}

fn email() -> Destination {
    Destination::Email("alice@hospital.example".to_string())
}

/// A code of the same length that is not `code`.
fn other_than(code: &str) -> String {
    code.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}

#[tokio::test]
async fn a_code_verifies_once_until_it_expires() {
    let s = setup(OobPolicy::default());
    let expires_at = s
        .codes
        .send(ALICE, &email(), SIGN_IN, T0)
        .await
        .expect("sent");
    assert_eq!(expires_at, T0 + 300);
    let code = s.inbox.last();
    assert_eq!(code.len(), 6);

    // Only a keyed hash is stored.
    let live = s.store.oob_code(ALICE).await.expect("read").expect("live");
    assert_eq!(live.expires_at, T0 + 300);
    assert!(!live.code_hash.windows(6).any(|w| w == code.as_bytes()));

    // Accepted at the last second of its life, with surrounding blanks, once.
    s.codes
        .verify(ALICE, SIGN_IN, &format!(" {code}\n"), T0 + 299)
        .await
        .expect("accepted");
    assert!(matches!(
        s.codes.verify(ALICE, SIGN_IN, &code, T0 + 299).await,
        Err(OobError::Rejected)
    ));

    // A new code, at its expiry: refused.
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0 + 1000)
        .await
        .expect("sent");
    let code = s.inbox.last();
    assert!(matches!(
        s.codes.verify(ALICE, SIGN_IN, &code, T0 + 1300).await,
        Err(OobError::Rejected)
    ));
}

#[tokio::test]
async fn a_newer_code_replaces_the_older() {
    let s = setup(OobPolicy::default());
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0)
        .await
        .expect("sent");
    let older = s.inbox.last();
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0 + 10)
        .await
        .expect("sent");
    let newer = s.inbox.last();
    if older != newer {
        assert!(matches!(
            s.codes.verify(ALICE, SIGN_IN, &older, T0 + 20).await,
            Err(OobError::Rejected)
        ));
    }
    s.codes
        .verify(ALICE, SIGN_IN, &newer, T0 + 20)
        .await
        .expect("newer accepted");
}

#[tokio::test]
async fn a_code_is_bound_to_its_subject_purpose_and_server_key() {
    let s = setup(OobPolicy::default());
    s.codes
        .send(ALICE, &email(), "account recovery", T0)
        .await
        .expect("sent");
    let code = s.inbox.last();
    for (subject, purpose) in [(ALICE, SIGN_IN), ("clinician:bob", "account recovery")] {
        assert!(matches!(
            s.codes.verify(subject, purpose, &code, T0 + 1).await,
            Err(OobError::Rejected)
        ));
    }
    // Another deployment's key over the same store finds no match.
    let other = OobCodes::new(
        s.store.clone(),
        s.inbox.clone(),
        Zeroizing::new([8; 32]),
        OobPolicy::default(),
    )
    .expect("policy");
    assert!(matches!(
        other.verify(ALICE, "account recovery", &code, T0 + 1).await,
        Err(OobError::Rejected)
    ));
    s.codes
        .verify(ALICE, "account recovery", &code, T0 + 1)
        .await
        .expect("the right one accepted");
}

#[tokio::test]
async fn malformed_codes_are_rejected_and_counted() {
    let s = setup(OobPolicy::default());
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0)
        .await
        .expect("sent");
    for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
        assert!(
            matches!(
                s.codes.verify(ALICE, SIGN_IN, bad, T0 + 1).await,
                Err(OobError::Rejected)
            ),
            "{bad:?}"
        );
    }
    let counted = s.store.attempts(VERIFY_SCOPE, ALICE).await.expect("read");
    assert_eq!(counted.failures, 5);
}

#[tokio::test]
async fn after_the_guess_limit_the_right_code_is_throttled_then_accepted_after_the_wait() {
    let s = setup(OobPolicy::default());
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0)
        .await
        .expect("sent");
    let code = s.inbox.last();
    let wrong = other_than(&code);
    for _ in 0..AttemptLimit::OTP.free_failures {
        assert!(matches!(
            s.codes.verify(ALICE, SIGN_IN, &wrong, T0 + 1).await,
            Err(OobError::Rejected)
        ));
    }
    assert!(matches!(
        s.codes.verify(ALICE, SIGN_IN, &code, T0 + 1).await,
        Err(OobError::Throttled {
            retry_after_secs: 30
        })
    ));
    // A fresh code does not reset the guesses.
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0 + 2)
        .await
        .expect("sent");
    let code = s.inbox.last();
    assert!(matches!(
        s.codes.verify(ALICE, SIGN_IN, &code, T0 + 2).await,
        Err(OobError::Throttled {
            retry_after_secs: 29
        })
    ));
    s.codes
        .verify(ALICE, SIGN_IN, &code, T0 + 31)
        .await
        .expect("after the wait");
    // The success cleared both counts.
    assert_eq!(
        s.store
            .attempts(VERIFY_SCOPE, ALICE)
            .await
            .expect("read")
            .failures,
        0
    );
    assert_eq!(
        s.store
            .attempts(SEND_SCOPE, ALICE)
            .await
            .expect("read")
            .failures,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_verifications_of_one_code_accept_exactly_one() {
    // A limit that lets all twenty reach the store's single-use decision.
    let s = setup(OobPolicy {
        verify_limit: AttemptLimit {
            free_failures: 1000,
            ..AttemptLimit::OTP
        },
        ..OobPolicy::default()
    });
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0)
        .await
        .expect("sent");
    let code = s.inbox.last();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (codes, code, barrier) = (s.codes.clone(), code.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                codes.verify(ALICE, SIGN_IN, &code, T0 + 1).await
            })
        })
        .collect();
    let (mut accepted, mut rejected) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => accepted += 1,
            Err(OobError::Rejected) => rejected += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((accepted, rejected), (1, 19));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_verifications_under_the_default_limit_accept_at_most_one() {
    let s = setup(OobPolicy::default());
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0)
        .await
        .expect("sent");
    let code = s.inbox.last();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (codes, code) = (s.codes.clone(), code.clone());
            tokio::spawn(async move { codes.verify(ALICE, SIGN_IN, &code, T0 + 1).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => accepted += 1,
            Err(OobError::Rejected | OobError::Throttled { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn sends_are_limited_with_growing_waits_that_a_success_resets() {
    let s = setup(OobPolicy::default());
    for i in 0..5 {
        s.codes
            .send(ALICE, &email(), SIGN_IN, T0 + i)
            .await
            .expect("free send");
    }
    assert!(matches!(
        s.codes.send(ALICE, &email(), SIGN_IN, T0 + 4).await,
        Err(OobError::Throttled {
            retry_after_secs: 60
        })
    ));
    assert_eq!(s.inbox.codes.lock().expect("inbox").len(), 5);
    s.codes
        .send(ALICE, &email(), SIGN_IN, T0 + 64)
        .await
        .expect("after a minute");
    assert!(matches!(
        s.codes.send(ALICE, &email(), SIGN_IN, T0 + 64).await,
        Err(OobError::Throttled {
            retry_after_secs: 120
        })
    ));
    // Another subject is not affected.
    s.codes
        .send("clinician:bob", &email(), SIGN_IN, T0 + 64)
        .await
        .expect("bob");

    // Typing the code in resets the count.
    let s2 = setup(OobPolicy::default());
    for i in 0..5 {
        s2.codes
            .send(ALICE, &email(), SIGN_IN, T0 + i)
            .await
            .expect("free send");
    }
    let code = s2.inbox.last();
    s2.codes
        .verify(ALICE, SIGN_IN, &code, T0 + 5)
        .await
        .expect("accepted");
    for i in 0..5 {
        s2.codes
            .send(ALICE, &email(), SIGN_IN, T0 + 6 + i)
            .await
            .expect("free again");
    }
    assert!(matches!(
        s2.codes.send(ALICE, &email(), SIGN_IN, T0 + 10).await,
        Err(OobError::Throttled { .. })
    ));
    // So does a quiet day.
    s2.codes
        .send(ALICE, &email(), SIGN_IN, T0 + 10 + 24 * 3600)
        .await
        .expect("a day later");
    assert_eq!(
        s2.store
            .attempts(SEND_SCOPE, ALICE)
            .await
            .expect("read")
            .failures,
        1
    );
}

#[tokio::test]
async fn policies_beyond_the_limits_are_refused() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
    for policy in [
        OobPolicy {
            ttl_secs: 301,
            ..OobPolicy::default()
        },
        OobPolicy {
            digits: 4,
            ..OobPolicy::default()
        },
    ] {
        assert!(matches!(
            OobCodes::new(
                store.clone(),
                Arc::new(Inbox::default()),
                Zeroizing::new(KEY),
                policy
            ),
            Err(OobError::Invalid(_))
        ));
    }
    // Eight digits, one minute.
    let s = setup(OobPolicy {
        digits: 8,
        ttl_secs: 60,
        ..OobPolicy::default()
    });
    assert_eq!(
        s.codes
            .send(ALICE, &email(), SIGN_IN, T0)
            .await
            .expect("sent"),
        T0 + 60
    );
    let code = s.inbox.last();
    assert_eq!(code.len(), 8);
    assert!(matches!(
        s.codes.verify(ALICE, SIGN_IN, &code, T0 + 60).await,
        Err(OobError::Rejected)
    ));
}

/// Collects what tracing writes.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_file_sender_writes_codes_to_its_file_and_not_to_the_log() {
    let log = LogBuffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("codes.txt");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
    let codes = OobCodes::new(
        store,
        Arc::new(FileSender::new(&path)),
        Zeroizing::new(KEY),
        OobPolicy::default(),
    )
    .expect("policy");

    codes
        .send(ALICE, &email(), SIGN_IN, T0)
        .await
        .expect("sent");
    let phone = Destination::Phone("+4915112345678".to_string());
    codes
        .send("patient:p-17", &phone, "account recovery", T0)
        .await
        .expect("sent by SMS, to the file");

    let text = std::fs::read_to_string(&path).expect("code file");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(&lines[0][..3], ["email", "alice@hospital.example", SIGN_IN]);
    assert_eq!(
        &lines[1][..3],
        ["phone", "+4915112345678", "account recovery"]
    );
    assert_eq!(lines[0][4], format!("expires_at={}", T0 + 300));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let logged = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf-8");
    assert_eq!(
        logged.matches("development code file").count(),
        2,
        "{logged}"
    );
    assert!(logged.contains(&path.display().to_string()));
    for line in &lines {
        assert!(!logged.contains(line[3]), "a code in the log: {logged}");
    }

    let (email_code, sms_code) = (lines[0][3].to_string(), lines[1][3].to_string());
    codes
        .verify(ALICE, SIGN_IN, &email_code, T0 + 5)
        .await
        .expect("the code from the file");
    codes
        .verify("patient:p-17", "account recovery", &sms_code, T0 + 5)
        .await
        .expect("the SMS code from the file");
}
