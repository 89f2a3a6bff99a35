//! Keys that change every epoch, derived from a root secret the replicas
//! share through the store: any replica computes any epoch's key, so a
//! cookie or a ticket one replica made is checked by another, and keys
//! rotate with no coordination. A key lives for one epoch and is accepted
//! for one more. Used by the admission cookies and the resumption tickets,
//! each under a label of its own. No I/O and no clock: `now` is a parameter.

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

/// One use's epoch keys.
pub(crate) struct EpochKeys {
    root: hmac::Key,
    epoch_secs: u64,
    label: &'static [u8],
}

impl std::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochKeys")
            .field("epoch_secs", &self.epoch_secs)
            .finish_non_exhaustive()
    }
}

impl EpochKeys {
    /// Keys under `label` from `root`, changing every `epoch_secs` seconds
    /// (at least one).
    pub(crate) fn new(root: &Zeroizing<[u8; 32]>, epoch_secs: u64, label: &'static [u8]) -> Self {
        Self {
            root: hmac::Key::new(hmac::HMAC_SHA256, root.as_slice()),
            epoch_secs: epoch_secs.max(1),
            label,
        }
    }

    /// The epoch `now` (Unix seconds) falls in.
    pub(crate) fn epoch(&self, now: u64) -> u64 {
        now / self.epoch_secs
    }

    /// The epochs whose keys are accepted at `now`: this one and the one before.
    pub(crate) fn accepted(&self, now: u64) -> impl Iterator<Item = u64> {
        let epoch = self.epoch(now);
        [Some(epoch), epoch.checked_sub(1)].into_iter().flatten()
    }

    /// When what is made at `now` stops being accepted: the end of the
    /// next epoch.
    pub(crate) fn expires(&self, now: u64) -> u64 {
        (self.epoch(now) + 2) * self.epoch_secs
    }

    /// `epoch`'s key: HMAC-SHA256 of the label and the epoch under the root.
    pub(crate) fn key(&self, epoch: u64) -> Zeroizing<[u8; 32]> {
        let mut input = self.label.to_vec();
        input.extend_from_slice(&epoch.to_be_bytes());
        let tag = hmac::sign(&self.root, &input);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(tag.as_ref());
        key
    }
}
