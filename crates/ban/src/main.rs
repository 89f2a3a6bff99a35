//! Prints the BAN idealisation of the handshake and the derivation of each
//! goal; exits non-zero if a goal does not derive.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use vitalgate_ban::handshake::{assumptions, goals, messages, theory};
use vitalgate_ban::logic::{derive, Rule};

fn main() -> ExitCode {
    let theory = theory();
    println!("Assumptions:");
    for (name, term) in assumptions() {
        println!("  {name}: {term}");
    }
    println!("\nIdealised messages (what each receiver sees):");
    for (name, term) in messages() {
        println!("  {name}: {term}");
    }
    let derivation = derive(&theory);
    println!("\n{} facts at the fixpoint.", derivation.facts.len());
    let mut failed = 0;
    for (name, goal) in goals() {
        println!("\n{name}: {goal}");
        let proof = derivation.proof(&goal);
        if proof.is_empty() {
            println!("  NOT DERIVED");
            failed += 1;
            continue;
        }
        for i in proof {
            let fact = &derivation.facts[i];
            let from = match fact.rule {
                Rule::Assumption(_) | Rule::Message(_) => String::new(),
                _ => {
                    let premises: Vec<String> =
                        fact.premises.iter().map(|p| format!("[{p}]")).collect();
                    format!(" from {}", premises.join(", "))
                }
            };
            println!("  [{i}] {}    ({}{from})", fact.term, fact.rule);
        }
    }
    let total = goals().len();
    println!("\n{} of {total} goals derived.", total - failed);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
