//! The loop each followed log runs on its own thread: poll the file (`tail`), turn lines into
//! events with the source's parser, queue them for the pipeline (waiting when the queue is
//! full: a log on disk is a buffer, so nothing is dropped), save the cursor when the parser
//! holds nothing back, and at stop read what is left, close what is open and save the cursor
//! exactly.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::tail::{CursorStore, TailLine, Tailer};
use super::RawEvent;
use crate::event::Event;
use crate::stats::LogSourceStats;

/// How often a quiet file is checked for new lines, rotation and truncation.
pub const POLL: Duration = Duration::from_millis(200);
/// How often the cursor is saved while lines keep coming.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Rejected lines logged one by one before only every 1000th is.
const LOG_FIRST: u64 = 10;

/// A source's line format.
pub trait LineParser: Send + 'static {
    /// One complete line: push its events, or say why it is rejected.
    fn line(&mut self, line: &str, out: &mut Vec<Event>) -> Result<(), String>;
    /// The file is quiet: close what waits for more lines (auditd's multi-record events).
    fn idle(&mut self, _now: Instant, _out: &mut Vec<Event>) {}
    /// End of input: close everything.
    fn finish(&mut self, _out: &mut Vec<Event>) {}
    /// Nothing read is held back, so the cursor may be saved.
    fn settled(&self) -> bool {
        true
    }
}

/// One followed file.
pub struct Follow {
    pub path: PathBuf,
    /// Where the cursor persists; None starts at the end and saves nothing (`record`).
    pub cursors: Option<CursorStore>,
}

/// A running follower: `stop` ends it after a last read.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start following `f` on a thread named after the source.
pub fn spawn<P: LineParser>(
    f: Follow,
    parser: P,
    tx: mpsc::Sender<RawEvent>,
    stats: Arc<LogSourceStats>,
) -> std::io::Result<Follower> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("aurora-{}", stats.kind))
        .spawn(move || run(f, parser, tx, stats, stopped))?;
    Ok(Follower {
        stop,
        thread: Some(thread),
    })
}

struct Loop<P> {
    parser: P,
    tx: mpsc::Sender<RawEvent>,
    stats: Arc<LogSourceStats>,
    path: String,
    out: Vec<Event>,
    closed: bool,
}

impl<P: LineParser> Loop<P> {
    fn on_line(&mut self, l: TailLine<'_>) {
        let s = &self.stats;
        match l {
            TailLine::Line(bytes) => {
                let n = s.lines.fetch_add(1, Ordering::Relaxed) + 1;
                let text = String::from_utf8_lossy(bytes);
                if let Err(reason) = self.parser.line(&text, &mut self.out) {
                    let r = s.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                    if r <= LOG_FIRST || r.is_multiple_of(1000) {
                        tracing::warn!(
                            "{}: line {n} since start: {reason} (skipped; {r} so far)",
                            self.path
                        );
                    }
                }
            }
            TailLine::TooLong(n) => {
                s.too_long.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "{}: a line of {n} bytes exceeds the limit (skipped)",
                    self.path
                );
            }
            TailLine::Rotated => {
                s.rotations.fetch_add(1, Ordering::Relaxed);
            }
            TailLine::Truncated => {
                s.truncations.fetch_add(1, Ordering::Relaxed);
                tracing::info!("{}: truncated; reading from its start", self.path);
            }
        }
    }

    fn send(&mut self) {
        for ev in self.out.drain(..) {
            if self.closed {
                continue;
            }
            self.stats.events.fetch_add(1, Ordering::Relaxed);
            let raw = RawEvent::Log(ev);
            let raw = match self.tx.try_send(raw) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(raw)) => raw,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.closed = true;
                    continue;
                }
            };
            self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
            if self.tx.blocking_send(raw).is_err() {
                self.closed = true;
            }
        }
    }
}

fn run<P: LineParser>(
    f: Follow,
    parser: P,
    tx: mpsc::Sender<RawEvent>,
    stats: Arc<LogSourceStats>,
    stop: Arc<AtomicBool>,
) {
    let mut tailer = Tailer::open(&f.path, f.cursors.as_ref().and_then(CursorStore::load));
    let mut l = Loop {
        parser,
        tx,
        stats,
        path: f.path.display().to_string(),
        out: Vec::new(),
        closed: false,
    };
    let mut saved = tailer.cursor();
    let mut last_save = Instant::now();
    let save = |tailer: &Tailer, saved: &mut Option<_>| {
        if let (Some(store), Some(c)) = (&f.cursors, tailer.cursor()) {
            if *saved != Some(c) {
                match store.save(&c) {
                    Ok(()) => *saved = Some(c),
                    Err(e) => tracing::warn!("{}: saving the read position: {e}", l_path(&f)),
                }
            }
        }
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let read = match tailer.poll(&mut |line| l.on_line(line)) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("{}: read error: {e}", l.path);
                0
            }
        };
        if read == 0 {
            l.parser.idle(Instant::now(), &mut l.out);
        }
        l.send();
        if stopping || l.closed {
            break;
        }
        if l.parser.settled() && (read == 0 || last_save.elapsed() >= SAVE_EVERY) {
            save(&tailer, &mut saved);
            last_save = Instant::now();
        }
        if read == 0 {
            std::thread::sleep(POLL);
        }
    }
    l.parser.finish(&mut l.out);
    l.send();
    save(&tailer, &mut saved);
}

fn l_path(f: &Follow) -> String {
    f.path.display().to_string()
}
