//! stdout: one JSON object per line (`--json`) or the readable text line.
use std::io::{BufWriter, Stdout, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::registry::{SinkConfig, SinkContext};
use super::{count, text, Sink};
use crate::detect::alert::Alert;
use crate::stats::SinkStats;

#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct StdoutConfig {
    /// Write alerts to stdout as JSON (one object per line) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Do not write alerts to stdout.
    #[arg(long)]
    pub no_stdout: bool,
}

impl SinkConfig for StdoutConfig {
    fn build(&self, _: &SinkContext) -> anyhow::Result<Option<Box<dyn Sink>>> {
        Ok((!self.no_stdout).then(|| Box::new(StdoutSink::new(self.json)) as Box<dyn Sink>))
    }
}

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
