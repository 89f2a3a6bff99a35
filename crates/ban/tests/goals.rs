//! The BAN derivation of the handshake: every goal derives from the
//! assumptions, and no assumption is idle (without any one of them, some goal
//! no longer derives).

use vitalgate_ban::handshake::{assumptions, goals, theory, theory_without};
use vitalgate_ban::logic::{derive, Rule};

#[test]
fn every_goal_derives() {
    let derivation = derive(&theory());
    for (name, goal) in goals() {
        assert!(derivation.holds(&goal), "{name} ({goal}) does not derive");
        let proof = derivation.proof(&goal);
        assert_eq!(
            proof.last().map(|&i| &derivation.facts[i].term),
            Some(&goal)
        );
    }
}

/// Which goals each assumption is needed for: removing it leaves them
/// underivable (and the others derivable).
#[test]
fn removing_any_assumption_breaks_a_goal() {
    let table: &[(&str, &[&str])] = &[
        ("A1 I trusts the TTP's key", &["G1", "G3"]),
        ("A2 R trusts the TTP's key", &["G2", "G4"]),
        ("A3 I: the TTP controls R's key", &["G1", "G3"]),
        ("A4 R: the TTP controls I's key", &["G2", "G4"]),
        ("A5 I: R's credential status is current", &["G1", "G3"]),
        ("A6 R: I's credential status is current", &["G2", "G4"]),
        ("A7 I: e_I is fresh", &["G1", "G3"]),
        ("A8 R: e_R is fresh", &["G2", "G4"]),
        ("A9 I: e_I is its share", &["G1", "G3"]),
        ("A10 R: e_R is its share", &["G2"]),
    ];
    let names: Vec<&str> = assumptions().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        table.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "the table names every assumption, in order"
    );
    for (assumption, broken) in table {
        let derivation = derive(&theory_without(assumption));
        let mut lost = Vec::new();
        for (name, goal) in goals() {
            if !derivation.holds(&goal) {
                lost.push(name.split(' ').next().unwrap_or(name));
            }
        }
        assert!(
            !lost.is_empty(),
            "without {assumption:?} every goal still derives: the assumption is idle"
        );
        assert_eq!(&lost, broken, "goals lost without {assumption:?}");
    }
}

/// The derivation uses the rules the method names: message meaning, nonce
/// verification, jurisdiction and belief.
#[test]
fn the_derivation_uses_each_rule() {
    let derivation = derive(&theory());
    let mut used = Vec::new();
    for (_, goal) in goals() {
        for i in derivation.proof(&goal) {
            used.push(derivation.facts[i].rule);
        }
    }
    for rule in [
        Rule::MessageMeaningPublicKey,
        Rule::MessageMeaningSharedKey,
        Rule::NonceVerification,
        Rule::Jurisdiction,
        Rule::Freshness,
        Rule::Belief,
        Rule::Seeing,
        Rule::KeyAgreement,
    ] {
        assert!(used.contains(&rule), "{rule} is not used");
    }
}

/// Nothing about a third party: the attacker's goals do not follow.
#[test]
fn no_belief_about_a_stranger() {
    use vitalgate_ban::logic::{believes, shared_key};
    let derivation = derive(&theory());
    assert!(!derivation.holds(&believes("I", shared_key("I", "E", "SK"))));
    assert!(!derivation.holds(&believes("R", shared_key("E", "R", "SK"))));
}
