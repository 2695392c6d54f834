//! A progress bar on stderr for downloads (`indicatif`).

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use crate::model::store::Progress;

/// Draws one bar per transfer on stderr.
#[derive(Debug, Default)]
pub struct TerminalProgress {
    bar: Mutex<Option<(String, ProgressBar)>>,
}

impl TerminalProgress {
    fn with_bar(&self, label: &str, f: impl FnOnce(&ProgressBar)) {
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if bar.as_ref().is_none_or(|(l, _)| l != label) {
            let template = "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}";
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            // Length 0 until the server tells the size.
            let new = ProgressBar::new(0).with_style(style);
            new.set_message(label.to_owned());
            *bar = Some((label.to_owned(), new));
        }
        if let Some((_, bar)) = bar.as_ref() {
            f(bar);
        }
    }
}

impl Progress for TerminalProgress {
    fn transferred(&self, label: &str, done: u64, total: Option<u64>) {
        self.with_bar(label, |bar| {
            if let Some(total) = total {
                if bar.length() != Some(total) {
                    bar.set_length(total);
                    bar.set_position(done);
                    bar.reset_eta();
                }
            }
            bar.set_position(done);
        });
    }

    fn finished(&self, label: &str, completed: bool) {
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((l, b)) = bar.take() {
            if l == label {
                if completed {
                    b.finish();
                } else {
                    b.abandon();
                }
            } else {
                *bar = Some((l, b));
            }
        }
    }
}
