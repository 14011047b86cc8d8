//! A real `nats-server -js` (Debian's) on a loopback port with a store in a temp dir, and
//! readers of the AURORA stream, for the fleet tests.
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use super::nix_kill;

pub struct NatsServer {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    pub fn start(port: u16, store: &Path) -> NatsServer {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (apt package nats-server; `cargo xtask setup --test-deps`)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        NatsServer {
            child,
            port,
            store: store.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(mut self) -> (u16, PathBuf) {
        nix_kill(self.child.id(), 15);
        let _ = self.child.wait();
        (self.port, self.store.clone())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message on `subject` in stream AURORA: (Nats-Msg-Id, payload).
pub fn stream_messages(url: &str, subject: &str) -> Vec<(String, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        read_subject(&js, subject)
            .await
            .into_iter()
            .map(|m| {
                let id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                (id, serde_json::from_slice(&m.payload).unwrap())
            })
            .collect()
    })
}

/// Every message on `subject` in stream AURORA, read until 700 ms pass without one (none
/// when the stream does not exist).
pub async fn read_subject(
    js: &async_nats::jetstream::Context,
    subject: &str,
) -> Vec<async_nats::jetstream::Message> {
    let Ok(stream) = js.get_stream("AURORA").await else {
        return Vec::new();
    };
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(700), msgs.next()).await
    {
        out.push(m);
    }
    out
}

/// Pull requests waiting on the durable consumer `name` (0 while it does not exist).
pub fn waiting_pulls(url: &str, name: &str) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(client) = async_nats::connect(url).await else {
            return 0;
        };
        let js = async_nats::jetstream::new(client);
        let Ok(stream) = js.get_stream("AURORA").await else {
            return 0;
        };
        let Ok(mut c) = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(name)
            .await
        else {
            return 0;
        };
        c.info().await.map(|i| i.num_waiting).unwrap_or(0)
    })
}

pub fn wait_count(url: &str, subject: &str, n: usize, secs: u64) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = stream_messages(url, subject);
        if m.len() >= n || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}
