//! Operator intent: what operators want of a host, kept apart from what the host reports. The
//! wanted isolation of each host is the key `<host>.isolation` of `AURORA_INTENT`, which only
//! operator credentials may write (deploy/nats); an agent reads it when it starts, when a
//! command arrives and every heartbeat interval, and converges the kernel to it.
use anyhow::{Context as _, Result};
use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationIntent {
    pub isolated: bool,
    /// Who wanted it (the operator's name as `aurora fleet cmd --operator` gives it).
    pub by: String,
    /// Unix seconds.
    pub at: f64,
}

pub fn isolation_key(host: &str) -> String {
    format!("{host}.isolation")
}

/// The wanted isolation of `host` (None: operators never said).
pub async fn wanted(store: &kv::Store, host: &str) -> Result<Option<IsolationIntent>> {
    let key = isolation_key(host);
    match store
        .get(&key)
        .await
        .with_context(|| format!("reading {key}"))?
    {
        Some(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).with_context(|| format!("{key}: not an intent"))?,
        )),
        None => Ok(None),
    }
}

/// Record what operators want of `host`.
pub async fn set(store: &kv::Store, host: &str, intent: &IsolationIntent) -> Result<()> {
    let key = isolation_key(host);
    store
        .put(&key, serde_json::to_vec(intent)?.into())
        .await
        .with_context(|| format!("writing {key}"))?;
    Ok(())
}
