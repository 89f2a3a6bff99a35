//! Renewal that keeps revocation meaningful.
//!
//! A party trades its credential for a successor before it expires:
//!
//! - **Fresh.** It first asks for a nonce (`RenewChallenge`), single-use and
//!   valid five minutes, and signs it with the old key (and the new one): a
//!   recorded request replayed later finds its nonce gone.
//! - **One successor.** Each credential renews once; the successor's serial
//!   is claimed before it is issued, so two racing requests get the same one,
//!   and asking again with the same key (a lost answer) returns it, minting
//!   nothing.
//! - **A chain.** Each link is recorded both ways, so revoking any credential
//!   of a chain revokes all of it: a card's credential revoked after a
//!   renewal takes the renewal with it.
//! - **A new key retires the old.** Renewal to a new key revokes the old
//!   serial at once.
//! - **No laundering.** The same key keeps its protection; a new key is a
//!   software key, whatever the old one was: a key that left no token behind
//!   never reaches AAL3 by renewal.

use tonic::Status;
use vitalgate_core::credential::{Credential, KeyProtection};
use vitalgate_rpc::store_status;

use crate::Ttp;

/// How long a renewal nonce stays usable.
pub(crate) const NONCE_LIFETIME_SECS: u64 = 300;
/// Settings key prefixes of the renewal chain's links.
const RENEWED_TO: &str = "renewed-to/";
const RENEWED_FROM: &str = "renewed-from/";

/// What the renewal nonce's stored state holds: the serial it was given for.
pub(crate) fn nonce_state(serial: u64) -> [u8; 8] {
    serial.to_be_bytes()
}

/// The protection a renewed credential for `new_key` may claim.
pub(crate) fn renewed_protection(old: &Credential, new_key: &[u8; 32]) -> KeyProtection {
    if old.public_key() == new_key {
        old.body().key_protection
    } else {
        KeyProtection::Software
    }
}

fn parse_serial(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

impl Ttp {
    /// The successor's serial: claims a fresh one for `old`, or returns the
    /// one an earlier renewal claimed (`true` when it is fresh).
    pub(crate) async fn claim_successor(&self, old: u64) -> Result<(u64, bool), Status> {
        let store = &self.inner.store;
        let key = format!("{RENEWED_TO}{old}");
        if let Some(existing) = store.setting(&key).await.map_err(|e| store_status(&e))? {
            return parse_serial(&existing)
                .map(|serial| (serial, false))
                .ok_or_else(|| Status::internal("a renewal link is damaged"));
        }
        let fresh = store.next_serial().await.map_err(|e| store_status(&e))?;
        let stored = store
            .put_setting_if_absent(&key, fresh.to_string().as_bytes())
            .await
            .map_err(|e| store_status(&e))?;
        let serial =
            parse_serial(&stored).ok_or_else(|| Status::internal("a renewal link is damaged"))?;
        if serial == fresh {
            store
                .put_setting(
                    &format!("{RENEWED_FROM}{fresh}"),
                    old.to_string().as_bytes(),
                )
                .await
                .map_err(|e| store_status(&e))?;
        }
        Ok((serial, serial == fresh))
    }

    /// The serial `serial` was renewed to, if it was.
    pub(crate) async fn successor(&self, serial: u64) -> Result<Option<u64>, Status> {
        let link = self
            .inner
            .store
            .setting(&format!("{RENEWED_TO}{serial}"))
            .await
            .map_err(|e| store_status(&e))?;
        Ok(link.as_deref().and_then(parse_serial))
    }

    /// Every serial in `serial`'s renewal chain (itself included), oldest first.
    pub(crate) async fn renewal_chain(&self, serial: u64) -> Result<Vec<u64>, Status> {
        let store = &self.inner.store;
        let link = |prefix: &'static str, of: u64| async move {
            store
                .setting(&format!("{prefix}{of}"))
                .await
                .map(|v| v.as_deref().and_then(parse_serial))
                .map_err(|e| store_status(&e))
        };
        let mut chain = vec![serial];
        // Chains are short (one link a renewal); the bound only guards
        // against a damaged store linking in a circle.
        while chain.len() < 10_000 {
            match link(RENEWED_FROM, chain[0]).await? {
                Some(older) if !chain.contains(&older) => chain.insert(0, older),
                _ => break,
            }
        }
        while chain.len() < 10_000 {
            let newest = *chain.last().expect("the chain holds `serial`");
            match link(RENEWED_TO, newest).await? {
                Some(newer) if !chain.contains(&newer) => chain.push(newer),
                _ => break,
            }
        }
        Ok(chain)
    }

    /// Revokes `serial` and the rest of its renewal chain; the serials newly
    /// revoked, in chain order.
    pub(crate) async fn revoke_chain(&self, serial: u64, reason: &str) -> Result<Vec<u64>, Status> {
        let mut revoked = Vec::new();
        for member in self.renewal_chain(serial).await? {
            let why = if member == serial {
                reason.to_string()
            } else {
                format!("{reason} (renewal chain of serial {serial})")
            };
            if self.revoke_serial(member, &why).await? {
                revoked.push(member);
            }
        }
        Ok(revoked)
    }

    /// Revokes one serial and wakes the revocation feeds; `false` when it
    /// was revoked before.
    pub(crate) async fn revoke_serial(&self, serial: u64, reason: &str) -> Result<bool, Status> {
        let record = self
            .inner
            .store
            .revoke(serial, reason, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        if let Some(record) = &record {
            self.inner.newest_revocation.send_replace(record.id);
        }
        Ok(record.is_some())
    }
}
