//! Which factors each role needs for each action, and the limits on failed
//! attempts: configuration, checked on the server (threat 14).
//!
//! A rule names the factors a handshake must prove (`require`) and the ones it
//! may offer (`allow`, which always includes `require`); offering any other
//! factor fails the handshake, as does leaving out a required one. A rule may
//! also ask for a minimum assurance level: AAL3 needs the credential key on a
//! hardware token, so a software card cannot reach it. An action with no rule
//! for the role is refused.

use std::str::FromStr;

use serde::Deserialize;
use vitalgate_core::credential::Role;
use vitalgate_core::factor::{AssuranceLevel, FactorKind, FactorSet};
use vitalgate_store::AttemptLimit;

/// What a handshake is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A device's vitals session.
    StreamVitals,
    /// A login that yields a ticket (a patient app, a clinician's client).
    Login,
    /// A clinician opening a patient outside their care teams.
    BreakGlass,
    /// A clinician's browser session in the portal (and its break-glass
    /// re-authentication): no card, since a browser holds no credential key.
    Portal,
}

impl Action {
    /// Whether the credential key (the card factor) is part of this action.
    /// Every handshake proves it; a portal login has no handshake.
    pub fn proves_card(self) -> bool {
        self != Action::Portal
    }
}

/// One role's needs for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Factors that must be proven.
    pub required: FactorSet,
    /// Factors that may be offered (a superset of `required`).
    pub allowed: FactorSet,
    /// The lowest acceptable assurance level.
    pub min_assurance: AssuranceLevel,
}

/// A rule as written in configuration (`[[hsp.policy.rules]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `device` or `clinician`.
    pub role: String,
    /// `stream-vitals`, `login`, `break-glass` or `portal`.
    pub action: Action,
    /// Factor names: `card`, `password`, `otp`, `out-of-band`, `biometric`.
    pub require: Vec<String>,
    /// Further factors that may be offered.
    #[serde(default)]
    pub allow: Vec<String>,
    /// 1, 2 or 3 (default 1).
    #[serde(default)]
    pub min_assurance: Option<u8>,
}

/// The HSP's policy: rules, attempt limits, ticket lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<(Role, Action, Rule)>,
    /// Password guesses per (account, recognised client), counted when the
    /// server answers KE1 (threat 9; see `guesses`).
    pub password_limit: AttemptLimit,
    /// Password guesses per (account, source) from unrecognised clients.
    pub pair_limit: AttemptLimit,
    /// Password guesses per account from unrecognised clients, whatever
    /// their source: the ceiling that stops distributed guessing.
    pub account_limit: AttemptLimit,
    /// Per source address, across accounts.
    pub source_limit: AttemptLimit,
    /// Per account (threat 11).
    pub otp_limit: AttemptLimit,
    /// Per subject (threat 12).
    pub biometric_limit: AttemptLimit,
    /// How long a login ticket lives, seconds.
    pub ticket_lifetime_secs: u64,
    /// How long a break-glass access lasts, seconds.
    pub break_glass_secs: u64,
}

fn factor_by_name(name: &str) -> Result<FactorKind, String> {
    Ok(match name {
        "card" => FactorKind::Card,
        "password" => FactorKind::Password,
        "otp" => FactorKind::Otp,
        "out-of-band" => FactorKind::OutOfBand,
        "biometric" => FactorKind::Biometric,
        other => return Err(format!("unknown factor {other:?}")),
    })
}

fn role_by_name(name: &str) -> Result<Role, String> {
    match name {
        "device" => Ok(Role::Device),
        "clinician" => Ok(Role::Clinician),
        other => Err(format!("no policy for role {other:?}: device or clinician")),
    }
}

fn factors(names: &[String]) -> Result<FactorSet, String> {
    names
        .iter()
        .try_fold(FactorSet::EMPTY, |set, n| Ok(set.with(factor_by_name(n)?)))
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stream-vitals" => Ok(Action::StreamVitals),
            "login" => Ok(Action::Login),
            "break-glass" => Ok(Action::BreakGlass),
            "portal" => Ok(Action::Portal),
            other => Err(format!("unknown action {other:?}")),
        }
    }
}

impl Rule {
    fn new(required: &[FactorKind], also_allowed: &[FactorKind], min: AssuranceLevel) -> Self {
        Self::for_action(Action::Login, required, also_allowed, min)
    }

    fn for_action(
        action: Action,
        required: &[FactorKind],
        also_allowed: &[FactorKind],
        min: AssuranceLevel,
    ) -> Self {
        let mut required = FactorSet::of(required);
        if action.proves_card() {
            required = required.with(FactorKind::Card);
        }
        Self {
            required,
            allowed: required.union(FactorSet::of(also_allowed)),
            min_assurance: min,
        }
    }
}

impl Default for Policy {
    /// What `vitalgate dev` ships: a device streams with its card key; a
    /// patient's app logs in with password and biometric; a clinician with
    /// password and TOTP (AAL2), and break-glass needs the same again, fresh.
    fn default() -> Self {
        use FactorKind::*;
        Self {
            rules: vec![
                (
                    Role::Device,
                    Action::StreamVitals,
                    Rule::new(&[Card], &[], AssuranceLevel::Aal1),
                ),
                (
                    Role::Device,
                    Action::Login,
                    Rule::new(&[Card, Password, Biometric], &[], AssuranceLevel::Aal2),
                ),
                (
                    Role::Clinician,
                    Action::Login,
                    Rule::new(&[Card, Password, Otp], &[], AssuranceLevel::Aal2),
                ),
                (
                    Role::Clinician,
                    Action::BreakGlass,
                    Rule::new(&[Card, Password, Otp], &[], AssuranceLevel::Aal2),
                ),
                (
                    Role::Clinician,
                    Action::Portal,
                    Rule::for_action(Action::Portal, &[Password, Otp], &[], AssuranceLevel::Aal2),
                ),
            ],
            password_limit: AttemptLimit::PASSWORD,
            pair_limit: AttemptLimit::PASSWORD_PAIR,
            account_limit: AttemptLimit::PASSWORD,
            source_limit: AttemptLimit::SOURCE,
            otp_limit: AttemptLimit::OTP,
            biometric_limit: AttemptLimit::BIOMETRIC,
            ticket_lifetime_secs: 12 * 3600,
            break_glass_secs: 3600,
        }
    }
}

impl Policy {
    /// The default limits with these rules (every role-action pair not named is refused).
    pub fn from_rules(rules: &[RuleConfig]) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for rule in rules {
            let role = role_by_name(&rule.role)?;
            if parsed
                .iter()
                .any(|(r, a, _)| *r == role && *a == rule.action)
            {
                return Err(format!("two rules for {} {:?}", rule.role, rule.action));
            }
            let mut required = factors(&rule.require)?;
            let also = factors(&rule.allow)?;
            if rule.action.proves_card() {
                required = required.with(FactorKind::Card);
            } else if required.union(also).contains(FactorKind::Card) {
                return Err(format!(
                    "{} {:?}: a browser holds no card; require password and otp",
                    rule.role, rule.action
                ));
            }
            let min_assurance = match rule.min_assurance.unwrap_or(1) {
                1 => AssuranceLevel::Aal1,
                2 => AssuranceLevel::Aal2,
                3 => AssuranceLevel::Aal3,
                n => return Err(format!("min_assurance {n}: 1, 2 or 3")),
            };
            parsed.push((
                role,
                rule.action,
                Rule {
                    required,
                    allowed: required.union(also),
                    min_assurance,
                },
            ));
        }
        Ok(Self {
            rules: parsed,
            ..Self::default()
        })
    }

    /// The rule for `role` doing `action`, if the policy allows it at all.
    pub fn rule(&self, role: Role, action: Action) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|(r, a, _)| *r == role && *a == action)
            .map(|(_, _, rule)| rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_what_the_design_says() {
        let policy = Policy::default();
        let clinician = policy.rule(Role::Clinician, Action::Login).expect("rule");
        assert_eq!(
            clinician.required,
            FactorSet::of(&[FactorKind::Card, FactorKind::Password, FactorKind::Otp])
        );
        assert_eq!(clinician.allowed, clinician.required);
        let device = policy
            .rule(Role::Device, Action::StreamVitals)
            .expect("rule");
        assert_eq!(device.required, FactorSet::of(&[FactorKind::Card]));
        assert!(policy.rule(Role::Device, Action::BreakGlass).is_none());
        let portal = policy.rule(Role::Clinician, Action::Portal).expect("rule");
        assert_eq!(
            portal.required,
            FactorSet::of(&[FactorKind::Password, FactorKind::Otp])
        );
        assert_eq!(portal.min_assurance, AssuranceLevel::Aal2);
    }

    #[test]
    fn rules_parse_and_bad_ones_are_refused() {
        let rule = |role: &str, require: &[&str]| RuleConfig {
            role: role.into(),
            action: Action::Login,
            require: require.iter().map(|s| s.to_string()).collect(),
            allow: vec!["out-of-band".into()],
            min_assurance: Some(2),
        };
        let policy = Policy::from_rules(&[rule("clinician", &["password"])]).expect("parse");
        let parsed = policy.rule(Role::Clinician, Action::Login).expect("rule");
        assert!(parsed.required.contains(FactorKind::Card));
        assert!(parsed.allowed.contains(FactorKind::OutOfBand));
        assert!(!parsed.required.contains(FactorKind::OutOfBand));
        assert!(Policy::from_rules(&[rule("clinician", &["pin"])]).is_err());
        assert!(Policy::from_rules(&[rule("ttp", &["password"])]).is_err());
        assert!(
            Policy::from_rules(&[rule("device", &["card"]), rule("device", &["password"])])
                .is_err()
        );
    }
}
