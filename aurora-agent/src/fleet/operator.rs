//! Sending one command as an operator (`aurora fleet cmd`, the console): the intent first for
//! isolation, the command recorded in the stream, then the request and the agent's reply.
use std::time::Duration;

use anyhow::{Context as _, Result};
use async_nats::jetstream;

use super::command::{Command, Reply, Request};
use super::{intent, Stores};

/// What came of a command.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Sent {
    /// The agent answered.
    Replied(Reply),
    /// An isolation intent was recorded; the agent did not answer (it converges when back).
    IntentRecorded { host: String, why: String },
}

/// Send `cmd` to `host` as `operator`. Errors name what failed (the caller adds the server's
/// refusals it saw).
pub async fn send(
    client: &async_nats::Client,
    host: &str,
    operator: &str,
    cmd: Command,
) -> Result<Sent> {
    if !crate::nats::host_token_ok(host) {
        anyhow::bail!("{host:?}: not a host id");
    }
    let js = jetstream::new(client.clone());
    let req = Request {
        id: client
            .new_inbox()
            .rsplit('.')
            .next()
            .unwrap_or("")
            .to_owned(),
        host: host.to_owned(),
        by: operator.to_owned(),
        sent: super::unix_now(),
        command: cmd.clone(),
    };
    let body: bytes::Bytes = serde_json::to_vec(&req)?.into();
    let isolation = matches!(cmd, Command::Isolate | Command::Unisolate);
    // The operator's intent first: an agent that is down converges to it when it is back.
    if isolation {
        let stores = Stores::open(&js, false).await?;
        let want = intent::IsolationIntent {
            isolated: cmd == Command::Isolate,
            by: operator.to_owned(),
            at: req.sent,
        };
        intent::set(&stores.intent, host, &want).await?;
    }
    let recorded = js
        .publish(super::record_subject(host, "command"), body.clone())
        .await
        .context("recording the command")?;
    tokio::time::timeout(Duration::from_secs(5), recorded)
        .await
        .context("recording the command: no answer")?
        .context("recording the command")?;
    let answer = tokio::time::timeout(
        super::REPLY_TIMEOUT,
        client.request(super::command_subject(host), body),
    )
    .await;
    match answer {
        Ok(Ok(msg)) => Ok(Sent::Replied(
            serde_json::from_slice::<Reply>(&msg.payload)
                .with_context(|| format!("{host} answered something that is not a reply"))?,
        )),
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no reply within {:?}", super::REPLY_TIMEOUT),
            };
            if isolation {
                return Ok(Sent::IntentRecorded {
                    host: host.to_owned(),
                    why,
                });
            }
            anyhow::bail!("{host}: {why}")
        }
    }
}
