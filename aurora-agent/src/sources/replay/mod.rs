//! Replay: recorded events (JSONL: ours, or Nextron aurora-linux's format) or raw logs (an
//! audit.log, a syslog file, a journal export) back into the pipeline.
pub mod parse;
pub mod reader;

use std::io::{BufRead, Write as _};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::event::Event;
use crate::sources::auditd::AuditParser;
use crate::sources::follow::LineParser;
use crate::sources::syslog::{self, JournalParser, SyslogParser};
use crate::sources::RawEvent;
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

/// A rejected line: `FILE:LINE: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
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

/// Read every line of `input`, giving each event to `on_event` and each rejected line to
/// `on_reject`. Returns the number of lines read.
pub fn replay<R: BufRead>(
    input: R,
    mut on_event: impl FnMut(Event),
    mut on_reject: impl FnMut(Rejected),
) -> std::io::Result<u64> {
    let mut r = LineReader::new(input);
    while let Some((line, l)) = r.next_line()? {
        let result = text_of(&l).and_then(parse::parse_line);
        match result {
            Ok(Some(ev)) => on_event(ev),
            Ok(None) => {}
            Err(reason) => on_reject(Rejected { line, reason }),
        }
    }
    Ok(r.lines_read())
}

/// Raw log lines through a source's parser (the same one the live source uses), then its
/// `finish` at end of input. Returns the number of lines read.
pub fn replay_lines<R: BufRead, P: LineParser>(
    input: R,
    mut parser: P,
    mut on_event: impl FnMut(Event),
    mut on_reject: impl FnMut(Rejected),
) -> std::io::Result<u64> {
    let mut r = LineReader::new(input);
    let mut out = Vec::new();
    while let Some((line, l)) = r.next_line()? {
        let result = text_of(&l).and_then(|s| parser.line(s, &mut out));
        if let Err(reason) = result {
            on_reject(Rejected { line, reason });
        }
        out.drain(..).for_each(&mut on_event);
    }
    parser.finish(&mut out);
    out.drain(..).for_each(&mut on_event);
    Ok(r.lines_read())
}

/// The replay source: one input in `format` to records, each rejected line reported on stderr
/// as `NAME:LINE: reason`, everything counted in `counters` (the `aurora_log_*` metrics with
/// `source="replay"`).
pub fn read<R: BufRead>(
    input: R,
    format: ReplayFormat,
    name: &Path,
    counters: &LogSourceStats,
    mut emit: impl FnMut(RawEvent),
) -> std::io::Result<()> {
    let stderr = std::io::stderr();
    let label = name.display().to_string();
    let on_reject = |r: Rejected| {
        counters.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = writeln!(stderr.lock(), "{label}:{}: {}", r.line, r.reason);
    };
    let mut events = 0u64;
    let lines = match format {
        // Recorded events: parents may be completed from processes recorded before them.
        ReplayFormat::Jsonl => replay(
            input,
            |ev| {
                events += 1;
                emit(RawEvent::Recorded(ev))
            },
            on_reject,
        )?,
        _ => {
            let on_event = |ev| {
                events += 1;
                emit(RawEvent::Log(ev))
            };
            match format {
                ReplayFormat::Auditd => {
                    replay_lines(input, AuditParser::replay(), on_event, on_reject)?
                }
                ReplayFormat::Syslog => {
                    let parser = SyslogParser {
                        default_facility: syslog::default_facility(name),
                    };
                    replay_lines(input, parser, on_event, on_reject)?
                }
                _ => replay_lines(input, JournalParser, on_event, on_reject)?,
            }
        }
    };
    counters.lines.fetch_add(lines, Ordering::Relaxed);
    counters.events.fetch_add(events, Ordering::Relaxed);
    Ok(())
}
