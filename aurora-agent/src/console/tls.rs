//! Serving the console over TLS when given a certificate: rustls (already the NATS client's and
//! the syslog sink's TLS) accepting each connection, hyper serving the same router on it.
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use axum::Router;

/// The server configuration of `cert` (PEM chain) and `key` (PEM private key).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let f = std::fs::File::open(cert).with_context(|| format!("--tls-cert {}", cert.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(f))
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", cert.display()))?;
    if certs.is_empty() {
        bail!("{}: no PEM certificate found", cert.display());
    }
    let f = std::fs::File::open(key).with_context(|| format!("--tls-key {}", key.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(f))?
        .with_context(|| format!("{}: no PEM private key found", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the certificate and key do not go together")?;
    Ok(Arc::new(config))
}

/// Accept TLS connections on `listener` and serve `app` on each until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => return tracing::debug!("console: TLS handshake with {peer}: {e}"),
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("console: connection from {peer}: {e}");
            }
        });
    }
}
