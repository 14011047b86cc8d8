//! NATS plumbing shared by the NATS sink (publishing), the JetStream source (`aurora
//! consume`) and the fleet control plane: where the servers are and how to authenticate
//! (`NatsConnectArgs` → `NatsConnect`), the connection with its outage reporting, and the
//! stream.
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};

use crate::stats::SinkStats;

/// How to reach NATS and who this host is there: the flags every NATS user (the agent's sink,
/// `consume`, `aurora fleet`) shares, also config-file keys.
#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct NatsConnectArgs {
    /// NATS server (repeatable: servers of one cluster). The agent publishes its alerts there
    /// (aurora.alerts.HOST, acknowledged, through a disk spool) and joins the fleet
    /// (heartbeats, commands). Example: --nats-url nats://10.0.0.7:4222
    #[arg(long = "nats-url", value_name = "URL")]
    pub nats_url: Vec<String>,
    /// NATS credentials file (JWT + nkey). Example: --nats-creds /etc/aurora/nats.creds
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// File holding an nkey seed for NATS authentication (`aurora fleet enroll` writes one).
    #[arg(long, value_name = "FILE")]
    pub nats_nkey: Option<PathBuf>,
    /// CA certificate (PEM) of tls:// NATS servers.
    #[arg(long, value_name = "FILE")]
    pub nats_tls_ca: Option<PathBuf>,
    /// This host's name in subjects, the fleet's key-value buckets and its NATS permissions.
    /// [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub host_id: Option<String>,
}

/// `NatsConnectArgs`, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsConnect {
    /// Server URLs (several: the client fails over between them).
    pub urls: Vec<String>,
    pub credentials: Option<PathBuf>,
    /// A file holding an nkey seed.
    pub nkey: Option<PathBuf>,
    /// CA certificate for `tls://` servers.
    pub tls_ca: Option<PathBuf>,
    /// This host as one subject token.
    pub host: String,
}

impl NatsConnectArgs {
    /// None without a URL.
    pub fn resolve(&self) -> anyhow::Result<Option<NatsConnect>> {
        if self.nats_url.is_empty() {
            if self.nats_creds.is_some() || self.nats_nkey.is_some() {
                anyhow::bail!("--nats-creds/--nats-nkey given without --nats-url");
            }
            return Ok(None);
        }
        for u in &self.nats_url {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| anyhow::anyhow!("--nats-url {u}: {e}"))?;
        }
        let host = match &self.host_id {
            Some(h) if host_token_ok(h) => h.clone(),
            Some(h) => anyhow::bail!(
                "--host-id {h:?}: expected letters, digits, '-' and '_' only (it is a subject token)"
            ),
            None => subject_token(
                &nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "localhost".into()),
            ),
        };
        Ok(Some(NatsConnect {
            urls: self.nats_url.clone(),
            credentials: self.nats_creds.clone(),
            nkey: self.nats_nkey.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            host,
        }))
    }
}

/// `a.b c` → `a_b_c`: a host name as one subject token.
pub fn subject_token(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '.' | '*' | '>' | ' ' | '\t' => '_',
            c => c,
        })
        .collect()
}

/// A host id usable as a subject token and a key-value key.
pub fn host_token_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 128
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// How to reach NATS and what to publish, resolved from `config::NatsArgs`.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsConfig {
    pub connect: NatsConnect,
    /// Publish every event too, not only alerts.
    pub events: bool,
    pub stream: String,
    pub create_stream: bool,
    pub stream_max_bytes: i64,
    pub stream_max_age: Duration,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// How long a stopping agent keeps delivering before it leaves the rest in the spool.
    pub drain: Duration,
}

impl NatsConfig {
    pub const DEFAULT_STREAM: &'static str = "AURORA";
    pub const DEFAULT_SPOOL_DIR: &'static str = "/var/lib/aurora/spool";
    pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 << 20;
    pub const DEFAULT_STREAM_MAX_BYTES: i64 = 1 << 30;
    pub const DEFAULT_STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
    /// How long a stopping agent keeps delivering (below `SHUTDOWN_BUDGET_LIVE`).
    pub const DRAIN_LIVE: Duration = Duration::from_secs(1);
    /// How long `replay` and `consume` wait for acknowledgements before leaving the rest in
    /// the spool (below `CLOSE_WAIT_RECORDED`).
    pub const DRAIN_RECORDED: Duration = Duration::from_secs(4);
}

/// Connection options from the config (credentials, nkey, TLS) with reconnects forever. With
/// `stats`, each outage is logged once when it starts (with the client's reason) and once when
/// it ends, and the reconnection is counted. Replies come to `_INBOX.<host>.…`, so a server can
/// let each host read only its own (deploy/nats).
pub async fn connect(
    cfg: &NatsConnect,
    stats: Option<Arc<SinkStats>>,
) -> anyhow::Result<async_nats::Client> {
    use anyhow::Context as _;
    let mut opts = options(cfg)
        .await?
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(2000)));
    if let Some(stats) = stats {
        let outage = Arc::new(std::sync::Mutex::new(Outage::default()));
        opts = opts.event_callback(move |event| {
            let (stats, outage) = (stats.clone(), outage.clone());
            async move {
                if let Ok(mut o) = outage.lock() {
                    o.on(&event, &stats);
                }
            }
        });
    }
    let urls = server_addrs(cfg)?;
    opts.connect(urls).await.context("connecting to NATS")
}

/// What the server refused on one connection: permission violations arrive as server errors,
/// apart from the request that caused them (which then only times out), so the fleet's
/// commands and the console keep them to say with the error that followed.
#[derive(Clone, Debug, Default)]
pub struct Refusals(Arc<std::sync::Mutex<Vec<String>>>);

impl Refusals {
    /// `opts`, keeping the server's errors here.
    pub fn watch(&self, opts: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        let seen = self.0.clone();
        opts.event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    if let Ok(mut s) = seen.lock() {
                        s.push(e.to_string());
                    }
                }
            }
        })
    }

    /// Every refusal so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// `e`, with what the server refused before it.
    pub fn explain(&self, e: impl std::fmt::Display) -> anyhow::Error {
        match self.all().join("; ") {
            r if r.is_empty() => anyhow::anyhow!("{e}"),
            r => anyhow::anyhow!("{e} (the server refused: {r})"),
        }
    }
}

/// The URLs as the client takes them.
pub fn server_addrs(cfg: &NatsConnect) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    use anyhow::Context as _;
    cfg.urls
        .iter()
        .map(|u| u.parse().with_context(|| format!("--nats-url {u}")))
        .collect()
}

/// Authentication, TLS and the inbox prefix: what every connection of this host shares.
pub async fn options(cfg: &NatsConnect) -> anyhow::Result<async_nats::ConnectOptions> {
    use anyhow::Context as _;
    let mut opts = async_nats::ConnectOptions::new()
        .name("aurora")
        .custom_inbox_prefix(format!("_INBOX.{}", cfg.host));
    if let Some(c) = &cfg.credentials {
        opts = opts
            .credentials_file(c)
            .await
            .with_context(|| format!("--nats-creds {}", c.display()))?;
    }
    if let Some(k) = &cfg.nkey {
        let seed =
            std::fs::read_to_string(k).with_context(|| format!("--nats-nkey {}", k.display()))?;
        opts = opts.nkey(seed.trim().to_owned());
    }
    if let Some(ca) = &cfg.tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    Ok(opts)
}

/// One connection's outages as the client reports them: the first event of an outage is
/// logged with its reason, the reconnection with its length; each reconnection is counted.
#[derive(Default)]
struct Outage {
    /// Connected once already (the first connection is not a reconnection).
    was_connected: bool,
    /// When the current outage began.
    since: Option<std::time::Instant>,
    /// The client's reason for it, once said.
    said: bool,
}

impl Outage {
    fn on(&mut self, event: &async_nats::Event, stats: &SinkStats) {
        use async_nats::Event;
        match event {
            Event::Connected => {
                if let Some(since) = self.since.take() {
                    if self.was_connected {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::info!(
                        "nats: connected again after {:.1} s; delivering what was spooled",
                        since.elapsed().as_secs_f64()
                    );
                }
                self.was_connected = true;
                self.said = false;
            }
            Event::Disconnected => {
                self.since.get_or_insert_with(std::time::Instant::now);
                tracing::warn!("nats: connection lost; spooling until the server is back");
                self.said = true;
            }
            Event::ClientError(e) => {
                self.since.get_or_insert_with(std::time::Instant::now);
                if !self.said {
                    tracing::warn!("nats: cannot connect ({e}); spooling and retrying");
                    self.said = true;
                }
            }
            _ => {}
        }
    }
}

/// Why no server answers, in the operating system's words (the client retries quietly): the
/// first URL's TCP connect error, or None when a server does accept connections.
pub async fn unreachable_reason(cfg: &NatsConnect) -> Option<String> {
    let url = cfg.urls.first()?;
    let addr: async_nats::ServerAddr = url.parse().ok()?;
    let target = (addr.host().to_owned(), addr.port());
    match tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(target),
    )
    .await
    {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("connecting to {url}: {e}")),
        Err(_) => Some(format!("connecting to {url}: no answer within 1 s")),
    }
}

/// The stream exists (created with the configured limits when allowed and missing).
pub async fn ensure_stream(js: &jetstream::Context, cfg: &NatsConfig) -> Result<(), String> {
    match js.get_stream(&cfg.stream).await {
        Ok(_) => Ok(()),
        Err(e) if !cfg.create_stream => {
            Err(format!("stream {}: {e} (--nats-no-create)", cfg.stream))
        }
        Err(_) => js
            .create_stream(stream::Config {
                name: cfg.stream.clone(),
                subjects: vec!["aurora.>".into()],
                storage: stream::StorageType::File,
                max_bytes: cfg.stream_max_bytes,
                max_age: cfg.stream_max_age,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map(|_| tracing::info!("nats: created stream {} (subjects aurora.>)", cfg.stream))
            .map_err(|e| format!("creating stream {}: {e}", cfg.stream)),
    }
}
