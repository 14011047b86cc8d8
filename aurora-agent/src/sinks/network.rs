//! Syslog to a remote collector over UDP, TCP or TLS (RFC 5425). Each sink owns a task and a
//! bounded queue: detection only formats and enqueues. While the collector is unreachable the
//! task reconnects with exponential backoff and alerts wait in the queue; what overflows the
//! queue is counted as dropped; a collector that comes back receives what was queued.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use serde::{Deserialize, Serialize};

use super::registry::{payload, SinkConfig, SinkContext};
use super::syslog::format::{Formatter, Payload};
use super::syslog::{frame, Framing};
use super::Sink;
use crate::detect::alert::Alert;
use crate::stats::SinkStats;

/// What collectors get unless `--udp-format`/`--tcp-format` say otherwise: syslog lines.
pub const DEFAULT_FORMAT: Payload = Payload::Text;
/// RFC 6587 octet counting: a message may contain newlines.
pub const DEFAULT_FRAMING: &str = "octet-counting";

#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct UdpConfig {
    /// Send alerts over UDP to host:port. Example: --udp-target 10.0.0.5:514
    #[arg(long, value_name = "HOST:PORT")]
    pub udp_target: Option<String>,
    /// Format of --udp-target: json|syslog.
    #[arg(long, value_name = "FORMAT")]
    pub udp_format: Option<String>,
}

impl SinkConfig for UdpConfig {
    fn build(&self, cx: &SinkContext) -> Result<Option<Box<dyn Sink>>> {
        let Some(t) = &self.udp_target else {
            return Ok(None);
        };
        let p = payload("--udp-format", self.udp_format.as_deref(), DEFAULT_FORMAT)?;
        let s = NetworkSink::start("udp", t, Transport::Udp, cx.formatter(p), cx.queue, &cx.rt)
            .with_context(|| format!("--udp-target {t}"))?;
        Ok(Some(Box::new(s)))
    }
}

/// TCP, and TLS as its option.
#[derive(clap::Args, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TcpConfig {
    /// Send alerts over TCP to host:port (RFC 6587 octet counting). Example: --tcp-target siem:6514
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp_target: Option<String>,
    /// Format of --tcp-target: json|syslog.
    #[arg(long, value_name = "FORMAT")]
    pub tcp_format: Option<String>,
    /// TCP framing: octet-counting (RFC 6587) or newline.
    #[arg(long, value_name = "FRAMING")]
    pub tcp_framing: Option<String>,
    /// Wrap --tcp-target in TLS (RFC 5425).
    #[arg(long)]
    pub tcp_tls: bool,
    /// CA certificate (PEM) that signs the collector's certificate. Example: --tls-ca ca.pem
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl TcpConfig {
    fn transport(&self) -> Result<Transport> {
        let framing = match self.tcp_framing.as_deref().unwrap_or(DEFAULT_FRAMING) {
            "octet-counting" => Framing::OctetCounting,
            "newline" => Framing::Newline,
            x => bail!("--tcp-framing {x}: expected octet-counting or newline"),
        };
        if !self.tcp_tls {
            if self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_key.is_some() {
                bail!("--tls-ca/--tls-cert/--tls-key given without --tcp-tls");
            }
            return Ok(Transport::Tcp(framing));
        }
        let ca = self
            .tls_ca
            .as_deref()
            .context("--tcp-tls needs --tls-ca FILE (the CA that signed the collector)")?;
        let tls = tls_config(ca, self.tls_cert.as_deref(), self.tls_key.as_deref())?;
        Ok(Transport::Tls(framing, tls))
    }
}

impl SinkConfig for TcpConfig {
    fn build(&self, cx: &SinkContext) -> Result<Option<Box<dyn Sink>>> {
        let Some(t) = &self.tcp_target else {
            if self.tcp_tls || self.tls_ca.is_some() {
                bail!("--tcp-tls/--tls-ca given without --tcp-target");
            }
            return Ok(None);
        };
        let p = payload("--tcp-format", self.tcp_format.as_deref(), DEFAULT_FORMAT)?;
        let name = if self.tcp_tls { "tls" } else { "tcp" };
        let s = NetworkSink::start(name, t, self.transport()?, cx.formatter(p), cx.queue, &cx.rt)
            .with_context(|| format!("--tcp-target {t}"))?;
        Ok(Some(Box::new(s)))
    }
}

#[derive(Clone)]
pub enum Transport {
    Udp,
    Tcp(Framing),
    Tls(Framing, Arc<rustls::ClientConfig>),
}

pub struct NetworkSink {
    formatter: Formatter,
    udp: bool,
    framing: Framing,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    task: Option<JoinHandle<()>>,
    stats: Arc<SinkStats>,
}

/// `host:port` (or `[v6]:port`) → (host, port), validated.
pub fn split_target(target: &str) -> Result<(String, u16)> {
    let (host, port) = target
        .rsplit_once(':')
        .with_context(|| format!("'{target}' is not host:port (e.g. 127.0.0.1:514)"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| format!("'{target}': port '{port}' is not a number in 1-65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("'{target}' has an empty host (e.g. 127.0.0.1:514)");
    }
    Ok((host.to_owned(), port))
}

pub fn tls_config(
    ca: &std::path::Path,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>> {
    let read_certs =
        |p: &std::path::Path| -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
            let f = std::fs::File::open(p)
                .with_context(|| format!("--tls-ca/--tls-cert {}", p.display()))?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(f))
                .collect::<std::result::Result<_, _>>()
                .with_context(|| format!("{}: not a PEM certificate file", p.display()))?;
            if certs.is_empty() {
                bail!("{}: no PEM certificate found", p.display());
            }
            Ok(certs)
        };
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(ca)? {
        roots
            .add(c)
            .with_context(|| format!("{}: unusable CA certificate", ca.display()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let config = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(c), Some(k)) => {
            let f = std::fs::File::open(k).with_context(|| format!("--tls-key {}", k.display()))?;
            let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(f))?
                .with_context(|| format!("{}: no PEM private key found", k.display()))?;
            builder.with_client_auth_cert(read_certs(c)?, key)?
        }
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    Ok(Arc::new(config))
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// A stream whose peer has closed: detected before writing, so the message is not written
    /// into a dead connection.
    async fn peer_closed(&self) -> bool {
        let tcp = match self {
            Conn::Udp(_) => return false,
            Conn::Tcp(t) => t,
            Conn::Tls(t) => t.get_ref().0,
        };
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::ZERO, tcp.peek(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    async fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Udp(s) => s.send(msg).await.map(|_| ()),
            Conn::Tcp(s) => s.write_all(msg).await,
            Conn::Tls(s) => {
                s.write_all(msg).await?;
                s.flush().await
            }
        }
    }
}

async fn connect(host: &str, port: u16, transport: &Transport) -> std::io::Result<Conn> {
    match transport {
        Transport::Udp => {
            let addr = tokio::net::lookup_host((host, port))
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
            let bind = if addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let s = UdpSocket::bind(bind).await?;
            s.connect(addr).await?;
            Ok(Conn::Udp(s))
        }
        Transport::Tcp(_) => {
            let s = TcpStream::connect((host, port)).await?;
            s.set_nodelay(true)?;
            Ok(Conn::Tcp(s))
        }
        Transport::Tls(_, cfg) => {
            let s = TcpStream::connect((host, port)).await?;
            s.set_nodelay(true)?;
            let name = ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
            let tls = TlsConnector::from(cfg.clone()).connect(name, s).await?;
            Ok(Conn::Tls(Box::new(tls)))
        }
    }
}

async fn deliver(
    host: String,
    port: u16,
    transport: Transport,
    mut rx: mpsc::Receiver<Vec<u8>>,
    stats: Arc<SinkStats>,
) {
    let mut conn: Option<Conn> = None;
    let mut pending: Option<Vec<u8>> = None;
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u64;
    let mut connected_before = false;
    loop {
        let msg = match pending.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => break,
            },
        };
        if let Some(c) = &conn {
            if c.peer_closed().await {
                conn = None;
            }
        }
        if conn.is_none() {
            match connect(&host, port, &transport).await {
                Ok(c) => {
                    if failures > 0 {
                        tracing::info!("collector {host}:{port} reachable again");
                    }
                    if connected_before {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    connected_before = true;
                    conn = Some(c);
                    backoff = Duration::from_millis(100);
                    failures = 0;
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(
                            "collector {host}:{port} unreachable ({e}); alerts are queued"
                        );
                    }
                    failures += 1;
                    pending = Some(msg);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match c.send(&msg).await {
            Ok(()) => stats.alerts.delivered(1),
            Err(e) => {
                tracing::warn!("collector {host}:{port}: {e}; reconnecting");
                stats.errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
                pending = Some(msg);
            }
        }
    }
    if let Some(Conn::Tcp(mut s)) = conn {
        let _ = s.shutdown().await;
    } else if let Some(Conn::Tls(mut s)) = conn {
        let _ = s.shutdown().await;
    }
}

impl NetworkSink {
    /// Start the sink's task on `rt`. `target` must be host:port.
    pub fn start(
        name: &str,
        target: &str,
        transport: Transport,
        formatter: Formatter,
        queue: usize,
        rt: &tokio::runtime::Handle,
    ) -> Result<Self> {
        let (host, port) = split_target(target)?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(SinkStats::named(format!("{name}:{target}")));
        let (udp, framing) = match &transport {
            Transport::Udp => (true, Framing::Newline),
            Transport::Tcp(f) | Transport::Tls(f, _) => (false, *f),
        };
        let task = rt.spawn(deliver(host, port, transport, rx, stats.clone()));
        Ok(NetworkSink {
            formatter,
            udp,
            framing,
            tx: Some(tx),
            task: Some(task),
            stats,
        })
    }
}

impl Sink for NetworkSink {
    fn emit(&mut self, a: &Alert) {
        let msg = self.formatter.format(a);
        let bytes = if self.udp {
            msg.into_bytes()
        } else {
            frame(&msg, self.framing)
        };
        let Some(tx) = &self.tx else { return };
        let flow = &self.stats.alerts;
        flow.accepted.fetch_add(1, Ordering::Relaxed);
        flow.queued.fetch_add(1, Ordering::Relaxed);
        if tx.try_send(bytes).is_err() {
            flow.drop_queued(1);
            let n = flow.dropped.load(Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!("{}: queue full, {n} alerts dropped so far", self.stats.name);
            }
        }
    }

    fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    fn shutdown(&mut self) -> Option<JoinHandle<()>> {
        self.tx.take();
        self.task.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_validated() {
        assert_eq!(
            split_target("127.0.0.1:514").unwrap(),
            ("127.0.0.1".into(), 514)
        );
        assert_eq!(split_target("[::1]:6514").unwrap(), ("::1".into(), 6514));
        assert!(split_target("localhost")
            .unwrap_err()
            .to_string()
            .contains("host:port"));
        assert!(split_target("h:0").is_err());
        assert!(split_target("h:99999").is_err());
        assert!(split_target(":514").is_err());
    }
}
