//! The live-session registry: every device session (and every handshake
//! past its credential check) of this replica, by the peer's serial, so that
//! a revocation, a replacement or shutdown can close it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::stats::HspStats;
use crate::trust::Peers;

/// Why the HSP closes a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The peer's credential was revoked.
    Revoked,
    /// The HSP is stopping.
    ShuttingDown,
    /// The device was replaced by another for its patient, or unbound.
    Replaced,
    /// The device's patient was discharged.
    Discharged,
}

/// A live session's id and the sender that closes it.
type Closer = (u64, watch::Sender<Option<CloseReason>>);

/// The replica's live sessions.
pub(crate) struct LiveSessions {
    by_serial: Mutex<HashMap<u64, Vec<Closer>>>,
    next_id: AtomicU64,
    stats: Arc<HspStats>,
}

impl LiveSessions {
    pub(crate) fn new(stats: Arc<HspStats>) -> Self {
        Self {
            by_serial: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stats,
        }
    }

    /// Registers a live session of `serial`: from now on a revocation, a
    /// replacement or shutdown closes it; before it, a revocation is in
    /// `peers`, which [`LiveGuard::must_close`] asks too. Unregistered when
    /// the guard drops.
    pub(crate) fn register(self: &Arc<Self>, serial: u64, peers: Arc<Peers>) -> LiveGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, closed) = watch::channel(None);
        self.by_serial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(serial)
            .or_default()
            .push((id, tx));
        self.stats.live_sessions.fetch_add(1, Ordering::Relaxed);
        LiveGuard {
            sessions: self.clone(),
            peers,
            serial,
            id,
            closed,
        }
    }

    fn unregister(&self, serial: u64, id: u64) {
        let mut live = self.by_serial.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sessions) = live.get_mut(&serial) {
            sessions.retain(|(session, _)| *session != id);
            if sessions.is_empty() {
                live.remove(&serial);
            }
        }
        self.stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
    }

    /// Closes every session of `serial`.
    pub(crate) fn close(&self, serial: u64, reason: CloseReason) {
        let senders = self
            .by_serial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&serial)
            .unwrap_or_default();
        if !senders.is_empty() {
            tracing::info!(
                serial,
                sessions = senders.len(),
                ?reason,
                "closing sessions"
            );
        }
        for (_, sender) in senders {
            let _ = sender.send(Some(reason));
        }
    }

    /// Closes every session (on shutdown, so streams drain).
    pub(crate) fn close_all(&self) {
        let live = std::mem::take(&mut *self.by_serial.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, sender) in live.into_values().flatten() {
            let _ = sender.send(Some(CloseReason::ShuttingDown));
        }
    }
}

/// A registered live session; unregisters it when dropped.
pub(crate) struct LiveGuard {
    sessions: Arc<LiveSessions>,
    peers: Arc<Peers>,
    serial: u64,
    id: u64,
    /// Says why the session must close, once it must.
    pub(crate) closed: watch::Receiver<Option<CloseReason>>,
}

impl LiveGuard {
    /// Why the session must close, if it must: a revocation applied before
    /// the session was registered is found in the trust store, one applied
    /// since by the close signal.
    pub(crate) fn must_close(&self) -> Option<CloseReason> {
        let signalled = *self.closed.borrow();
        signalled.or_else(|| {
            self.peers
                .is_revoked(self.serial)
                .then_some(CloseReason::Revoked)
        })
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.sessions.unregister(self.serial, self.id);
    }
}
