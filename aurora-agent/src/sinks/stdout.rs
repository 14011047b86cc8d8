//! stdout: one JSON object per line (`--json`) or the readable text line.
use std::io::{BufWriter, Stdout, Write};
use std::sync::Arc;

use super::{count, text, Sink};
use crate::detect::alert::Alert;
use crate::stats::SinkStats;

pub struct StdoutSink {
    json: bool,
    out: BufWriter<Stdout>,
    stats: Arc<SinkStats>,
}

impl StdoutSink {
    pub fn new(json: bool) -> Self {
        StdoutSink {
            json,
            out: BufWriter::new(std::io::stdout()),
            stats: Arc::new(SinkStats::named("stdout")),
        }
    }
}

impl Sink for StdoutSink {
    fn emit(&mut self, a: &Alert) {
        let line = if self.json {
            a.to_json()
        } else {
            text::line(a)
        };
        let ok = self
            .out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .is_ok();
        count(&self.stats, ok);
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }

    fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }
}
