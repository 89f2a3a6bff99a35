//! Rolling the TTP's signing key over without a flag day.
//!
//! 1. **Add** (`RotateTtpKey`, `vitalgate admin rotate-ttp-key`): a new key
//!    is made and published in an anchor statement the current key signs
//!    (`vitalgate_rpc::anchors`). HSPs get it on the revocation feed and pass
//!    it to devices inside their secure channel; both check the signature
//!    against the keys they already trust.
//! 2. **Switch**: after the overlap (7 days unless the administrator says
//!    otherwise) the new key signs new credentials, and renewals move every
//!    party onto it. Both keys stay anchors.
//! 3. **Retire**: once no unrevoked credential the old key signed is still
//!    valid, the old key's files are removed and a statement without it,
//!    signed by the new key, is published: from then on nobody trusts it.
//!
//! Each step is audited (`ttp_key.added`, `ttp_key.published`,
//! `ttp_key.switched`, `ttp_key.retired`). Statements are kept in the store
//! (`trust-anchors/<version>`) so that every feed and trust bundle serves
//! all of them, oldest first.

use std::time::Duration;

use tonic::Status;
use vitalgate_core::credential::{Credential, KeyId};
use vitalgate_core::provider::AwsLc;
use vitalgate_proto::v1;
use vitalgate_rpc::anchors;
use vitalgate_rpc::store_status;
use vitalgate_store::{Store, StoreError};

use crate::Ttp;

/// The settings key of the newest statement's version.
const LATEST: &str = "trust-anchors/latest";
/// The settings key prefix of each statement, by version.
const STATEMENT: &str = "trust-anchors/";
/// How often the upkeep looks for a key to retire (by the TTP's clock).
const SWEEP_SECS: u64 = 3600;

/// The newest statement's version (0: none yet).
async fn latest_version(store: &dyn Store) -> Result<u64, StoreError> {
    Ok(store
        .setting(LATEST)
        .await?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// The statements newer than `after`, oldest first.
pub(crate) async fn statements_after(
    store: &dyn Store,
    after: u64,
) -> Result<Vec<v1::AnchorUpdate>, StoreError> {
    let latest = latest_version(store).await?;
    let mut statements = Vec::new();
    for version in after + 1..=latest {
        if let Some(bytes) = store.setting(&format!("{STATEMENT}{version}")).await? {
            match anchors::from_bytes(&bytes) {
                Some(statement) => statements.push(statement),
                None => tracing::error!(version, "a stored anchor statement is damaged"),
            }
        }
    }
    Ok(statements)
}

fn hex_key(key: &[u8]) -> String {
    hex::encode(key)
}

impl Ttp {
    /// Every anchor statement, oldest first.
    pub(crate) async fn anchor_statements(&self) -> Result<Vec<v1::AnchorUpdate>, Status> {
        statements_after(&*self.inner.store, 0)
            .await
            .map_err(|e| store_status(&e))
    }

    /// Publishes the current anchors in a new statement signed by the key
    /// signing now; wakes the feeds.
    async fn publish_anchors(&self, why: &str) -> Result<v1::AnchorUpdate, Status> {
        let store = &*self.inner.store;
        let version = latest_version(store).await.map_err(|e| store_status(&e))? + 1;
        let now = self.now();
        let statement = {
            let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
            anchors::sign(version, &keys.anchors(), keys.active(now))
                .map_err(|e| Status::unavailable(format!("the TTP's key did not sign: {e}")))?
        };
        let stored = store
            .put_setting_if_absent(
                &format!("{STATEMENT}{version}"),
                &anchors::to_bytes(&statement),
            )
            .await
            .map_err(|e| store_status(&e))?;
        if stored != anchors::to_bytes(&statement) {
            return Err(Status::aborted(
                "another TTP replica published an anchor statement at the same time; try again",
            ));
        }
        store
            .put_setting(LATEST, &version.to_be_bytes())
            .await
            .map_err(|e| store_status(&e))?;
        self.inner.anchors_version.send_replace(version);
        let listed: Vec<String> = statement.anchors.iter().map(|a| hex_key(a)).collect();
        tracing::info!(
            version,
            signer = %hex_key(&statement.signer),
            anchors = ?listed,
            "published the TTP's trust anchors"
        );
        self.audit(
            "ttp_key.published",
            "ttp",
            &format!("anchors v{version}"),
            &format!(
                "{why}; anchors {}; signed by {}",
                listed.join(","),
                hex_key(&statement.signer)
            ),
        )
        .await;
        Ok(statement)
    }

    /// Adds a signing key that signs after `overlap_secs` (the configured
    /// overlap when 0) and publishes it signed by the current key.
    pub(crate) async fn rotate_key(
        &self,
        overlap_secs: u64,
    ) -> Result<v1::RotateTtpKeyResponse, Status> {
        let overlap = match overlap_secs {
            0 => self.inner.config.key_overlap_secs,
            given => given,
        };
        let now = self.now();
        let signs_from = now + overlap;
        let (new_key, current) = {
            let mut keys = self.inner.keys.write().unwrap_or_else(|p| p.into_inner());
            if let Some((pending, from)) = keys.pending(now) {
                return Err(Status::failed_precondition(format!(
                    "a rollover is under way: key {} starts signing in {} h (Unix time {from}); \
                     rotate again after that",
                    hex_key(&pending),
                    from.saturating_sub(now).div_ceil(3600)
                )));
            }
            let current = keys.active(now).public_key();
            let new_key = keys.add_key(signs_from).map_err(|e| match e.kind() {
                std::io::ErrorKind::Unsupported => Status::failed_precondition(e.to_string()),
                _ => Status::internal(format!("the new key could not be written: {e}")),
            })?;
            (new_key, current)
        };
        tracing::info!(
            new_key = %hex_key(&new_key),
            current_key = %hex_key(&current),
            signs_from,
            "TTP key rollover started"
        );
        self.audit(
            "ttp_key.added",
            "admin",
            &hex_key(&new_key),
            &format!(
                "signs from {signs_from} (overlap {overlap} s); {} signs until then",
                hex_key(&current)
            ),
        )
        .await;
        let statement = self.publish_anchors("a new key was added").await?;
        self.inner.rollover_changed.notify_one();
        Ok(v1::RotateTtpKeyResponse {
            new_public_key: new_key.to_vec(),
            current_public_key: current.to_vec(),
            signs_from: signs_from as i64,
            statement_version: statement.version,
        })
    }

    /// Whether any credential `key` signed is still valid at `now` (not
    /// expired, not revoked).
    async fn signed_valid_credentials(&self, key: &[u8; 32], now: u64) -> Result<bool, Status> {
        let store = &*self.inner.store;
        let issuer = KeyId::of::<AwsLc>(key);
        let revoked = self.revoked_serials().await?;
        let credentials = store
            .list_credentials()
            .await
            .map_err(|e| store_status(&e))?;
        Ok(credentials.iter().any(|c| {
            c.not_after >= now
                && !revoked.contains(&c.serial)
                && Credential::decode(&c.encoded).is_ok_and(|d| d.issuer() == issuer)
        }))
    }

    /// One pass of the rollover's upkeep: audits a switch of the signing key,
    /// retires superseded keys no valid credential depends on, and publishes
    /// the anchors again if a crash left the newest statement behind them.
    async fn rollover_pass(&self, signing: &mut [u8; 32]) -> Result<(), Status> {
        let now = self.now();
        let (active, superseded, current) = {
            let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
            (
                keys.active(now).public_key(),
                keys.superseded(now),
                keys.anchors(),
            )
        };
        if active != *signing {
            tracing::info!(key = %hex_key(&active), previous = %hex_key(signing), "the TTP's new key signs from now on");
            self.audit(
                "ttp_key.switched",
                "ttp",
                &hex_key(&active),
                &format!("signs new credentials; {} no longer does", hex_key(signing)),
            )
            .await;
            *signing = active;
        }
        let statements = self.anchor_statements().await?;
        let Some(newest) = statements.last() else {
            // No rollover ever started: nothing to retire or publish.
            return Ok(());
        };
        let mut retired = false;
        for old in superseded {
            if self.signed_valid_credentials(&old, now).await? {
                continue;
            }
            self.inner
                .keys
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retire(&old, now)
                .map_err(|e| Status::internal(format!("retiring a TTP key: {e}")))?;
            self.audit(
                "ttp_key.retired",
                "ttp",
                &hex_key(&old),
                "no credential it signed is still valid; no longer an anchor",
            )
            .await;
            retired = true;
        }
        let stale = newest
            .anchors
            .iter()
            .map(|a| a.as_slice())
            .ne(current.iter().map(|a| a.as_slice()));
        if retired {
            self.publish_anchors("the old key was retired").await?;
        } else if stale {
            self.publish_anchors("the statement caught up with the keys")
                .await?;
        }
        Ok(())
    }

    /// Runs the rollover's upkeep until the TTP stops: at each key's switch
    /// time and every hour of the TTP's clock.
    pub(crate) async fn keep_keys(self) {
        let mut signing = {
            let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
            keys.active(self.now()).public_key()
        };
        loop {
            if let Err(e) = self.rollover_pass(&mut signing).await {
                tracing::warn!(error = %e.message(), "TTP key rollover upkeep failed; retrying");
            }
            let now = self.now();
            let next = {
                let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
                keys.pending(now)
                    .map_or(now + SWEEP_SECS, |(_, from)| from.min(now + SWEEP_SECS))
            };
            let clock = self.inner.config.clock.clone();
            tokio::select! {
                _ = vitalgate_rpc::clock::sleep_until(&*clock, next) => {}
                _ = self.inner.rollover_changed.notified() => {}
                // A failed pass is retried soon, whatever the clock says.
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    }
}
