//! Progress bars on the terminal: one spinner per load with rows and rows/s.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tributary_ingest::{LoadProgress, TableProgress};

/// The loads of one run, drawn on standard error (or hidden).
pub struct Bars(MultiProgress);

impl Bars {
    /// Bars drawn when `show` (and standard error is a terminal), else hidden.
    pub fn new(show: bool) -> Bars {
        if show && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Bars(MultiProgress::new())
        } else {
            Bars(MultiProgress::with_draw_target(ProgressDrawTarget::hidden()))
        }
    }

    /// Remove the bars from the screen (before the summary is printed).
    pub fn clear(&self) {
        let _ = self.0.clear();
    }
}

impl LoadProgress for Bars {
    fn start(&self, table: &str) -> Box<dyn TableProgress> {
        let bar = self.0.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} {spinner} {human_pos} rows  {rate}  {elapsed}  {msg}",
            )
            .map(|style| {
                style.with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(
                            w,
                            "{} rows/s",
                            crate::output::thousands(state.per_sec() as u64)
                        );
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(table.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar(bar))
    }
}

struct Bar(ProgressBar);

impl TableProgress for Bar {
    fn rows(&self, n: u64) {
        self.0.inc(n);
    }

    fn finish(&self, result: Result<u64, ()>) {
        match result {
            Ok(version) => self
                .0
                .finish_with_message(format!("done, version {version}")),
            Err(()) => self.0.abandon_with_message("FAILED"),
        }
    }
}
