//! The ticket keys behind session resumption (`vitalgate_core::resumption`):
//! a device that moves to another replica, or comes back after a dropped
//! link, resumes in one round trip without signatures.
//!
//! Every replica derives the same key for an epoch ([`EpochKeys`]) from a
//! root the replicas share through the store (sealed under the data key,
//! made by the first replica). Tickets are issued under the current epoch's
//! key and accepted under it and the previous one, so a ticket lives between
//! one and two epochs and then no replica can open it: rotation needs no
//! coordination. No I/O and no clock here.

use vitalgate_core::provider::Secret32;
use vitalgate_core::resumption::TicketKey;
use vitalgate_store::Store;
use zeroize::Zeroizing;

use crate::epoch_keys::EpochKeys;
use crate::vault::SecretVault;

/// The store setting holding the sealed ticket root.
pub(crate) const RESUMPTION_ROOT_SETTING: &str = "resumption-ticket-root";

/// Domain separation for the epoch keys.
const EPOCH_KEY_LABEL: &[u8] = b"vitalgate resumption ticket key v1";

/// One replica's ticket keys.
#[derive(Debug)]
pub(crate) struct TicketKeys(EpochKeys);

impl TicketKeys {
    /// The replica's keys, with the root from the store.
    pub(crate) async fn for_replica(
        epoch_secs: u64,
        store: &dyn Store,
        vault: &SecretVault,
    ) -> Result<Self, crate::HspError> {
        let root = vault
            .shared_secret(store, RESUMPTION_ROOT_SETTING, "resumption ticket root")
            .await?;
        Ok(Self::with_root(&root, epoch_secs))
    }

    fn with_root(root: &Zeroizing<[u8; 32]>, epoch_secs: u64) -> Self {
        Self(EpochKeys::new(root, epoch_secs, EPOCH_KEY_LABEL))
    }

    fn ticket_key(&self, epoch: u64) -> TicketKey {
        // The id is the epoch cut to a byte: the two epochs accepted at
        // any time always differ in it.
        TicketKey::new(epoch as u8, Secret32::from_bytes(*self.0.key(epoch)))
    }

    /// The key new tickets are issued under at `now` (Unix seconds).
    pub(crate) fn issuing(&self, now: u64) -> TicketKey {
        self.ticket_key(self.0.epoch(now))
    }

    /// The keys a ticket presented at `now` may be under.
    pub(crate) fn accepted(&self, now: u64) -> Vec<TicketKey> {
        self.0.accepted(now).map(|e| self.ticket_key(e)).collect()
    }

    /// When a ticket issued at `now` stops being accepted.
    pub(crate) fn expires(&self, now: u64) -> u64 {
        self.0.expires(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;
    use vitalgate_core::factor::AssuranceLevel;
    use vitalgate_core::provider::AwsLc;
    use vitalgate_core::resumption::{issue_ticket, ResumeRequest, Resumer, TicketGrant};

    fn presented_at(keys: &TicketKeys, issued_at: u64, presented_at: u64) -> bool {
        let grant = TicketGrant {
            serial: 5,
            assurance: AssuranceLevel::Aal1,
        };
        let issued = issue_ticket::<AwsLc>(&keys.issuing(issued_at), grant, &mut OsRng);
        let (rm1, _) =
            Resumer::<AwsLc>::start(&issued.ticket, &issued.psk, grant.assurance, &mut OsRng);
        ResumeRequest::<AwsLc>::open(&rm1, &keys.accepted(presented_at)).is_ok()
    }

    #[test]
    fn a_ticket_lives_one_to_two_epochs_and_any_replica_opens_it() {
        let root = Zeroizing::new([4u8; 32]);
        let keys = TicketKeys::with_root(&root, 600);
        // Issued at the start of an epoch: good for two epochs.
        assert!(presented_at(&keys, 6_000, 6_000));
        assert!(presented_at(&keys, 6_000, 7_199));
        assert!(!presented_at(&keys, 6_000, 7_200));
        assert_eq!(keys.expires(6_000), 7_200);
        // Issued at the end of one: still good through the next.
        assert!(presented_at(&keys, 6_599, 7_199));
        // Another replica with the same root opens it; one with another
        // root (another HSP) does not.
        let replica = TicketKeys::with_root(&root, 600);
        let grant = TicketGrant {
            serial: 5,
            assurance: AssuranceLevel::Aal2,
        };
        let issued = issue_ticket::<AwsLc>(&keys.issuing(6_000), grant, &mut OsRng);
        let (rm1, _) =
            Resumer::<AwsLc>::start(&issued.ticket, &issued.psk, grant.assurance, &mut OsRng);
        let opened = ResumeRequest::<AwsLc>::open(&rm1, &replica.accepted(6_100)).expect("replica");
        assert_eq!(opened.grant(), grant);
        let stranger = TicketKeys::with_root(&Zeroizing::new([5u8; 32]), 600);
        assert!(ResumeRequest::<AwsLc>::open(&rm1, &stranger.accepted(6_100)).is_err());
    }
}
