//! The process's logging, signals and limits.

/// Logs to stderr, coloured only when stderr is a terminal (a log file or
/// a journal gets no escape codes); `RUST_LOG` overrides `default`.
pub(crate) fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The open-files limit an HSP should have: each device session holds a
/// socket, and a replica is meant to carry ten thousand devices with room
/// for its database pool, clinicians and the portal.
const HSP_OPEN_FILES: u64 = 65_536;

/// Raises the soft open-files limit towards [`HSP_OPEN_FILES`] (as far as
/// the hard limit allows); says what it did, and warns when the hard limit
/// leaves the HSP fewer descriptors than that.
pub(crate) fn raise_open_files_limit() {
    use vitalgate_rpc::limits;
    let before = limits::open_files();
    match limits::raise_open_files_limit(HSP_OPEN_FILES) {
        Ok(after) if after.soft > before.soft => {
            tracing::info!(
                from = before.soft,
                to = after.soft,
                "open-files limit raised"
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(limit = before.soft, error = %e, "could not raise the open-files limit")
        }
    }
    if before.hard < HSP_OPEN_FILES {
        tracing::warn!(
            hard_limit = before.hard,
            wanted = HSP_OPEN_FILES,
            "the hard open-files limit caps the device sessions this HSP can hold \
             (raise it with the container runtime's or systemd's LimitNOFILE)"
        );
    }
}
