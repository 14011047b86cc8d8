//! Replay: recorded events (JSONL: ours, or Nextron aurora-linux's format) or raw logs (an
//! audit.log, a syslog file, a journal export) back into the pipeline.
pub mod parse;
pub mod reader;

use std::collections::VecDeque;
use std::io::{BufRead, Write as _};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::event::Event;
use crate::sources::auditd::AuditParser;
use crate::sources::follow::LineParser;
use crate::sources::syslog::{self, JournalParser, SyslogParser};
use crate::sources::{Input, Next, RawEvent};
use crate::stats::LogSourceStats;
use reader::{Line, LineReader};

/// What a replayed file holds.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFormat {
    Jsonl,
    Auditd,
    Syslog,
    Journal,
}

/// A line's text, or why it is rejected before any parser sees it.
fn text_of<'a>(l: &Line<'a>) -> Result<&'a str, String> {
    match l {
        Line::Text(s) => Ok(s),
        Line::TooLong(n) => Err(format!(
            "line of {n} bytes exceeds the {} byte limit",
            reader::MAX_LINE
        )),
        Line::InvalidUtf8(at) => Err(format!("invalid UTF-8 at byte {at}")),
    }
}

/// A replayed input as the pipeline reads it: lines parsed on demand, each rejected line
/// reported on stderr as `NAME:LINE: reason`, lines, events and rejections counted in
/// `counters` (the `aurora_log_*` metrics with `source="replay"`). Recorded events (JSONL) may
/// get their parents from processes recorded before them; raw log lines go through the same
/// parser as the live source, with its `finish` at the end of input.
pub struct ReplayInput<R> {
    lines: LineReader<R>,
    /// None: JSONL.
    parser: Option<Box<dyn LineParser>>,
    pending: VecDeque<RawEvent>,
    out: Vec<Event>,
    counters: Arc<LogSourceStats>,
    label: String,
    events: u64,
    done: bool,
    error: Option<std::io::Error>,
}

impl<R: BufRead> ReplayInput<R> {
    pub fn new(
        input: R,
        format: ReplayFormat,
        name: &Path,
        counters: Arc<LogSourceStats>,
    ) -> ReplayInput<R> {
        let parser: Option<Box<dyn LineParser>> = match format {
            ReplayFormat::Jsonl => None,
            ReplayFormat::Auditd => Some(Box::new(AuditParser::replay())),
            ReplayFormat::Syslog => Some(Box::new(SyslogParser {
                default_facility: syslog::default_facility(name),
            })),
            ReplayFormat::Journal => Some(Box::new(JournalParser)),
        };
        ReplayInput {
            lines: LineReader::new(input),
            parser,
            pending: VecDeque::new(),
            out: Vec::new(),
            counters,
            label: name.display().to_string(),
            events: 0,
            done: false,
            error: None,
        }
    }

    /// The read error that ended the input early, if one did.
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    /// Read and parse one line (or close the parser at the end); false once nothing more will
    /// come.
    fn advance(&mut self) -> bool {
        if self.done {
            return false;
        }
        let (line, l) = match self.lines.next_line() {
            Ok(Some(next)) => next,
            Ok(None) => {
                self.finish();
                return true;
            }
            Err(e) => {
                self.error = Some(e);
                self.finish();
                return true;
            }
        };
        let text = text_of(&l);
        let result = match self.parser.as_mut() {
            None => match text.and_then(parse::parse_line) {
                Ok(Some(ev)) => {
                    self.pending.push_back(RawEvent::Recorded(ev));
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(reason) => Err(reason),
            },
            Some(p) => text.and_then(|s| p.line(s, &mut self.out)),
        };
        if let Err(reason) = result {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            let _ = writeln!(std::io::stderr().lock(), "{}:{line}: {reason}", self.label);
        }
        self.pending.extend(self.out.drain(..).map(RawEvent::Log));
        true
    }

    fn finish(&mut self) {
        if let Some(p) = self.parser.as_mut() {
            p.finish(&mut self.out);
            self.pending.extend(self.out.drain(..).map(RawEvent::Log));
        }
        self.done = true;
        self.counters
            .lines
            .fetch_add(self.lines.lines_read(), Ordering::Relaxed);
    }
}

impl<R: BufRead> Iterator for ReplayInput<R> {
    type Item = RawEvent;

    fn next(&mut self) -> Option<RawEvent> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                self.events += 1;
                return Some(r);
            }
            if !self.advance() {
                self.counters
                    .events
                    .fetch_add(self.events, Ordering::Relaxed);
                self.events = 0;
                return None;
            }
        }
    }
}

/// A file never makes the pipeline wait: reading is the next record or the end.
impl<R: BufRead> Input for ReplayInput<R> {
    fn next(&mut self) -> Next {
        match Iterator::next(self) {
            Some(r) => Next::Record(r),
            None => Next::End,
        }
    }

    fn wait(&mut self) -> Next {
        Input::next(self)
    }
}
