//! Ctrl-C and SIGTERM: the first cancels gracefully, the second stops at once.

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Cancel `token` on Ctrl-C or SIGTERM (once; a second signal exits at once).
pub fn cancel_on_signals(token: CancellationToken, what: &'static str) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "Cannot listen for SIGTERM.");
                    let _ = tokio::signal::ctrl_c().await;
                    token.cancel();
                    return;
                }
            };
        let which = tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        };
        eprintln!("\n{which}: {what}…");
        token.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("Stopping at once; tables keep their last committed version.");
        std::process::exit(1);
    });
}
