//! NATS identities for the fleet: an nkey per agent and one for operators, and the
//! nats-server `accounts` block that gives each agent exactly its own subjects — publish its
//! alerts, events, heartbeat key and command replies, read its own intent key, the bundles and
//! its own commands — while the operator identity may do everything (command, push, read).
//! `deploy/nats/nats-server.conf` includes the file written here.
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::{BUNDLES, HEARTBEATS, INTENT};

/// The JetStream account every fleet identity belongs to.
pub const ACCOUNT: &str = "AURORA";

/// The permissions of agent `host`, as nats-server configuration.
pub fn agent_permissions(host: &str) -> String {
    let stream = crate::nats::NatsConfig::DEFAULT_STREAM;
    let publish = [
        format!("aurora.alerts.{host}"),
        format!("aurora.events.{host}.>"),
        format!("aurora.fleet.{host}.reply"),
        format!("$KV.{HEARTBEATS}.{host}"),
        "$JS.API.INFO".into(),
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.INFO.KV_{HEARTBEATS}"),
        format!("$JS.API.STREAM.INFO.KV_{INTENT}"),
        format!("$JS.API.STREAM.INFO.OBJ_{BUNDLES}"),
        format!("$JS.API.DIRECT.GET.KV_{INTENT}.$KV.{INTENT}.{host}.isolation"),
        format!("$JS.API.DIRECT.GET.OBJ_{BUNDLES}.>"),
        format!("$JS.API.CONSUMER.CREATE.OBJ_{BUNDLES}"),
        format!("$JS.API.CONSUMER.CREATE.OBJ_{BUNDLES}.>"),
        format!("$JS.API.CONSUMER.DELETE.OBJ_{BUNDLES}.>"),
        format!("$JS.FC.OBJ_{BUNDLES}.>"),
    ];
    let subscribe = [super::command_subject(host), format!("_INBOX.{host}.>")];
    format!(
        "permissions: {{\n        publish: {{ allow: [{}] }}\n        subscribe: {{ allow: [{}] }}\n        allow_responses: true\n      }}",
        quoted(&publish),
        quoted(&subscribe)
    )
}

fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Write `DIR/HOST.nk` for each host and `DIR/OPERATOR.nk`, and `DIR/accounts.conf`.
pub fn enroll(hosts: &[String], operator: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("--dir {}", dir.display()))?;
    let mut users = Vec::new();
    for name in hosts.iter().map(String::as_str).chain([operator]) {
        if !crate::nats::host_token_ok(name) {
            anyhow::bail!("{name:?}: expected letters, digits, '-' and '_' only");
        }
        let kp = nkeys::KeyPair::new_user();
        let seed = kp.seed().map_err(|e| anyhow::anyhow!("{e}"))?;
        let path = dir.join(format!("{name}.nk"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(f, "{seed}")?;
        let perms = if name == operator {
            "permissions: { publish: \">\", subscribe: \">\" }".to_owned()
        } else {
            agent_permissions(name)
        };
        users.push(format!(
            "      # {name}\n      {{ nkey: {},\n      {perms} }}",
            kp.public_key()
        ));
    }
    let conf = format!(
        "# Aurora fleet identities (aurora fleet enroll): each agent may publish only its own\n\
         # subjects and receive only its own commands; the operator may do everything.\n\
         accounts {{\n  {ACCOUNT} {{\n    jetstream: enabled\n    users: [\n{}\n    ]\n  }}\n}}\n",
        users.join(",\n")
    );
    let path = dir.join("accounts.conf");
    std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "fleet: {} identities in {} (seeds: HOST.nk for --nats-nkey), accounts in {}",
        hosts.len() + 1,
        dir.display(),
        path.display()
    );
    Ok(())
}
