//! The button countdown on stderr, for a pairing performed here or by the
//! daemon.

use std::io::IsTerminal;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::claim::{ClaimProgress, Resolved, human};
use crate::proto::control::{Progress, step};

/// The countdown on stderr: a live line on a terminal, a plain line every
/// 30 s otherwise (logs, CI, a pipe).
pub(crate) struct Countdown {
    terminal: bool,
    ticker: Option<(JoinHandle<()>, Option<indicatif::ProgressBar>)>,
}

impl Countdown {
    pub(crate) fn new() -> Countdown {
        Countdown {
            terminal: std::io::stderr().is_terminal(),
            ticker: None,
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some((task, bar)) = self.ticker.take() {
            task.abort();
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        }
    }
}

impl ClaimProgress for Countdown {
    fn resolved(&mut self, processor: &Resolved) {
        tracing::info!(processor = %processor.describe(), "claiming");
    }

    fn waiting_for_button(&mut self, processor: &Resolved, window: Duration) {
        self.countdown(processor.describe(), window);
    }

    fn button_pressed(&mut self) {
        self.stop();
        eprintln!("button pressed; the processor is signing our certificate");
    }

    fn verifying(&mut self) {
        eprintln!("checking the processor's identity on its main port");
    }
}

impl Countdown {
    /// A step of a claim the daemon performs.
    pub(crate) fn show(&mut self, p: &Progress) {
        match p.step.as_str() {
            step::FOUND => tracing::info!(processor = p.what.as_deref().unwrap_or("?"), "claiming"),
            step::BUTTON => self.countdown(
                p.what.clone().unwrap_or_else(|| "the processor".into()),
                Duration::from_millis(p.left_ms.unwrap_or(0)),
            ),
            step::PRESSED => self.button_pressed(),
            step::VERIFYING => self.verifying(),
            step::RELAYING => {}
            other => eprintln!("{}", p.what.as_deref().unwrap_or(other)),
        }
    }

    fn countdown(&mut self, what: String, window: Duration) {
        self.stop();
        let deadline = Instant::now() + window;
        let line = move || {
            let left = deadline.saturating_duration_since(Instant::now());
            format!(
                "Press the button on {what} — {} left",
                human(&Duration::from_secs(left.as_secs_f64().ceil() as u64))
            )
        };
        if self.terminal {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(line());
            bar.enable_steady_tick(Duration::from_millis(200));
            let ticking = bar.clone();
            let task = tokio::spawn(async move {
                loop {
                    ticking.set_message(line());
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
            self.ticker = Some((task, Some(bar)));
        } else {
            // The first line now, not from the task: a press that comes at
            // once would stop the task before it ever ran.
            eprintln!("{}", line());
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    eprintln!("{}", line());
                }
            });
            self.ticker = Some((task, None));
        }
    }
}
