//! A party's identity on disk: its key seed (owner-only), its credential and
//! the TTP's trust anchors; and enrollment with the TTP to get them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand_core::{OsRng, RngCore};
use tonic::transport::Channel;
use vitalgate_core::credential::{Credential, TrustStore};
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_proto::v1;
use zeroize::Zeroizing;

const SEED_FILE: &str = "identity.seed";
const CREDENTIAL_FILE: &str = "credential.bin";
const ANCHORS_FILE: &str = "trust-anchors.bin";
/// The version of the newest anchor statement applied to `ANCHORS_FILE`.
const ANCHORS_VERSION_FILE: &str = "trust-anchors.version";
/// What a proof of possession signs: must match the TTP's label.
const ENROLL_LABEL: &[u8] = b"vitalgate/1 enroll";
/// What a renewal request signs: must match the TTP's label.
const RENEW_LABEL: &[u8] = b"vitalgate/1 renew";

/// Why an identity could not be loaded or enrolled.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("identity files: {0}")]
    Io(#[from] std::io::Error),
    /// The TTP refused or could not be reached.
    #[error("enrollment with the TTP: {}", crate::status_text(.0))]
    Rpc(#[from] tonic::Status),
    /// What the TTP or the disk returned does not decode.
    #[error("invalid identity data: {0}")]
    Invalid(String),
}

/// A party's key, credential and trusted TTP keys.
pub struct Identity {
    seed: Secret32,
    /// The TTP-issued credential.
    pub credential: Credential,
    /// The TTP's public keys at enrollment.
    pub trust_anchors: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("serial", &self.credential.serial())
            .field(
                "subject",
                &String::from_utf8_lossy(self.credential.subject()),
            )
            .finish_non_exhaustive()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(tmp, path)
}

impl Identity {
    /// Loads the identity in `dir`, if one was enrolled there.
    pub fn load(dir: &Path) -> Result<Option<Self>, IdentityError> {
        let credential_path = dir.join(CREDENTIAL_FILE);
        if !credential_path.exists() {
            return Ok(None);
        }
        let seed_path = dir.join(SEED_FILE);
        let mode = fs::metadata(&seed_path)?.permissions().mode();
        // Group read is allowed: Kubernetes mounts a Secret's files 0440 for
        // the pod's own fsGroup. Anything more (group write, any access by
        // others) is refused.
        if mode & 0o037 != 0 {
            return Err(IdentityError::Invalid(format!(
                "{} is open to others (mode {mode:o}); chmod 600 it",
                seed_path.display()
            )));
        }
        let seed = Zeroizing::new(fs::read(&seed_path)?);
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::Invalid("the key seed is not 32 bytes".into()))?;
        let credential = Credential::decode(&fs::read(credential_path)?)
            .map_err(|e| IdentityError::Invalid(format!("credential: {e}")))?;
        let anchors = fs::read(dir.join(ANCHORS_FILE))?;
        Ok(Some(Self {
            seed: Secret32::from_bytes(seed),
            credential,
            trust_anchors: split_anchors(&anchors)?,
        }))
    }

    /// Enrolls with the TTP using `token`: makes a key in software (kept in `dir` before the
    /// request, so a crash after the TTP answered does not lose it), proves
    /// possession of it, and keeps the credential the TTP returns.
    pub async fn enroll(
        dir: &Path,
        ttp: &mut v1::ttp_client::TtpClient<Channel>,
        token: &str,
    ) -> Result<Self, IdentityError> {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *seed);
        write_private(&dir.join(SEED_FILE), &*seed)?;
        let seed = Secret32::from_bytes(*seed);
        let signer = SoftwareSigner::<AwsLc>::from_seed(&seed);
        let (credential, encoded, anchors) = enroll_key(ttp, token, &signer).await?;
        write_private(&dir.join(ANCHORS_FILE), &anchors.concat())?;
        write_private(&dir.join(CREDENTIAL_FILE), &encoded)?;
        Ok(Self {
            seed,
            credential,
            trust_anchors: anchors,
        })
    }

    /// Renews the credential (as [`Identity::renew`]) when `now` has passed
    /// its [`renewal_due`] time; whether it did. A party that runs only now
    /// and then (a clinician's client) calls this at each start.
    pub async fn renew_if_due(
        &mut self,
        dir: &Path,
        ttp: &mut v1::ttp_client::TtpClient<Channel>,
        now: u64,
    ) -> Result<bool, IdentityError> {
        if now < renewal_due(&self.credential) {
            return Ok(false);
        }
        self.renew(dir, ttp).await?;
        Ok(true)
    }

    /// Renews this identity's credential with the TTP (the same key, a new
    /// period and serial) and keeps the successor and the TTP's current keys
    /// in `dir`, where [`Identity::load`] finds them.
    pub async fn renew(
        &mut self,
        dir: &Path,
        ttp: &mut v1::ttp_client::TtpClient<Channel>,
    ) -> Result<(), IdentityError> {
        self.renew_unsaved(ttp).await?;
        self.save(dir)
    }

    /// Renews this identity's credential with the TTP (the same key) in
    /// memory only: for a party whose identity directory may be read-only
    /// (a Kubernetes Secret), which keeps the successor elsewhere.
    pub async fn renew_unsaved(
        &mut self,
        ttp: &mut v1::ttp_client::TtpClient<Channel>,
    ) -> Result<(), IdentityError> {
        let signer = self.signer();
        let renewed = renew_key(ttp, &self.credential, &signer, None).await?;
        self.credential = renewed.credential;
        self.trust_anchors = renewed.trust_anchors;
        Ok(())
    }

    /// Applies the TTP's anchor statements (a key rollover; see
    /// [`crate::anchors`]) to the keys this identity trusts, each newer one
    /// only if signed by a key trusted at that point, and keeps the result
    /// in `dir` beside the identity. Returns what was applied and refused.
    pub fn apply_anchor_updates(
        &mut self,
        dir: &Path,
        updates: &[v1::AnchorUpdate],
    ) -> Result<crate::anchors::Applied, IdentityError> {
        let version_file = dir.join(ANCHORS_VERSION_FILE);
        let mut set = crate::anchors::AnchorSet {
            anchors: self.trust_anchors.clone(),
            version: fs::read_to_string(&version_file)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        };
        let applied = set.apply(updates);
        if applied.versions.is_empty() {
            return Ok(applied);
        }
        let previous = std::mem::replace(&mut self.trust_anchors, set.anchors);
        if let Err(e) = self.save(dir) {
            self.trust_anchors = previous;
            return Err(e);
        }
        // After the keys: a crash in between applies the same statements again.
        write_private(&version_file, set.version.to_string().as_bytes())?;
        Ok(applied)
    }

    /// Fetches the TTP's anchor statements and applies them (as
    /// [`Identity::apply_anchor_updates`]): for a party that starts now and
    /// then (a clinician's client), at each start.
    pub async fn refresh_anchors(
        &mut self,
        dir: &Path,
        ttp: &mut v1::ttp_client::TtpClient<Channel>,
    ) -> Result<crate::anchors::Applied, IdentityError> {
        let bundle = ttp
            .trust_bundle(crate::trace_context::request(v1::TrustBundleRequest {}))
            .await?
            .into_inner();
        self.apply_anchor_updates(dir, &bundle.anchor_updates)
    }

    /// Writes the credential and the TTP's keys into `dir` (the key seed is
    /// never rewritten).
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        write_private(&dir.join(ANCHORS_FILE), &self.trust_anchors.concat())?;
        write_private(&dir.join(CREDENTIAL_FILE), &self.credential.encode())?;
        Ok(())
    }

    /// The signer for this identity's key.
    pub fn signer(&self) -> SoftwareSigner<AwsLc> {
        SoftwareSigner::from_seed(&self.seed)
    }

    /// A trust store holding the TTP's keys.
    pub fn trust_store(&self) -> TrustStore {
        let mut trust = TrustStore::new();
        for anchor in &self.trust_anchors {
            trust.add_issuer::<AwsLc>(*anchor);
        }
        trust
    }

    /// This identity's pairing key for device-to-device use, derived from its
    /// seed (so it needs no extra file); given to the peers it pairs with.
    pub fn pairing_key(&self) -> Secret32 {
        use vitalgate_core::provider::CryptoProvider;
        let mut out = [0u8; 32];
        AwsLc::hkdf_expand(&self.seed, &[b"vitalgate/1 pairing secret"], &mut out);
        Secret32::from_bytes(out)
    }
}

fn split_anchors(bytes: &[u8]) -> Result<Vec<[u8; 32]>, IdentityError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(32) {
        return Err(IdentityError::Invalid(
            "trust anchors file is damaged".into(),
        ));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| c.try_into().expect("chunks of 32"))
        .collect())
}

/// Enrolls the key behind `signer` (a smart card, a secure element, a PKCS#11
/// token: the key never leaves it) with the TTP using `token`: proves
/// possession and returns the credential (decoded and as the TTP encoded it)
/// and the TTP's keys. The caller keeps them; the key stays where it is.
pub async fn enroll_key(
    ttp: &mut v1::ttp_client::TtpClient<Channel>,
    token: &str,
    signer: &dyn Signer,
) -> Result<(Credential, Vec<u8>, Vec<[u8; 32]>), IdentityError> {
    let public_key = signer.public_key();
    let proof = signer
        .sign(&[ENROLL_LABEL, token.as_bytes(), &public_key].concat())
        .map_err(|e| IdentityError::Invalid(e.to_string()))?;
    let response = ttp
        .enroll(crate::trace_context::request(v1::EnrollRequest {
            token: token.to_string(),
            public_key: public_key.to_vec(),
            proof_of_possession: proof.to_vec(),
        }))
        .await?
        .into_inner();
    let (credential, anchors) = issued(&response, &public_key)?;
    Ok((credential, response.credential, anchors))
}

/// A credential the TTP issued, with its keys at the time.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The credential.
    pub credential: Credential,
    /// The TTP's public keys.
    pub trust_anchors: Vec<[u8; 32]>,
}

/// When `credential` is due for renewal (Unix seconds): two thirds into its
/// validity, so that a party failing to renew has a third of the life left
/// to notice and retry before it expires. Parties add their own jitter.
pub fn renewal_due(credential: &Credential) -> u64 {
    let body = credential.body();
    let (from, until) = (u64::from(body.not_before), u64::from(body.not_after));
    from + until.saturating_sub(from) * 2 / 3
}

/// Renews `credential` with the TTP: asks for a nonce, signs it with the
/// credential's key (`old`) and, to move to a new key, with `new` too (the
/// TTP then revokes the old serial, and a new key is a software key unless
/// attested). Returns the successor.
pub async fn renew_key(
    ttp: &mut v1::ttp_client::TtpClient<Channel>,
    credential: &Credential,
    old: &dyn Signer,
    new: Option<&dyn Signer>,
) -> Result<Issued, IdentityError> {
    let encoded = credential.encode();
    let nonce = ttp
        .renew_challenge(crate::trace_context::request(v1::RenewChallengeRequest {
            credential: encoded.clone(),
        }))
        .await?
        .into_inner()
        .nonce;
    let new = new.unwrap_or(old);
    let public_key = new.public_key();
    let signed = [RENEW_LABEL, &nonce, &encoded, &public_key].concat();
    let sign = |signer: &dyn Signer| {
        signer
            .sign(&signed)
            .map(|s| s.to_vec())
            .map_err(|e| IdentityError::Invalid(e.to_string()))
    };
    let response = ttp
        .renew(crate::trace_context::request(v1::RenewRequest {
            credential: encoded.clone(),
            public_key: public_key.to_vec(),
            old_key_signature: sign(old)?,
            new_key_signature: sign(new)?,
            nonce,
        }))
        .await?
        .into_inner();
    let (credential, anchors) = issued(&response, &public_key)?;
    Ok(Issued {
        credential,
        trust_anchors: anchors,
    })
}

/// The credential and keys in a TTP's answer, checked to certify `key`.
fn issued(
    response: &v1::EnrollResponse,
    key: &[u8; 32],
) -> Result<(Credential, Vec<[u8; 32]>), IdentityError> {
    let credential = Credential::decode(&response.credential)
        .map_err(|e| IdentityError::Invalid(format!("credential from the TTP: {e}")))?;
    if credential.public_key() != key {
        return Err(IdentityError::Invalid(
            "the TTP certified another key".into(),
        ));
    }
    let anchors: Vec<[u8; 32]> = response
        .trust_anchors
        .iter()
        .map(|a| a.as_slice().try_into())
        .collect::<Result<_, _>>()
        .map_err(|_| IdentityError::Invalid("a trust anchor is not 32 bytes".into()))?;
    Ok((credential, anchors))
}
