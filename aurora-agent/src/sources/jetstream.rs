//! Events from a JetStream stream — what agents published with `--nats-events` — read as a
//! durable pull consumer (`aurora consume`). Instances that share a consumer name split the
//! stream between them. As the pipeline's input (`JetStreamInput`) a batch is acknowledged
//! only when the pipeline asks for more after flushing, so every alert of its events is written
//! first (a crash before that redelivers the batch); a message that is not an event is counted
//! and reported with its stream sequence, and acknowledged so it is not redelivered forever.
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures_util::stream::ReadyChunks;
use futures_util::StreamExt;

use super::replay::parse::parse_line;
use super::{Input, Next, RawEvent};
use crate::event::Event;
use crate::nats::{connect, ensure_stream, NatsConfig};

/// The durable consumer's name unless `--consumer` says otherwise.
pub const DEFAULT_CONSUMER: &str = "aurora-detect";
/// Messages handed out per batch at most.
const BATCH: usize = 256;
/// Messages asked for per pull: small enough that instances sharing a consumer interleave.
const PULL: usize = 64;

/// What a message was.
pub enum Decoded {
    Event(Event),
    /// No payload, or only white space.
    Empty,
    /// Not an event: why.
    Rejected(String),
}

pub struct JetStreamSource {
    messages: ReadyChunks<pull::Stream>,
    pub stream: String,
}

impl JetStreamSource {
    /// Pull from `nats.stream` as the durable consumer `name` (created when missing), waiting
    /// up to 30 s for the stream to exist.
    pub async fn subscribe(nats: &NatsConfig, name: &str) -> Result<JetStreamSource> {
        let js = jetstream::new(connect(&nats.connect, None).await?);
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = ensure_stream(&js, nats).await {
            anyhow::ensure!(Instant::now() < deadline, "NATS: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let stream = js.get_stream(&nats.stream).await.context("stream")?;
        let messages = stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_owned()),
                    filter_subject: "aurora.events.>".into(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("consumer {name} on stream {}", nats.stream))?
            .stream()
            .max_messages_per_batch(PULL)
            .messages()
            .await
            .context("pulling messages")?;
        Ok(JetStreamSource {
            messages: messages.ready_chunks(BATCH),
            stream: nats.stream.clone(),
        })
    }

    /// The next messages that arrived (None when the subscription ended). Receive errors are
    /// logged and left out.
    pub async fn next_batch(&mut self) -> Option<Vec<jetstream::Message>> {
        let batch = self.messages.next().await?;
        Some(
            batch
                .into_iter()
                .filter_map(|m| match m {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!("NATS: {e}");
                        None
                    }
                })
                .collect(),
        )
    }
}

/// A message's event, or what it was instead.
pub fn decode(m: &jetstream::Message) -> Decoded {
    match std::str::from_utf8(&m.payload)
        .map_err(|e| e.to_string())
        .and_then(parse_line)
    {
        Ok(Some(ev)) => Decoded::Event(ev),
        Ok(None) => Decoded::Empty,
        Err(reason) => Decoded::Rejected(reason),
    }
}

/// The message's sequence in its stream (0 when the server did not say).
pub fn sequence(m: &jetstream::Message) -> u64 {
    m.info().map(|i| i.stream_sequence).unwrap_or(0)
}

/// What the messages read were; `messages = events + empty + rejected`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub messages: u64,
    pub events: u64,
    /// Messages with no payload (or only white space).
    pub empty: u64,
    /// Messages that are not an event (not JSON, not an event's shape).
    pub rejected: u64,
}

/// A JetStream consumer as the pipeline's input. The pipeline runs on a thread of its own;
/// the NATS client on `rt`.
pub struct JetStreamInput {
    rt: tokio::runtime::Handle,
    source: JetStreamSource,
    pending: VecDeque<RawEvent>,
    /// Handed to the pipeline, acknowledged once it flushed.
    to_ack: Vec<jetstream::Message>,
    /// End after this long without a message.
    idle: Option<Duration>,
    last: Instant,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    stopped: bool,
    pub counts: Counts,
}

impl JetStreamInput {
    /// Ends when `stop` resolves, or after `idle` without a message.
    pub fn new(
        rt: tokio::runtime::Handle,
        source: JetStreamSource,
        idle: Option<Duration>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> JetStreamInput {
        JetStreamInput {
            rt,
            source,
            pending: VecDeque::new(),
            to_ack: Vec::new(),
            idle,
            last: Instant::now(),
            stop: Box::pin(stop),
            stopped: false,
            counts: Counts::default(),
        }
    }

    fn take(&mut self, m: jetstream::Message) {
        self.counts.messages += 1;
        let seq = sequence(&m);
        match decode(&m) {
            Decoded::Event(ev) => {
                self.counts.events += 1;
                self.pending.push_back(RawEvent::Recorded(ev));
            }
            Decoded::Empty => {
                self.counts.empty += 1;
                tracing::warn!(
                    "stream {} sequence {seq}: empty message (skipped)",
                    self.source.stream
                );
            }
            Decoded::Rejected(reason) => {
                self.counts.rejected += 1;
                tracing::warn!(
                    "stream {} sequence {seq}: {reason} (skipped)",
                    self.source.stream
                );
            }
        }
        self.to_ack.push(m);
    }

    /// Acknowledge everything handed out (the pipeline flushed its alerts).
    fn ack(&mut self) {
        let batch = std::mem::take(&mut self.to_ack);
        if batch.is_empty() {
            return;
        }
        self.rt.block_on(async {
            for m in batch {
                if let Err(e) = m.ack().await {
                    tracing::warn!("NATS: acknowledging: {e}");
                }
            }
        });
    }
}

impl Input for JetStreamInput {
    fn next(&mut self) -> Next {
        match self.pending.pop_front() {
            Some(r) => Next::Record(r),
            None => Next::Empty,
        }
    }

    fn wait(&mut self) -> Next {
        self.ack();
        loop {
            if self.stopped {
                return Next::End;
            }
            let (source, stop) = (&mut self.source, &mut self.stop);
            // None: stopped; Some(None): a quiet tick; Some(Some(b)): a batch (or the end).
            let got = self.rt.block_on(async {
                tokio::select! {
                    _ = stop => None,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => Some(None),
                    b = source.next_batch() => Some(Some(b)),
                }
            });
            match got {
                None => {
                    self.stopped = true;
                    return Next::End;
                }
                Some(None) => {
                    if self.idle.is_some_and(|i| self.last.elapsed() >= i) {
                        return Next::End;
                    }
                }
                Some(Some(None)) => return Next::End,
                Some(Some(Some(batch))) => {
                    self.last = Instant::now();
                    for m in batch {
                        self.take(m);
                    }
                    if let Some(r) = self.pending.pop_front() {
                        return Next::Record(r);
                    }
                    // Nothing but non-events: acknowledge them now.
                    self.ack();
                }
            }
        }
    }
}
