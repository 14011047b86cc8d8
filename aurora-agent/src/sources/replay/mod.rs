//! JSONL replay: recorded events (ours, or Nextron aurora-linux's format) back into the pipeline.
pub mod parse;
pub mod reader;

use std::io::BufRead;

use crate::event::Event;
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
