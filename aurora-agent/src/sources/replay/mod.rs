//! Replay: recorded events (JSONL: ours, or Nextron aurora-linux's format) or raw logs (an
//! audit.log, a syslog file, a journal export) back into the pipeline.
pub mod parse;
pub mod reader;

use std::io::BufRead;

use crate::event::Event;
use crate::sources::follow::LineParser;
use reader::{Line, LineReader};

/// A rejected line: `FILE:LINE: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
}

/// Read every line of `input`, giving each event to `on_event` and each rejected line to
/// `on_reject`. Returns the number of lines read.
pub fn replay<R: BufRead>(
    input: R,
    mut on_event: impl FnMut(Event),
    mut on_reject: impl FnMut(Rejected),
) -> std::io::Result<u64> {
    let mut r = LineReader::new(input);
    while let Some(l) = r.next_line()? {
        let line = r.line_no;
        match l {
            Line::Text(s) => match parse::parse_line(&s) {
                Ok(Some(ev)) => on_event(ev),
                Ok(None) => {}
                Err(reason) => on_reject(Rejected { line, reason }),
            },
            Line::TooLong(n) => on_reject(Rejected {
                line,
                reason: format!(
                    "line of {n} bytes exceeds the {} byte limit",
                    reader::MAX_LINE
                ),
            }),
            Line::InvalidUtf8(at) => on_reject(Rejected {
                line,
                reason: format!("invalid UTF-8 at byte {at}"),
            }),
        }
    }
    Ok(r.line_no)
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
    while let Some(l) = r.next_line()? {
        let line = r.line_no;
        let result = match l {
            Line::Text(s) => parser.line(&s, &mut out),
            Line::TooLong(n) => Err(format!(
                "line of {n} bytes exceeds the {} byte limit",
                reader::MAX_LINE
            )),
            Line::InvalidUtf8(at) => Err(format!("invalid UTF-8 at byte {at}")),
        };
        if let Err(reason) = result {
            on_reject(Rejected { line, reason });
        }
        out.drain(..).for_each(&mut on_event);
    }
    parser.finish(&mut out);
    out.drain(..).for_each(&mut on_event);
    Ok(r.line_no)
}
