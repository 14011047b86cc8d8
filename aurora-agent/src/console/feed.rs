//! What the console knows of the stream: the newest alerts (a bounded ring, each with its
//! stream sequence as id, and a broadcast to live pages) and the process creations agents
//! published with `--nats-events` (a bounded table by ProcessGuid, for process chains).
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::sync::broadcast;

/// Alerts kept for the pages (older ones are in the stream).
pub const ALERTS_KEPT: usize = 5000;
/// Process creations kept for chains.
pub const PROCESSES_KEPT: usize = 100_000;
/// How far back the console reads when it starts.
pub const LOOK_BACK: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, serde::Serialize)]
pub struct StoredAlert {
    /// The stream sequence: the alert's id in the console.
    pub seq: u64,
    /// The publishing agent's host id (its subject's last token), which commands address.
    pub host_id: String,
    pub alert: Value,
}

impl StoredAlert {
    /// The line the alerts page lists.
    pub fn summary(&self) -> Value {
        let a = &self.alert;
        serde_json::json!({
            "seq": self.seq,
            "time": a["time"],
            "host": self.host_id,
            "title": a["rule"]["title"],
            "level": a["rule"]["level"],
            "image": a["event"]["Image"],
            "response": a["response"],
        })
    }
}

pub struct Feed {
    alerts: Mutex<VecDeque<Arc<StoredAlert>>>,
    processes: Mutex<lru::LruCache<String, Value>>,
    pub live: broadcast::Sender<Arc<StoredAlert>>,
}

impl Feed {
    pub fn new() -> Arc<Feed> {
        Arc::new(Feed {
            alerts: Mutex::new(VecDeque::with_capacity(ALERTS_KEPT)),
            processes: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(PROCESSES_KEPT).expect("non-zero"),
            )),
            live: broadcast::channel(1024).0,
        })
    }

    fn add_alert(&self, seq: u64, subject: &str, alert: Value) {
        let host_id = subject.rsplit('.').next().unwrap_or_default().to_owned();
        let stored = Arc::new(StoredAlert {
            seq,
            host_id,
            alert,
        });
        if let Ok(mut a) = self.alerts.lock() {
            if a.len() == ALERTS_KEPT {
                a.pop_front();
            }
            a.push_back(stored.clone());
        }
        let _ = self.live.send(stored);
    }

    fn add_process(&self, event: Value) {
        if let Some(guid) = event["ProcessGuid"].as_str() {
            if let Ok(mut p) = self.processes.lock() {
                p.put(guid.to_owned(), event);
            }
        }
    }

    /// The newest `limit` alerts, newest first.
    pub fn newest(&self, limit: usize) -> Vec<Arc<StoredAlert>> {
        self.alerts
            .lock()
            .map(|a| a.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    pub fn alert(&self, seq: u64) -> Option<Arc<StoredAlert>> {
        let a = self.alerts.lock().ok()?;
        let i = a.binary_search_by_key(&seq, |s| s.seq).ok()?;
        a.get(i).cloned()
    }

    /// `event` and its ancestors as far as the stream told: each parent from the published
    /// process creations, else (the last one) from the event's own Parent* fields.
    pub fn chain(&self, event: &Value) -> Vec<(Value, &'static str)> {
        let mut out = vec![(event.clone(), "event")];
        let Ok(mut known) = self.processes.lock() else {
            return out;
        };
        let mut current = event.clone();
        for _ in 0..16 {
            let Some(parent) = current["ParentProcessGuid"].as_str().map(str::to_owned) else {
                break;
            };
            match known.get(&parent) {
                Some(p) => {
                    current = p.clone();
                    out.push((current.clone(), "stream"));
                }
                None => {
                    if current["ParentImage"].is_string() {
                        out.push((
                            serde_json::json!({
                                "ProcessGuid": parent,
                                "ProcessId": current["ParentProcessId"],
                                "Image": current["ParentImage"],
                                "CommandLine": current["ParentCommandLine"],
                                "User": current["ParentUser"],
                            }),
                            "parent fields",
                        ));
                    }
                    break;
                }
            }
        }
        out
    }

    /// Follow the stream's alerts and process creations from `LOOK_BACK` ago, for ever.
    pub async fn follow(self: Arc<Self>, js: jetstream::Context, stream: String) {
        let alerts = self.clone().follow_subject(
            js.clone(),
            stream.clone(),
            "aurora.alerts.>",
            |feed, seq, subject, v| feed.add_alert(seq, subject, v),
        );
        let processes = self.clone().follow_subject(
            js,
            stream,
            "aurora.events.*.process_creation",
            |feed, _, _, v| feed.add_process(v),
        );
        tokio::join!(alerts, processes);
    }

    async fn follow_subject(
        self: Arc<Self>,
        js: jetstream::Context,
        stream: String,
        subject: &'static str,
        take: fn(&Feed, u64, &str, Value),
    ) {
        let mut said = None;
        loop {
            let result = self.read(&js, &stream, subject, take).await;
            let text = match result {
                Ok(()) => "the consumer ended".to_owned(),
                Err(e) => format!("{e:#}"),
            };
            if said.as_ref() != Some(&text) {
                tracing::warn!("console: reading {subject}: {text}; retrying");
                said = Some(text);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn read(
        &self,
        js: &jetstream::Context,
        stream: &str,
        subject: &str,
        take: fn(&Feed, u64, &str, Value),
    ) -> anyhow::Result<()> {
        let since_ns = (crate::fleet::unix_now() - LOOK_BACK.as_secs_f64()) * 1e9;
        let since = async_nats::datetime::from_nanos(since_ns as i128)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let last = self.newest(1).first().map(|a| a.seq);
        let deliver_policy = match (subject.starts_with("aurora.alerts"), last) {
            (true, Some(seq)) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
            _ => consumer::DeliverPolicy::ByStartTime { start_time: since },
        };
        let stream = js.get_stream(stream).await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject.into(),
                deliver_policy,
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        while let Some(m) = messages.next().await {
            let m = m?;
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or_default();
            if let Ok(v) = serde_json::from_slice::<Value>(&m.payload) {
                take(self, seq, &m.subject, v);
            }
        }
        Ok(())
    }
}
