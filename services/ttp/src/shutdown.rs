//! Stopping promptly. A graceful stop waits for every open call, and a
//! revocation feed is a response stream an HSP keeps open for as long as
//! both run: so on the shutdown signal the feeds end (with `unavailable`, and
//! the HSP reconnects to find the TTP gone, as in any outage), and a call
//! still open after a short grace is dropped rather than waited for.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// How long calls already under way may take to finish once the TTP is
/// asked to stop: longer than any unary call takes here, and well inside
/// the 30 s Kubernetes gives a pod before SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(3);

/// What an open feed answers last when the TTP stops.
pub(crate) fn stopping() -> tonic::Status {
    tonic::Status::unavailable("the TTP is shutting down")
}

/// Runs `serving` until it ends, or until [`GRACE`] after `closing` turned
/// true, whichever is first.
pub(crate) async fn bounded<E>(
    serving: impl Future<Output = Result<(), E>>,
    mut closing: watch::Receiver<bool>,
) -> Result<(), E> {
    let grace_over = async move {
        if closing.wait_for(|closing| *closing).await.is_err() {
            // No one can ask for the stop any more: only `serving` ends it.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        served = serving => served,
        () = grace_over => {
            tracing::warn!(grace_secs = GRACE.as_secs(), "calls still open after the grace period; stopping without them");
            Ok(())
        }
    }
}
