//! Progress bars (indicatif) for pretraining, selection and fine-tuning. Bars are drawn on
//! stderr when it is a terminal and hidden otherwise (CI logs get the plain log lines only).

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one run, and log lines that do not tear them.
pub struct Progress {
    bars: MultiProgress,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Bars on stderr when it is a terminal, hidden otherwise.
    pub fn new() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            bars: MultiProgress::with_draw_target(target),
        }
    }

    /// A new bar of `len` steps labelled `label`.
    pub fn bar(&self, len: u64, label: &str) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{prefix:>24} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})",
        )
        .expect("the template is valid");
        self.bars.add(
            ProgressBar::new(len)
                .with_style(style)
                .with_prefix(label.to_string()),
        )
    }

    /// Prints a log line on stdout above the bars.
    pub fn log(&self, line: impl AsRef<str>) {
        self.bars.suspend(|| println!("{}", line.as_ref()));
    }
}
