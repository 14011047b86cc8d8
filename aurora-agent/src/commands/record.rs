//! `aurora record`: the sensors' enriched events as JSONL (the replay format).
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::live::Live;
use super::settings::Settings;
use crate::cli::RecordArgs;
use crate::event::{Event, EventKind};
use crate::pipeline::{consume, EventHandler, Pipeline};
use crate::stats::Stats;

struct Recorder {
    out: BufWriter<Box<dyn Write + Send>>,
    kinds: Vec<EventKind>,
    written: u64,
    failed: Option<std::io::Error>,
}

impl EventHandler for Recorder {
    fn handle(&mut self, ev: Event) {
        if self.failed.is_some() || (!self.kinds.is_empty() && !self.kinds.contains(&ev.kind)) {
            return;
        }
        let r = serde_json::to_writer(&mut self.out, &ev)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        match r {
            Ok(()) => self.written += 1,
            Err(e) => self.failed = Some(e),
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            self.failed.get_or_insert(e);
        }
    }
}

pub fn run(args: RecordArgs) -> Result<()> {
    let mut settings = Settings::for_sensors(&args.global, &args.sensors)?;
    // A recording is a one-off capture: it starts at the end of each log and leaves the
    // agent's saved read positions alone.
    settings.logs.state_dir = None;
    let mut kinds = Vec::new();
    for k in &args.kind {
        match EventKind::from_category(k) {
            Some(kind) => kinds.push(kind),
            None => bail!(
                "--kind {k}: unknown event kind ({})",
                EventKind::ALL.map(|k| k.category()).join(", ")
            ),
        }
    }
    let out: Box<dyn Write + Send> = match &args.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout()),
    };
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration {d}: must be a positive number of seconds");
        }
    }
    // A recording runs the same sensors and drains beside the same workloads as the agent.
    super::run::apply_cpu_policy(settings.cpu_policy)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = super::signals::Shutdown::install()?;
        let stats = Arc::new(Stats::default());
        let (mut live, enricher, rx) = Live::start(&settings, stats.clone()).await?;
        live.ready(None)?;
        tracing::info!("recording");
        let recorder = Recorder {
            out: BufWriter::new(out),
            kinds,
            written: 0,
            failed: None,
        };
        let consumer = std::thread::spawn(move || consume(rx, Pipeline::new(enricher, recorder)));
        let stop = shutdown.wait();
        match args.duration {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(d)) => {}
                    _ = stop => {}
                }
            }
            None => stop.await,
        }
        let _ready = live.stop().await;
        let recorder = tokio::task::spawn_blocking(move || consumer.join())
            .await?
            .map_err(|_| anyhow::anyhow!("event consumer panicked"))?;
        tracing::info!(
            events = recorder.written,
            "{}",
            stats.line(Default::default(), 0.0)
        );
        if let Some(e) = recorder.failed {
            return Err(e).context("writing events");
        }
        Ok(())
    })
}
