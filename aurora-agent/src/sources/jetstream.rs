//! Events from a JetStream stream — what agents published with `--nats-events` — read as a
//! durable pull consumer (`aurora consume`). Instances that share a consumer name split the
//! stream between them. A message is decoded here; acknowledging it is the caller's, once the
//! event's alerts are written.
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy};
use futures_util::stream::ReadyChunks;
use futures_util::StreamExt;

use super::replay::parse::parse_line;
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
        let js = jetstream::new(connect(nats, None).await?);
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
