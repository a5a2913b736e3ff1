//! The signals that stop a long-running baton (`server`, `worker`, a `run` in a terminal).

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. Where SIGTERM cannot be watched, only Ctrl-C stops
/// it, rather than stopping at once.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
