//! Line reading in constant memory: a line longer than the limit is skipped (and reported)
//! without being held; invalid UTF-8 is reported, not panicked on.
use std::io::BufRead;

/// Lines longer than this are rejected.
pub const MAX_LINE: usize = 16 << 20;

pub enum Line<'a> {
    Text(&'a str),
    TooLong(usize),
    InvalidUtf8(usize),
}

pub struct LineReader<R> {
    inner: R,
    /// The current line; reused, so reading allocates only when a line is longer than any
    /// before it.
    buf: Vec<u8>,
    line_no: u64,
    max: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, MAX_LINE)
    }

    pub fn with_limit(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            line_no: 0,
            max,
        }
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.line_no
    }

    /// The next line (without its newline) with its 1-based number, or None at end of input.
    pub fn next_line(&mut self) -> std::io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let mut len = 0usize;
        let mut any = false;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (part, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            len += part.len();
            if len <= self.max {
                self.buf.extend_from_slice(part);
            } else if !self.buf.is_empty() {
                self.buf = Vec::new(); // give the memory back
            }
            let used = done.unwrap_or(chunk.len());
            self.inner.consume(used);
            if done.is_some() {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.line_no += 1;
        if len > self.max {
            return Ok(Some((self.line_no, Line::TooLong(len))));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(Some((self.line_no, Line::Text(s)))),
            Err(e) => Ok(Some((self.line_no, Line::InvalidUtf8(e.valid_up_to())))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::with_limit(std::io::BufReader::with_capacity(4, input), max);
        let mut out = vec![];
        while let Some((_, l)) = r.next_line().unwrap() {
            out.push(match l {
                Line::Text(s) => s.to_owned(),
                Line::TooLong(n) => format!("too long {n}"),
                Line::InvalidUtf8(at) => format!("utf8 at {at}"),
            });
        }
        out
    }

    #[test]
    fn splits_limits_and_reports() {
        assert_eq!(lines(b"a\nbb\r\n\nccc", 100), vec!["a", "bb", "", "ccc"]);
        assert_eq!(
            lines(b"short\nthis line is long\nok\n", 8),
            vec!["short", "too long 17", "ok"]
        );
        assert_eq!(lines(b"ab\xffcd\nx\n", 100), vec!["utf8 at 2", "x"]);
        assert!(lines(b"", 10).is_empty());
    }
}
