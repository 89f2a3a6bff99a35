//! Web sessions: idle and absolute expiry, touched never backwards, ended by
//! logout and revocation.

use std::sync::Arc;

use crate::{Store, WebSession};

use super::INJECTION_STRINGS;

pub(super) fn web_session(
    hash: u8,
    subject: &str,
    created_at: u64,
    absolute_expiry: u64,
) -> WebSession {
    WebSession {
        token_hash: [hash; 32],
        subject: subject.to_string(),
        data: vec![hash, 0, 255],
        created_at,
        last_seen: created_at,
        absolute_expiry,
    }
}

/// A web session is touched while live (its last request moves on), ends
/// after `idle_secs` without one and at its absolute expiry whatever the
/// activity; an ended session's row is gone. Looking without touching moves
/// nothing; a live token cannot be stored twice.
pub async fn web_sessions_touch_and_expire(store: Arc<dyn Store>) {
    let session = web_session(1, "dr-a", 100, 1000);
    store.put_web_session(&session).await.expect("put");
    assert!(
        store.put_web_session(&session).await.is_err(),
        "a live token is stored once"
    );
    let touched = store
        .touch_web_session(&[1; 32], 150, 60)
        .await
        .expect("touch")
        .expect("live");
    assert_eq!(
        touched,
        WebSession {
            last_seen: 150,
            ..session.clone()
        }
    );
    // Looking does not count as activity.
    assert_eq!(
        store.web_session(&[1; 32], 210, 60).await.expect("look"),
        Some(touched.clone())
    );
    assert_eq!(
        store.web_session(&[1; 32], 211, 60).await.expect("look"),
        None,
        "idle for 61 s"
    );
    assert_eq!(
        store
            .touch_web_session(&[1; 32], 211, 60)
            .await
            .expect("touch"),
        None,
        "idle for idle_secs + 1"
    );
    assert_eq!(
        store.web_session(&[1; 32], 150, 60).await.expect("look"),
        None,
        "the idle session's row is gone"
    );
    assert_eq!(
        store
            .touch_web_session(&[9; 32], 150, 60)
            .await
            .expect("touch"),
        None,
        "unknown"
    );

    // Absolute expiry: busy until the end, then gone.
    store
        .put_web_session(&web_session(2, "dr-a", 100, 300))
        .await
        .expect("put");
    for now in [150, 200, 250, 299] {
        let live = store
            .touch_web_session(&[2; 32], now, 60)
            .await
            .expect("touch");
        assert_eq!(live.map(|s| s.last_seen), Some(now));
    }
    assert_eq!(
        store
            .touch_web_session(&[2; 32], 300, 60)
            .await
            .expect("touch"),
        None,
        "at the absolute expiry"
    );
    assert_eq!(
        store.web_session(&[2; 32], 299, 60).await.expect("look"),
        None,
        "the expired session's row is gone"
    );
    // A clock behind the last request neither ends the session nor moves
    // its last request back.
    store
        .put_web_session(&web_session(3, "dr-b", 500, 900))
        .await
        .expect("put");
    store
        .touch_web_session(&[3; 32], 520, 60)
        .await
        .expect("touch");
    assert_eq!(
        store
            .touch_web_session(&[3; 32], 510, 60)
            .await
            .expect("touch")
            .map(|s| s.last_seen),
        Some(520)
    );
    // A token whose session is past its absolute expiry may be used again
    // (swept when a session is stored).
    store
        .put_web_session(&web_session(3, "dr-c", 900, 2000))
        .await
        .expect("reuse after expiry");
    assert_eq!(
        store
            .web_session(&[3; 32], 901, 60)
            .await
            .expect("look")
            .map(|s| s.subject),
        Some("dr-c".to_string())
    );
}

/// Logout ends one session; revoking a clinician ends every session of
/// theirs and only theirs.
pub async fn web_sessions_end_on_logout_and_revocation(store: Arc<dyn Store>) {
    for (hash, subject) in [
        (1, "dr-a"),
        (2, "dr-a"),
        (3, "dr-a"),
        (4, "dr-b"),
        (5, INJECTION_STRINGS[0]),
    ] {
        store
            .put_web_session(&web_session(hash, subject, 100, 1000))
            .await
            .expect("put");
    }
    assert!(store.delete_web_session(&[1; 32]).await.expect("logout"));
    assert!(!store.delete_web_session(&[1; 32]).await.expect("twice"));
    assert_eq!(
        store.delete_web_sessions_of("dr-a").await.expect("revoke"),
        2
    );
    assert_eq!(
        store.delete_web_sessions_of("dr-a").await.expect("again"),
        0
    );
    for gone in [2, 3] {
        assert_eq!(
            store
                .touch_web_session(&[gone; 32], 150, 60)
                .await
                .expect("touch"),
            None
        );
    }
    for kept in [4, 5] {
        assert!(store
            .touch_web_session(&[kept; 32], 150, 60)
            .await
            .expect("touch")
            .is_some());
    }
}

/// A revocation ends the sessions its clinician opened before it, not one
/// opened after (a re-enrolled clinician's).
pub async fn web_sessions_end_when_opened_before_a_revocation(store: Arc<dyn Store>) {
    for (hash, subject, created_at) in [
        (1, "dr-a", 100),
        (2, "dr-a", 199),
        (3, "dr-a", 200),
        (4, "dr-b", 100),
    ] {
        store
            .put_web_session(&web_session(hash, subject, created_at, 1000))
            .await
            .expect("put");
    }
    assert_eq!(
        store
            .delete_web_sessions_opened_before("dr-a", 200)
            .await
            .expect("revoke"),
        2
    );
    for (hash, live) in [(1, false), (2, false), (3, true), (4, true)] {
        let found = store
            .web_session(&[hash; 32], 210, 500)
            .await
            .expect("read");
        assert_eq!(found.is_some(), live, "session {hash}");
    }
}
