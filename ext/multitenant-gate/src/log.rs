//! Stderr lines that a scanner or a dead upstream could otherwise multiply: the first few per
//! minute are written one by one, the rest counted and summed up once the minute is over.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
const LINES_PER_WINDOW: u32 = 5;

pub(crate) struct RateLog {
    /// Plural noun for the summary line, e.g. "refused requests".
    what: &'static str,
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    written: u32,
    counted: u64,
}

impl RateLog {
    pub(crate) fn new(what: &'static str) -> RateLog {
        RateLog { what, window: Mutex::new(Window { started: Instant::now(), written: 0, counted: 0 }) }
    }

    /// Writes `mtshare gate: <line>` unless this minute's few lines are written; then counts it.
    pub(crate) fn note(&self, line: impl FnOnce() -> String) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        self.roll(&mut w);
        if w.written < LINES_PER_WINDOW {
            w.written += 1;
            let more = if w.written == LINES_PER_WINDOW { " (more this minute are only counted)" } else { "" };
            eprintln!("mtshare gate: {}{more}", line());
        } else {
            w.counted += 1;
        }
    }

    /// Ends the minute when it is over, writing the count of lines it held back.
    pub(crate) fn tick(&self) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        self.roll(&mut w);
    }

    fn roll(&self, w: &mut Window) {
        if w.started.elapsed() < WINDOW {
            return;
        }
        if w.counted > 0 {
            eprintln!("mtshare gate: {} more {} in the last minute", w.counted, self.what);
        }
        *w = Window { started: Instant::now(), written: 0, counted: 0 };
    }
}
