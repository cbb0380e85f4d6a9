//! Test-only pause points: hold an operation at a named point so a test can force a race (let
//! another writer commit first) instead of hoping for one.
//!
//! Inactive unless `TRIBUTARY_TEST_PAUSE_DIR` is set. A point `NAME` then pauses only when the
//! file `NAME.armed` exists in that folder: it removes it (so the point fires once), creates
//! `NAME.paused`, and waits until the test creates `NAME.release` (at most two minutes), which it
//! removes before going on.

use std::path::PathBuf;
use std::time::Duration;

use tracing::warn;

/// The folder of pause files, when pause points are enabled.
fn folder() -> Option<PathBuf> {
    std::env::var_os("TRIBUTARY_TEST_PAUSE_DIR").map(PathBuf::from)
}

/// Pause at `name` if a test armed it (see the module documentation).
pub async fn pause_point(name: &str) {
    let Some(dir) = folder() else { return };
    let armed = dir.join(format!("{name}.armed"));
    if std::fs::remove_file(&armed).is_err() {
        return;
    }
    let release = dir.join(format!("{name}.release"));
    if let Err(e) = std::fs::write(dir.join(format!("{name}.paused")), b"") {
        warn!(point = %name, error = %e, "Cannot signal a test pause point.");
        return;
    }
    for _ in 0..2400 {
        if std::fs::remove_file(&release).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warn!(point = %name, "A test pause point was never released; going on.");
}
