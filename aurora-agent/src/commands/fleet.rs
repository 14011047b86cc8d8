//! `aurora fleet …`: the operator's side of the control plane — the fleet's state, commands to
//! one agent, signed bundles, signing keys, NATS identities and the buckets themselves.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream;

use crate::cli::{FleetCommand, FleetConnArgs};
use crate::fleet::bundle::{self, Bundle, BundleKind};
use crate::fleet::command::Command;
use crate::fleet::operator::Sent;
use crate::fleet::Stores;
use crate::nats::{NatsConnect, Refusals};

/// Returns whether the command did what it was asked.
pub fn run(cmd: FleetCommand) -> Result<bool> {
    match cmd {
        FleetCommand::Keygen { out } => keygen(&out).map(|()| true),
        FleetCommand::Enroll {
            hosts,
            operator,
            dir,
        } => crate::fleet::enroll::enroll(&hosts, &operator, &dir).map(|()| true),
        FleetCommand::Init { conn } => block_on(init(&conn)),
        FleetCommand::Status { conn, json } => block_on(status(&conn, json)),
        FleetCommand::Cmd {
            conn,
            operator,
            host,
            words,
        } => block_on(command(&conn, &operator, &host, &words)),
        FleetCommand::PushRules { conn, key, dirs } => {
            let (entries, summary) = super::rules_check::check_dirs(&dirs, None)?;
            let invalid: Vec<String> = entries
                .iter()
                .filter_map(|e| match &e.status {
                    crate::detect::rules::RuleStatus::Invalid { reason } => {
                        Some(format!("{}: {reason}", e.path.display()))
                    }
                    _ => None,
                })
                .collect();
            if !invalid.is_empty() {
                bail!(
                    "{} invalid rule(s), nothing pushed:\n  {}",
                    invalid.len(),
                    invalid.join("\n  ")
                );
            }
            eprintln!("fleet: rules valid ({summary})");
            block_on(push(&conn, &key, BundleKind::Rules, &dirs))
        }
        FleetCommand::PushPolicy { conn, key, files } => {
            crate::policy::PolicySet::load(&files)?;
            block_on(push(&conn, &key, BundleKind::Policy, &files))
        }
        FleetCommand::Simulate(args) => block_on(crate::fleet::simulate::run(args)),
    }
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Create the buckets, the object store and the stream (an operator's first step; agents
/// with least-privilege credentials cannot).
async fn init(conn: &FleetConnArgs) -> Result<bool> {
    let (client, refused) = connect(conn).await?;
    let js = jetstream::new(client);
    Stores::open(&js, true)
        .await
        .map_err(|e| refused.explain(format!("{e:#}")))?;
    let file = super::settings::load_file(&conn.global)?;
    let args = crate::sinks::nats::NatsArgs {
        connect: file.layer(&conn.nats)?,
        ..Default::default()
    };
    let mut cfg = args
        .resolve(crate::nats::NatsConfig::DRAIN_RECORDED)?
        .context("give --nats-url URL")?;
    cfg.create_stream = true;
    crate::nats::ensure_stream(&js, &cfg)
        .await
        .map_err(anyhow::Error::msg)?;
    println!(
        "fleet: buckets {}, {}, object store {} and stream {} ready",
        crate::fleet::HEARTBEATS,
        crate::fleet::INTENT,
        crate::fleet::BUNDLES,
        cfg.stream
    );
    Ok(true)
}

/// Connect once (no endless retry: an operator wants the error) and keep what the server
/// refuses (permission violations arrive apart from the request that caused them).
async fn connect(conn: &FleetConnArgs) -> Result<(async_nats::Client, Refusals)> {
    let file = super::settings::load_file(&conn.global)?;
    let args: crate::nats::NatsConnectArgs = file.layer(&conn.nats)?;
    let cfg: NatsConnect = args
        .resolve()?
        .context("give --nats-url URL (the fleet's NATS server)")?;
    let refused = Refusals::default();
    let opts = crate::nats::options(&cfg)
        .await?
        .connection_timeout(Duration::from_secs(5));
    let client = refused
        .watch(opts)
        .connect(crate::nats::server_addrs(&cfg)?)
        .await
        .with_context(|| format!("connecting to {}", cfg.urls.join(", ")))?;
    Ok((client, refused))
}

async fn status(conn: &FleetConnArgs, json: bool) -> Result<bool> {
    let (client, _) = connect(conn).await?;
    let js = jetstream::new(client);
    // Each bucket is opened by the read itself (an earlier open's status would be stale).
    let rows = crate::fleet::heartbeat::status_rows(&js).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", crate::fleet::heartbeat::table(&rows))?;
        let stale = rows.iter().filter(|r| r.stale).count();
        writeln!(out, "{} hosts, {stale} stale", rows.len())?;
    }
    Ok(true)
}

async fn command(
    conn: &FleetConnArgs,
    operator: &str,
    host: &str,
    words: &[String],
) -> Result<bool> {
    let cmd = Command::parse(words).map_err(anyhow::Error::msg)?;
    let (client, refused) = connect(conn).await?;
    let sent = crate::fleet::operator::send(&client, host, operator, cmd.clone())
        .await
        .map_err(|e| refused.explain(format!("{e:#}")))?;
    match sent {
        Sent::Replied(reply) => {
            println!("{}", serde_json::to_string(&reply)?);
            Ok(reply.ok)
        }
        Sent::IntentRecorded { host, why } => {
            println!(
                "{host}: intent recorded ({}); the agent did not answer ({why}): it converges \
                 when it is back",
                cmd.name()
            );
            Ok(true)
        }
    }
}

async fn push(
    conn: &FleetConnArgs,
    key: &Path,
    kind: BundleKind,
    paths: &[PathBuf],
) -> Result<bool> {
    let seed = bundle::read_seed(key)?;
    let b = Bundle::from_paths(kind, paths)?;
    let signed = b.sign(&seed)?;
    let (client, refused) = connect(conn).await?;
    let js = jetstream::new(client);
    let stores = Stores::open(&js, false).await?;
    bundle::put(&stores, kind, &signed)
        .await
        .map_err(|e| refused.explain(format!("{e:#}")))?;
    println!(
        "fleet: {} bundle {} pushed ({} files, signed by {})",
        kind.name(),
        signed.sha256(),
        b.files.len(),
        seed.public_key()
    );
    Ok(true)
}

/// Write a signing key: `PREFIX.seed` (secret, mode 0600) and `PREFIX.pub`.
fn keygen(out: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let (seed, public) = bundle::generate_key()?;
    let seed_path = out.with_extension("seed");
    let pub_path = out.with_extension("pub");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&seed_path)
        .with_context(|| format!("creating {}", seed_path.display()))?;
    writeln!(f, "{seed}")?;
    std::fs::write(&pub_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    println!(
        "fleet: signing key {} (public key {}: give it to agents as --fleet-key)",
        seed_path.display(),
        pub_path.display()
    );
    Ok(())
}
