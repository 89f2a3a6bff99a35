//! Handshake version 1 idealised in BAN logic.
//!
//! The code: `crates/core/src/handshake/{mod.rs,initiator.rs,responder.rs}`.
//! `I` is the initiator (a device or a clinician's client), `R` the responder
//! (an HSP), `T` the TTP that issued both credentials. Hashes are idealised as
//! the tuple they hash; the transcript hashes `TH2`, `TH3` and `TH_final` hold
//! both X25519 shares `e_I` and `e_R`. `SK` is the session's key material
//! (PRK and the final transcript: every later key comes from it).
//!
//! ```text
//! M1  I -> R : e_I
//! M2  R -> I : {-K_R-> R, V_R}K_T^-1,
//!              {label_R, TH2, H(cred_R), time_R, share(R, e_R)}K_R^-1
//!              (keystream-encrypted: I derives the keystream itself)
//! M3  I -> R : {-K_I-> I, V_I}K_T^-1,
//!              {label_I, TH3, H(cred_I), time_I, versions, share(I, e_I), I <-SK-> R}K_I^-1
//!              (under K3, which R derives itself)
//! M4  R -> I : {TH_final, level, I <-SK-> R}SK
//! ```
//!
//! `{-K-> P, V}K_T^-1` is a credential: the TTP's signature binding `P`'s
//! public key, with `V` its status (validity period, not revoked) that each
//! party checks at every use. The responder signs before it knows the
//! initiator, so its signature says only that `e_R` is its share for this
//! transcript; the initiator, which knows the responder by then, signs a
//! transcript holding the responder's credential hash: it says `I <-SK-> R`.
//! The responder says it in M4, under a key from the final transcript.
//!
//! The timestamps, role labels and versions are in the idealised messages as
//! the code signs them, but no assumption makes them fresh: freshness comes
//! from each side's own share (the Maude model finds the same). The factor
//! round is outside the logic's goals.

use crate::logic::{
    atom, believes, controls, encrypted, fresh, public_key, sees, share, shared_key, signed, tuple,
    Term, Theory,
};

/// The initiator.
pub const I: &str = "I";
/// The responder.
pub const R: &str = "R";
/// The TTP.
pub const T: &str = "T";
/// The session key.
pub const SK: &str = "SK";

fn th2() -> Term {
    // TH2 = H(H(label, version | flags | e_I), e_R)
    tuple([atom("version"), atom("flags"), atom("e_I"), atom("e_R")])
}

fn th3() -> Term {
    // TH3 = H(TH2, time_R | Sig_R | cred_R field, H(cred_R))
    tuple([th2(), atom("time_R"), atom("Sig_R"), atom("H(cred_R)")])
}

fn th_final() -> Term {
    // TH4 = H(TH3, plaintext_3, H(cred_I)), then the factor rounds and M4.
    tuple([
        th3(),
        atom("time_I"),
        atom("versions"),
        atom("H(cred_I)"),
        atom("factors"),
    ])
}

/// The assumptions, by name.
pub fn assumptions() -> Vec<(&'static str, Term)> {
    vec![
        // Trust anchors: each party's trust store holds the TTP's key.
        (
            "A1 I trusts the TTP's key",
            believes(I, public_key(T, "K_T")),
        ),
        (
            "A2 R trusts the TTP's key",
            believes(R, public_key(T, "K_T")),
        ),
        // Jurisdiction of the TTP over credentials.
        (
            "A3 I: the TTP controls R's key",
            believes(I, controls(T, public_key(R, "K_R"))),
        ),
        (
            "A4 R: the TTP controls I's key",
            believes(R, controls(T, public_key(I, "K_I"))),
        ),
        // A credential's status is current: validity and revocation are checked
        // at every use (TrustStore::check_status).
        (
            "A5 I: R's credential status is current",
            believes(I, fresh(atom("V_R"))),
        ),
        (
            "A6 R: I's credential status is current",
            believes(R, fresh(atom("V_I"))),
        ),
        // Each side's own X25519 share is fresh, and its secret is its own.
        ("A7 I: e_I is fresh", believes(I, fresh(atom("e_I")))),
        ("A8 R: e_R is fresh", believes(R, fresh(atom("e_R")))),
        ("A9 I: e_I is its share", believes(I, share(I, "e_I"))),
        ("A10 R: e_R is its share", believes(R, share(R, "e_R"))),
    ]
}

/// The idealised messages, as what each receiver sees.
pub fn messages() -> Vec<(&'static str, Term)> {
    let cred_r = signed(tuple([public_key(R, "K_R"), atom("V_R")]), "K_T");
    let sig_r = signed(
        tuple([
            atom("label_R"),
            th2(),
            atom("H(cred_R)"),
            atom("time_R"),
            share(R, "e_R"),
        ]),
        "K_R",
    );
    let cred_i = signed(tuple([public_key(I, "K_I"), atom("V_I")]), "K_T");
    let sig_i = signed(
        tuple([
            atom("label_I"),
            th3(),
            atom("H(cred_I)"),
            atom("time_I"),
            atom("versions"),
            share(I, "e_I"),
            shared_key(I, R, SK),
        ]),
        "K_I",
    );
    let m4 = encrypted(tuple([th_final(), atom("level"), shared_key(I, R, SK)]), SK);
    vec![
        ("M1", sees(R, atom("e_I"))),
        ("M2", sees(I, tuple([atom("e_R"), cred_r, sig_r]))),
        ("M3", sees(R, tuple([cred_i, sig_i]))),
        ("M4", sees(I, m4)),
    ]
}

/// The goals: both believe the session key is good, and each believes the
/// other believes it.
pub fn goals() -> Vec<(&'static str, Term)> {
    let key = shared_key(I, R, SK);
    vec![
        ("G1 I believes SK is good", believes(I, key.clone())),
        ("G2 R believes SK is good", believes(R, key.clone())),
        (
            "G3 I believes R believes it",
            believes(I, believes(R, key.clone())),
        ),
        ("G4 R believes I believes it", believes(R, believes(I, key))),
    ]
}

/// The whole theory: assumptions, messages, and `SK` agreed from `e_I` and `e_R`.
pub fn theory() -> Theory {
    Theory {
        assumptions: assumptions(),
        messages: messages(),
        agreed_keys: vec![("e_I", "e_R", SK)],
    }
}

/// The theory without the assumption named `name`.
pub fn theory_without(name: &str) -> Theory {
    let mut t = theory();
    t.assumptions.retain(|(n, _)| *n != name);
    t
}
