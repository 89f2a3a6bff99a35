//! Threat 13 for the software card: ten wrong PINs lock it, the eleventh
//! attempt is refused even with the right PIN; the key signs transcripts.

use std::os::unix::fs::PermissionsExt;

use vitalgate_card::{CardError, SoftwareCard, MAX_PIN_ATTEMPTS};
use vitalgate_core::provider::{AwsLc, CryptoProvider};
use vitalgate_core::signer::Signer;

#[test]
fn the_right_pin_unlocks_and_the_key_signs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("card.vgc");
    let (card, public) = SoftwareCard::create(&path, "482913").expect("create");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o077, 0, "the card file is readable by others");
    let unlocked = card.unlock("482913").expect("unlock");
    assert_eq!(unlocked.public_key(), public);
    let signature = unlocked.sign(b"transcript").expect("sign");
    AwsLc::ed25519_verify(&public, b"transcript", &signature).expect("verifies");
    assert!(!std::fs::read(&path)
        .expect("file")
        .windows(6)
        .any(|w| w == b"482913"));
    assert!(matches!(
        SoftwareCard::create(&dir.path().join("short"), "12345"),
        Err(CardError::PinTooShort)
    ));
}

#[test]
fn ten_wrong_pins_lock_the_card_and_the_eleventh_attempt_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("card.vgc");
    let (card, _) = SoftwareCard::create(&path, "482913").expect("create");

    // A right PIN resets the count.
    assert!(matches!(
        card.unlock("000000"),
        Err(CardError::WrongPin { remaining: 9 })
    ));
    card.unlock("482913").expect("right PIN");
    assert_eq!(card.failures().expect("failures"), 0);

    for attempt in 1..MAX_PIN_ATTEMPTS {
        let result = card.unlock("000000");
        assert!(
            matches!(result, Err(CardError::WrongPin { remaining }) if remaining == MAX_PIN_ATTEMPTS - attempt),
            "attempt {attempt}: {result:?}"
        );
    }
    assert!(
        matches!(card.unlock("000000"), Err(CardError::Locked)),
        "the tenth wrong PIN locks"
    );
    // The eleventh attempt, with the right PIN, from a fresh handle: locked.
    let reopened = SoftwareCard::open(&path).expect("open");
    assert!(matches!(reopened.unlock("482913"), Err(CardError::Locked)));
    assert_eq!(reopened.failures().expect("failures"), MAX_PIN_ATTEMPTS);
}

#[test]
fn a_damaged_or_swapped_file_does_not_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("card.vgc");
    SoftwareCard::create(&path, "482913").expect("create");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[90] ^= 1; // inside the public key, bound to the seal
    std::fs::write(&path, &bytes).expect("write");
    let card = SoftwareCard::open(&path).expect("open");
    assert!(matches!(
        card.unlock("482913"),
        Err(CardError::WrongPin { .. })
    ));
    std::fs::write(&path, b"not a card").expect("write");
    assert!(matches!(
        SoftwareCard::open(&path),
        Err(CardError::Invalid(_))
    ));
}
