//! SMART Backend Services (HL7's profile of OAuth 2.0 client credentials):
//! how an EHR's integration engine, with no user present, gets a short-lived
//! token for the FHIR read API.
//!
//! An administrator registers the client (`[[hsp.fhir_clients]]`): its id,
//! its public keys as a JWK Set, and the system scopes it may have. The
//! client POSTs `grant_type=client_credentials`, the scopes it wants and a
//! `client_assertion`: a JWT it signed (ES384 or RS384) whose `iss` and
//! `sub` are its id, `aud` this token endpoint's URL, `exp` at most five
//! minutes ahead and `jti` never used before (claimed in the store's replay
//! cache, so across replicas). The answer is a bearer token for five
//! minutes: the client, the scopes granted and the expiry, MACed under a
//! key the replicas share (sealed in the store under the data key), so any
//! replica checks it without a lookup.

use std::path::PathBuf;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How long an access token lives.
pub(crate) const TOKEN_SECS: i64 = 300;
/// How far ahead a client assertion may expire (SMART: five minutes).
const MAX_ASSERTION_SECS: i64 = 300;
/// The setting that holds the token key, sealed under the data key.
pub(crate) const TOKEN_KEY_SETTING: &str = "fhir-token-key";

/// A backend client as configured (`[[hsp.fhir_clients]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirClientConfig {
    /// The client's id: its assertions' `iss` and `sub`, and who every read
    /// it makes is audited as.
    pub client_id: String,
    /// A JWK Set file with the client's public keys (each with a `kid`).
    pub jwks_file: PathBuf,
    /// The system scopes it may be granted: `system/Observation.rs`,
    /// `system/Patient.read`, `system/*.rs`, …
    pub scopes: Vec<String>,
}

/// A registered client, loaded.
#[derive(Debug, Clone)]
pub struct FhirClient {
    client_id: String,
    keys: JwkSet,
    scopes: Vec<Scope>,
}

/// A SMART system scope: a resource type (or `*`) read and searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    resource: String,
}

impl Scope {
    /// `system/<Type>.rs`, `.read` (SMART v1, read and search) or `.r`/`.s`
    /// alone, taken as read-and-search since this API only reads.
    fn parse(text: &str) -> Option<Self> {
        Self::parse_resource(text.strip_prefix("system/")?)
    }

    /// `<Type>.rs` and its spellings, whoever's scope it is.
    fn parse_resource(text: &str) -> Option<Self> {
        let (resource, access) = text.split_once('.')?;
        let known = matches!(
            resource,
            "*" | "Patient" | "Observation" | "Device" | "Provenance" | "AuditEvent"
        );
        (known && matches!(access, "rs" | "read" | "r" | "s" | "cruds" | "*")).then(|| Self {
            resource: resource.to_string(),
        })
    }

    /// `*` is every clinical resource, not the audit log: a client reads
    /// AuditEvents (clinicians' names, break-glass reasons, every
    /// patient) only when registered for them by name.
    fn covers(&self, other: &Scope) -> bool {
        self.resource == other.resource || (self.resource == "*" && other.resource != "AuditEvent")
    }

    fn text(&self) -> String {
        format!("system/{}.rs", self.resource)
    }
}

impl FhirClient {
    /// Reads the client's keys and checks its scopes; one line naming the
    /// client and what is wrong otherwise.
    pub fn load(config: &FhirClientConfig) -> Result<Self, String> {
        let fail = |why: String| format!("[[hsp.fhir_clients]] {}: {why}", config.client_id);
        if config.client_id.is_empty() || config.client_id.len() > 64 {
            return Err(fail("client_id must be 1 to 64 characters".into()));
        }
        let text = std::fs::read_to_string(&config.jwks_file)
            .map_err(|e| fail(format!("the JWK Set {}: {e}", config.jwks_file.display())))?;
        let keys: JwkSet = serde_json::from_str(&text)
            .map_err(|e| fail(format!("the JWK Set {}: {e}", config.jwks_file.display())))?;
        if keys.keys.is_empty() {
            return Err(fail("the JWK Set holds no key".into()));
        }
        for key in &keys.keys {
            if key.common.key_id.is_none() {
                return Err(fail("every key needs a kid".into()));
            }
            DecodingKey::from_jwk(key).map_err(|e| fail(format!("a key: {e}")))?;
        }
        let scopes = config
            .scopes
            .iter()
            .map(|s| {
                Scope::parse(s).ok_or_else(|| {
                    fail(format!(
                        "the scope {s:?} (system/<Patient|Observation|Device|*>.rs)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            client_id: config.client_id.clone(),
            keys,
            scopes,
        })
    }

    /// The client's id.
    pub fn id(&self) -> &str {
        &self.client_id
    }
}

/// Why a token request is refused, as RFC 6749 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// A malformed request.
    InvalidRequest(String),
    /// Not `client_credentials`.
    UnsupportedGrantType,
    /// The client or its assertion does not check out (unknown client, a
    /// key it does not hold, a bad signature, the wrong audience, expired,
    /// too far ahead, a `jti` seen before).
    InvalidClient(String),
    /// A scope the client may not have, or none at all.
    InvalidScope(String),
}

impl TokenError {
    /// The `error` code of the answer.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidScope(_) => "invalid_scope",
        }
    }

    /// The `error_description`.
    pub(crate) fn description(&self) -> String {
        match self {
            Self::InvalidRequest(why) | Self::InvalidClient(why) | Self::InvalidScope(why) => {
                why.clone()
            }
            Self::UnsupportedGrantType => "grant_type must be client_credentials".into(),
        }
    }
}

/// An assertion's claims.
#[derive(Debug, Deserialize)]
struct Assertion {
    iss: String,
    sub: String,
    exp: i64,
    jti: String,
}

/// An assertion that checked out: the client, its `jti` (to claim once)
/// and when the assertion expires.
#[derive(Debug)]
pub(crate) struct Asserted<'a> {
    pub(crate) client: &'a FhirClient,
    pub(crate) jti: String,
    pub(crate) expires_at: i64,
}

/// Checks a client assertion made for `token_url` at `now` (Unix seconds):
/// which registered client signed it. Its `jti` is the caller's to claim.
pub(crate) fn verify_assertion<'a>(
    clients: &'a [FhirClient],
    assertion: &str,
    token_url: &str,
    now: i64,
) -> Result<Asserted<'a>, TokenError> {
    let refuse = |why: &str| TokenError::InvalidClient(why.to_string());
    let header =
        jsonwebtoken::decode_header(assertion).map_err(|_| refuse("a malformed assertion"))?;
    if !matches!(header.alg, Algorithm::ES384 | Algorithm::RS384) {
        return Err(refuse("the assertion must be signed with ES384 or RS384"));
    }
    // Who it claims to be picks the keys; the signature then proves it.
    let claimed: Assertion = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| refuse("the assertion's claims (iss, sub, exp, jti) are incomplete"))?;
    let client = clients
        .iter()
        .find(|c| c.client_id == claimed.iss)
        .ok_or_else(|| refuse("no such client is registered"))?;
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| refuse("the assertion names no kid"))?;
    let jwk = client
        .keys
        .find(kid)
        .ok_or_else(|| refuse("the client has no key with that kid"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| refuse("the client's key"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[client.client_id.as_str()]);
    validation.sub = Some(client.client_id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    // Expiry by the HSP's clock, below, not the library's.
    validation.validate_exp = false;
    let verified = jsonwebtoken::decode::<Assertion>(assertion, &key, &validation)
        .map_err(|e| refuse(&format!("the assertion does not verify: {e}")))?
        .claims;
    if verified.sub != verified.iss {
        return Err(refuse("the assertion's sub must be its iss"));
    }
    if verified.exp <= now {
        return Err(refuse("the assertion has expired"));
    }
    if verified.exp > now + MAX_ASSERTION_SECS {
        return Err(refuse("the assertion expires more than five minutes ahead"));
    }
    if verified.jti.is_empty() || verified.jti.len() > 255 {
        return Err(refuse("the assertion needs a jti"));
    }
    Ok(Asserted {
        client,
        jti: verified.jti,
        expires_at: verified.exp,
    })
}

/// The scopes granted of those `requested` (space-separated): each must be
/// one the client may have.
pub(crate) fn grant(client: &FhirClient, requested: &str) -> Result<Vec<String>, TokenError> {
    let mut granted = Vec::new();
    for text in requested.split_whitespace() {
        let scope = Scope::parse(text).ok_or_else(|| {
            TokenError::InvalidScope(format!("{text} is not a system read scope"))
        })?;
        if !client.scopes.iter().any(|allowed| allowed.covers(&scope)) {
            return Err(TokenError::InvalidScope(format!(
                "{text} is not among the client's scopes"
            )));
        }
        granted.push(scope.text());
    }
    if granted.is_empty() {
        return Err(TokenError::InvalidScope("no scope was asked for".into()));
    }
    Ok(granted)
}

/// What a valid access token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grant {
    /// The client.
    #[serde(rename = "c")]
    pub(crate) client: String,
    /// The scopes, as `system/<Type>.rs`, or `user/<Type>.rs` for a
    /// clinician's token.
    #[serde(rename = "s")]
    pub(crate) scopes: Vec<String>,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub(crate) expires_at: i64,
    /// The clinician a user token acts for.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<UserGrant>,
}

/// A clinician's token: taken in the portal, it reads what the clinician's
/// portal session may, while that session lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserGrant {
    #[serde(rename = "n")]
    pub(crate) clinician: String,
    /// The hash of the session's cookie token, hex (the store's key for it;
    /// it opens no session).
    #[serde(rename = "h")]
    pub(crate) session: String,
}

impl Grant {
    /// Whether it lets the client read `resource`.
    pub(crate) fn allows(&self, resource: &str) -> bool {
        let wanted = Scope {
            resource: resource.to_string(),
        };
        let prefix = if self.user.is_some() {
            "user/"
        } else {
            "system/"
        };
        self.scopes
            .iter()
            .filter_map(|s| Scope::parse_resource(s.strip_prefix(prefix)?))
            .any(|s| s.covers(&wanted))
    }
}

/// Makes and checks what the API hands out MACed: access tokens and bulk
/// export jobs, each `<payload>.<MAC>`, both base64url, the payload JSON.
/// The MAC covers a purpose label too, so one kind is never taken for the
/// other.
pub(crate) struct TokenKey(hmac::Key);

/// The purpose label of access tokens.
const ACCESS_TOKEN: &str = "access-token";

impl TokenKey {
    pub(crate) fn new(secret: &Zeroizing<[u8; 32]>) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret.as_slice()))
    }

    fn tag(&self, purpose: &str, payload: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(purpose.as_bytes());
        context.update(b"\n");
        context.update(payload.as_bytes());
        context.sign()
    }

    /// `value` MACed for `purpose`, as URL-safe text.
    pub(crate) fn seal<T: Serialize>(&self, purpose: &str, value: &T) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
        let tag = self.tag(purpose, &payload);
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// What [`TokenKey::seal`] sealed for `purpose`; `None` for anything else.
    pub(crate) fn open<T: serde::de::DeserializeOwned>(
        &self,
        purpose: &str,
        sealed: &str,
    ) -> Option<T> {
        let (payload, tag) = sealed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let expected = self.tag(purpose, payload);
        // Constant time.
        aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_ref(), &tag).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }

    pub(crate) fn mint(&self, grant: &Grant) -> String {
        self.seal(ACCESS_TOKEN, grant)
    }

    /// The grant of a token made by [`TokenKey::mint`] that has not expired
    /// at `now` (Unix seconds); `None` for anything else.
    pub(crate) fn check(&self, token: &str, now: i64) -> Option<Grant> {
        let grant: Grant = self.open(ACCESS_TOKEN, token)?;
        (grant.expires_at > now).then_some(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_cover_and_are_granted_only_when_registered() {
        assert_eq!(
            Scope::parse("system/Observation.rs").map(|s| s.text()),
            Some("system/Observation.rs".into())
        );
        assert!(Scope::parse("system/Observation.read").is_some());
        assert!(
            Scope::parse("user/Observation.rs").is_none(),
            "system scopes only"
        );
        assert!(
            Scope::parse("system/Encounter.rs").is_none(),
            "not served here"
        );
        let client = FhirClient {
            client_id: "ehr".into(),
            keys: JwkSet { keys: Vec::new() },
            scopes: vec![Scope::parse("system/Observation.rs").expect("scope")],
        };
        assert_eq!(
            grant(&client, "system/Observation.read"),
            Ok(vec!["system/Observation.rs".to_string()])
        );
        assert_eq!(
            grant(&client, "system/Observation.rs system/Patient.rs").map_err(|e| e.code()),
            Err("invalid_scope")
        );
        assert_eq!(
            grant(&client, "").map_err(|e| e.code()),
            Err("invalid_scope")
        );
        let all = Grant {
            client: "ehr".into(),
            scopes: vec!["system/*.rs".into()],
            expires_at: 10,
            user: None,
        };
        assert!(all.allows("Device") && all.allows("Observation"));
        assert!(!all.allows("AuditEvent"), "the audit log only by name");
        // A clinician's token reads by its user scopes, and a system scope
        // in it means nothing.
        let clinician = Grant {
            client: "portal".into(),
            scopes: vec!["user/Observation.rs".into(), "system/*.rs".into()],
            expires_at: 10,
            user: Some(UserGrant {
                clinician: "dr-okafor".into(),
                session: "00".into(),
            }),
        };
        assert!(clinician.allows("Observation") && !clinician.allows("AuditEvent"));
        let system_with_user_scope = Grant {
            scopes: vec!["user/*.rs".into()],
            user: None,
            ..clinician
        };
        assert!(!system_with_user_scope.allows("Observation"));
    }

    #[test]
    fn tokens_check_only_unexpired_and_unchanged() {
        let key = TokenKey::new(&Zeroizing::new([7; 32]));
        let grant = Grant {
            client: "ehr".into(),
            scopes: vec!["system/Observation.rs".into()],
            expires_at: 1_000,
            user: None,
        };
        let token = key.mint(&grant);
        assert_eq!(key.check(&token, 999), Some(grant.clone()));
        assert_eq!(key.check(&token, 1_000), None, "expired");
        let other = TokenKey::new(&Zeroizing::new([8; 32]));
        assert_eq!(other.check(&token, 0), None, "another key");
        let (payload, tag) = token.split_once('.').expect("two parts");
        let widened = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Grant {
                scopes: vec!["system/*.rs".into()],
                ..grant.clone()
            })
            .expect("json"),
        );
        assert_ne!(widened, payload);
        assert_eq!(
            key.check(&format!("{widened}.{tag}"), 0),
            None,
            "a changed grant"
        );
        // Sealed for another purpose (a bulk export job), even with the
        // same fields, it is no access token.
        let job = key.seal("bulk-export-job", &grant);
        assert_eq!(key.check(&job, 0), None, "another purpose");
        assert_eq!(key.open::<Grant>("bulk-export-job", &job), Some(grant));
    }
}
