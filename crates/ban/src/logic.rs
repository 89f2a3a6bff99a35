//! BAN logic (Burrows, Abadi, Needham 1990): terms, rules and a checker that
//! applies the rules by forward chaining until nothing new follows.
//!
//! Formulas are messages too (BAN's idealisation puts statements such as
//! `I <-SK-> R` inside signed messages), so one [`Term`] type holds both.
//! Hashes are idealised as the tuple they hash: a hash of something fresh is
//! fresh, which is all the logic asks of them.
//!
//! The rules ([`Rule`]):
//!
//! ```text
//! message meaning (public key)  P |= -K-> Q,  P <| {X}K^-1        =>  P |= Q |~ X
//! message meaning (shared key)  P |= P <-K-> Q,  P <| {X}K         =>  P |= Q |~ X
//! nonce verification            P |= #(X),  P |= Q |~ X            =>  P |= Q |= X
//! jurisdiction                  P |= Q => X,  P |= Q |= X          =>  P |= X
//! freshness                     P |= #(X),  X a part of Y          =>  P |= #(Y)
//! belief                        P |= (X, Y)                        =>  P |= X
//!                               P |= Q |= (X, Y)                   =>  P |= Q |= X
//!                               P |= Q |~ (X, Y)                   =>  P |= Q |~ X
//! seeing                        P <| (X, Y)                        =>  P <| X
//!                               P <| {X}K^-1                       =>  P <| X
//!                               P <| {X}K,  P |= P <-K-> Q         =>  P <| X
//! key agreement                 P |= share(P, a),  P |= #(a),
//!                               P |= Q |= share(Q, b)              =>  P |= P <-K-> Q
//!                               (K agreed from a and b)
//! ```
//!
//! The last is the Diffie-Hellman rule of van Oorschot's extension of BAN
//! (SVO): a key computed from one's own fresh secret share and a share the
//! peer is believed to own is shared with that peer alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A principal's name.
pub type Principal = &'static str;

/// A key's name.
pub type KeyName = &'static str;

/// A BAN term: a message or a formula.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Term {
    /// A name, nonce, timestamp, label or constant.
    Atom(&'static str),
    /// Parts sent together (also a hash, idealised as what it hashes).
    Tuple(Vec<Term>),
    /// `{X}K^-1`: `X` signed with the private half of the public key `K`.
    Signed(Box<Term>, KeyName),
    /// `{X}K`: `X` encrypted and authenticated under the shared key `K`.
    Encrypted(Box<Term>, KeyName),
    /// `P |= X`: `P` believes `X`.
    Believes(Principal, Box<Term>),
    /// `P <| X`: `P` sees `X`.
    Sees(Principal, Box<Term>),
    /// `P |~ X`: `P` once said `X`.
    Said(Principal, Box<Term>),
    /// `P => X`: `P` has jurisdiction over `X`.
    Controls(Principal, Box<Term>),
    /// `#(X)`: `X` is fresh.
    Fresh(Box<Term>),
    /// `-K-> P`: `K` is `P`'s public key.
    PublicKey(Principal, KeyName),
    /// `P <-K-> Q`: `K` is a good key for `P` and `Q` (the two names sorted).
    SharedKey(Principal, Principal, KeyName),
    /// `share(P, e)`: `e` is `P`'s Diffie-Hellman share (`P` holds its secret).
    Share(Principal, &'static str),
}

/// An atom.
pub fn atom(name: &'static str) -> Term {
    Term::Atom(name)
}

/// A tuple of parts.
pub fn tuple(parts: impl IntoIterator<Item = Term>) -> Term {
    Term::Tuple(parts.into_iter().collect())
}

/// `{x}k^-1`.
pub fn signed(x: Term, k: KeyName) -> Term {
    Term::Signed(Box::new(x), k)
}

/// `{x}k`.
pub fn encrypted(x: Term, k: KeyName) -> Term {
    Term::Encrypted(Box::new(x), k)
}

/// `p |= x`.
pub fn believes(p: Principal, x: Term) -> Term {
    Term::Believes(p, Box::new(x))
}

/// `p <| x`.
pub fn sees(p: Principal, x: Term) -> Term {
    Term::Sees(p, Box::new(x))
}

/// `p |~ x`.
pub fn said(p: Principal, x: Term) -> Term {
    Term::Said(p, Box::new(x))
}

/// `p => x`.
pub fn controls(p: Principal, x: Term) -> Term {
    Term::Controls(p, Box::new(x))
}

/// `#(x)`.
pub fn fresh(x: Term) -> Term {
    Term::Fresh(Box::new(x))
}

/// `-k-> p`.
pub fn public_key(p: Principal, k: KeyName) -> Term {
    Term::PublicKey(p, k)
}

/// `p <-k-> q`, stored with the names in order so that `p <-k-> q` and
/// `q <-k-> p` are one term.
pub fn shared_key(p: Principal, q: Principal, k: KeyName) -> Term {
    if p <= q {
        Term::SharedKey(p, q, k)
    } else {
        Term::SharedKey(q, p, k)
    }
}

/// `share(p, e)`.
pub fn share(p: Principal, e: &'static str) -> Term {
    Term::Share(p, e)
}

impl Term {
    /// Whether `part` is this term or a part of it (through tuples, and the
    /// contents of signed and encrypted messages).
    pub fn contains(&self, part: &Term) -> bool {
        if self == part {
            return true;
        }
        match self {
            Term::Tuple(parts) => parts.iter().any(|p| p.contains(part)),
            Term::Signed(x, _) | Term::Encrypted(x, _) => x.contains(part),
            _ => false,
        }
    }

    fn is_compound_formula(&self) -> bool {
        matches!(
            self,
            Term::Believes(..)
                | Term::Sees(..)
                | Term::Said(..)
                | Term::Controls(..)
                | Term::PublicKey(..)
                | Term::SharedKey(..)
        )
    }
}

/// Writes a term as an operand: compound formulas in parentheses.
struct Operand<'a>(&'a Term);

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_compound_formula() {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Atom(a) => write!(f, "{a}"),
            Term::Tuple(parts) => {
                write!(f, "(")?;
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{p}")?;
                }
                write!(f, ")")
            }
            Term::Signed(x, k) => write!(f, "{{{x}}}{k}^-1"),
            Term::Encrypted(x, k) => write!(f, "{{{x}}}{k}"),
            Term::Believes(p, x) => write!(f, "{p} |= {}", Operand(x)),
            Term::Sees(p, x) => write!(f, "{p} <| {}", Operand(x)),
            Term::Said(p, x) => write!(f, "{p} |~ {}", Operand(x)),
            Term::Controls(p, x) => write!(f, "{p} => {}", Operand(x)),
            Term::Fresh(x) => write!(f, "#({x})"),
            Term::PublicKey(p, k) => write!(f, "-{k}-> {p}"),
            Term::SharedKey(p, q, k) => write!(f, "{p} <-{k}-> {q}"),
            Term::Share(p, e) => write!(f, "share({p}, {e})"),
        }
    }
}

/// Why a fact holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// An assumption (its name).
    Assumption(&'static str),
    /// A protocol message the principal received (its name).
    Message(&'static str),
    /// Message meaning for a signature: `P |= -K-> Q, P <| {X}K^-1 => P |= Q |~ X`.
    MessageMeaningPublicKey,
    /// Message meaning for a shared key: `P |= P <-K-> Q, P <| {X}K => P |= Q |~ X`.
    MessageMeaningSharedKey,
    /// Nonce verification: `P |= #(X), P |= Q |~ X => P |= Q |= X`.
    NonceVerification,
    /// Jurisdiction: `P |= Q => X, P |= Q |= X => P |= X`.
    Jurisdiction,
    /// Freshness: a message with a fresh part is fresh.
    Freshness,
    /// Belief: a belief in (or about what another believes or said of) a tuple
    /// holds for each of its parts.
    Belief,
    /// Seeing: one sees the parts of what one sees, the contents of a signed
    /// message, and the contents of one encrypted under a key one believes good.
    Seeing,
    /// Key agreement (SVO's Diffie-Hellman rule).
    KeyAgreement,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Assumption(name) => write!(f, "assumption {name}"),
            Rule::Message(name) => write!(f, "message {name}"),
            Rule::MessageMeaningPublicKey => write!(f, "message meaning (public key)"),
            Rule::MessageMeaningSharedKey => write!(f, "message meaning (shared key)"),
            Rule::NonceVerification => write!(f, "nonce verification"),
            Rule::Jurisdiction => write!(f, "jurisdiction"),
            Rule::Freshness => write!(f, "freshness"),
            Rule::Belief => write!(f, "belief"),
            Rule::Seeing => write!(f, "seeing"),
            Rule::KeyAgreement => write!(f, "key agreement"),
        }
    }
}

/// A derived fact: the formula, the rule and the facts it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    /// The formula (`P |= X` or `P <| X`).
    pub term: Term,
    /// The rule that gave it.
    pub rule: Rule,
    /// The indices of the premises in [`Derivation::facts`].
    pub premises: Vec<usize>,
}

/// The input to the checker: assumptions, the messages each principal saw, and
/// which Diffie-Hellman shares agree which key.
#[derive(Clone, Debug, Default)]
pub struct Theory {
    /// Named assumptions, each a formula `P |= X`.
    pub assumptions: Vec<(&'static str, Term)>,
    /// Named idealised messages, each `P <| X`.
    pub messages: Vec<(&'static str, Term)>,
    /// `(a, b, k)`: the shares `a` and `b` agree the key `k`.
    pub agreed_keys: Vec<(&'static str, &'static str, KeyName)>,
}

/// Everything that follows from a [`Theory`], each fact with its reason.
#[derive(Clone, Debug)]
pub struct Derivation {
    /// The facts, premises before conclusions.
    pub facts: Vec<Fact>,
    index: BTreeMap<Term, usize>,
}

impl Derivation {
    /// Whether `term` was derived.
    pub fn holds(&self, term: &Term) -> bool {
        self.index.contains_key(term)
    }

    /// The facts `term` rests on, premises first, ending with `term`; empty if
    /// it was not derived.
    pub fn proof(&self, term: &Term) -> Vec<usize> {
        let Some(&goal) = self.index.get(term) else {
            return Vec::new();
        };
        let mut needed = BTreeSet::new();
        let mut stack = vec![goal];
        while let Some(i) = stack.pop() {
            if needed.insert(i) {
                stack.extend(self.facts[i].premises.iter().copied());
            }
        }
        // Indices grow with derivation order, so sorting puts premises first.
        needed.into_iter().collect()
    }

    fn add(&mut self, term: Term, rule: Rule, premises: Vec<usize>) -> bool {
        if self.index.contains_key(&term) {
            return false;
        }
        self.index.insert(term.clone(), self.facts.len());
        self.facts.push(Fact {
            term,
            rule,
            premises,
        });
        true
    }
}

/// Applies the rules to `theory` until no new fact follows (a fixpoint: every
/// rule yields a part of a term already present, or a freshness or key belief
/// about such parts, so the set of facts is finite).
pub fn derive(theory: &Theory) -> Derivation {
    let mut d = Derivation {
        facts: Vec::new(),
        index: BTreeMap::new(),
    };
    for (name, term) in &theory.assumptions {
        d.add(term.clone(), Rule::Assumption(name), Vec::new());
    }
    for (name, term) in &theory.messages {
        d.add(term.clone(), Rule::Message(name), Vec::new());
    }
    loop {
        let new = step(&d, theory);
        let mut grew = false;
        for (term, rule, premises) in new {
            grew |= d.add(term, rule, premises);
        }
        if !grew {
            return d;
        }
    }
}

type Candidate = (Term, Rule, Vec<usize>);

/// One round: every conclusion any rule draws from the facts so far.
fn step(d: &Derivation, theory: &Theory) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, fact) in d.facts.iter().enumerate() {
        match &fact.term {
            Term::Sees(p, x) => seeing(d, i, p, x, &mut out),
            Term::Believes(p, x) => believing(d, theory, i, p, x, &mut out),
            _ => {}
        }
    }
    out
}

fn seeing(d: &Derivation, i: usize, p: Principal, x: &Term, out: &mut Vec<Candidate>) {
    match x {
        Term::Tuple(parts) => {
            for part in parts {
                out.push((sees(p, part.clone()), Rule::Seeing, vec![i]));
            }
        }
        Term::Signed(content, k) => {
            out.push((sees(p, (**content).clone()), Rule::Seeing, vec![i]));
            for (j, fact) in d.facts.iter().enumerate() {
                if let Term::Believes(p2, key) = &fact.term {
                    if let Term::PublicKey(q, k2) = &**key {
                        if *p2 == p && k2 == k && *q != p {
                            out.push((
                                believes(p, said(q, (**content).clone())),
                                Rule::MessageMeaningPublicKey,
                                vec![j, i],
                            ));
                        }
                    }
                }
            }
        }
        Term::Encrypted(content, k) => {
            for (j, fact) in d.facts.iter().enumerate() {
                if let Term::Believes(p2, key) = &fact.term {
                    if let Term::SharedKey(a, b, k2) = &**key {
                        if *p2 == p && k2 == k && (*a == p || *b == p) {
                            let q = if *a == p { *b } else { *a };
                            out.push((sees(p, (**content).clone()), Rule::Seeing, vec![i, j]));
                            if q != p {
                                out.push((
                                    believes(p, said(q, (**content).clone())),
                                    Rule::MessageMeaningSharedKey,
                                    vec![j, i],
                                ));
                            }
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn believing(
    d: &Derivation,
    theory: &Theory,
    i: usize,
    p: Principal,
    x: &Term,
    out: &mut Vec<Candidate>,
) {
    match x {
        // P |= (X, Y) => P |= X
        Term::Tuple(parts) => {
            for part in parts {
                out.push((believes(p, part.clone()), Rule::Belief, vec![i]));
            }
        }
        Term::Said(q, said_x) => {
            // P |= Q |~ (X, Y) => P |= Q |~ X
            if let Term::Tuple(parts) = &**said_x {
                for part in parts {
                    out.push((believes(p, said(q, part.clone())), Rule::Belief, vec![i]));
                }
            }
            for (j, fact) in d.facts.iter().enumerate() {
                if let Term::Believes(p2, f) = &fact.term {
                    if *p2 != p {
                        continue;
                    }
                    if let Term::Fresh(fx) = &**f {
                        // Freshness: a said message with a fresh part is fresh.
                        if **fx != **said_x && said_x.contains(fx) {
                            out.push((
                                believes(p, fresh((**said_x).clone())),
                                Rule::Freshness,
                                vec![j, i],
                            ));
                        }
                        // Nonce verification.
                        if **fx == **said_x {
                            out.push((
                                believes(p, believes(q, (**said_x).clone())),
                                Rule::NonceVerification,
                                vec![j, i],
                            ));
                        }
                    }
                }
            }
        }
        Term::Believes(q, inner) => {
            // P |= Q |= (X, Y) => P |= Q |= X
            if let Term::Tuple(parts) = &**inner {
                for part in parts {
                    out.push((
                        believes(p, believes(q, part.clone())),
                        Rule::Belief,
                        vec![i],
                    ));
                }
            }
            for (j, fact) in d.facts.iter().enumerate() {
                if let Term::Believes(p2, c) = &fact.term {
                    if let Term::Controls(q2, cx) = &**c {
                        if *p2 == p && q2 == q && **cx == **inner {
                            out.push((
                                believes(p, (**inner).clone()),
                                Rule::Jurisdiction,
                                vec![j, i],
                            ));
                        }
                    }
                }
            }
            // Key agreement: P |= share(P, a), P |= #(a), P |= Q |= share(Q, b).
            if let Term::Share(q2, b) = &**inner {
                if q2 == q {
                    key_agreement(d, theory, i, p, q, b, out);
                }
            }
        }
        _ => {}
    }
}

fn key_agreement(
    d: &Derivation,
    theory: &Theory,
    i: usize,
    p: Principal,
    q: Principal,
    b: &'static str,
    out: &mut Vec<Candidate>,
) {
    if p == q {
        return;
    }
    for (a, b2, k) in &theory.agreed_keys {
        for (own, other) in [(*a, *b2), (*b2, *a)] {
            if other != b {
                continue;
            }
            let own_share = d.index.get(&believes(p, share(p, own)));
            let own_fresh = d.index.get(&believes(p, fresh(atom(own))));
            if let (Some(&s), Some(&f)) = (own_share, own_fresh) {
                out.push((
                    believes(p, shared_key(p, q, k)),
                    Rule::KeyAgreement,
                    vec![s, f, i],
                ));
            }
        }
    }
}
