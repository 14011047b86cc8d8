//! The agent's side of the control plane: one task that, every interval, converges to the
//! operator's intent, takes new bundles and puts a heartbeat, and in between answers
//! commands. NATS being down only delays it: the client reconnects, the next tick retries,
//! and nothing here stops detection.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream;
use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;
use tokio::task::JoinHandle;

use super::bundle::{self, BundleKind};
use super::command::{Command, Reply, Request};
use super::heartbeat::{BundleState, Heartbeat, Identity};
use super::{intent, FleetConfig, Stores};
use crate::nats::NatsConnect;
use crate::policy::{PolicyHandle, PolicySet};
use crate::response::isolate::{self, Allow};
use crate::sources::ebpf::Sensors;
use crate::stats::Stats;
use crate::telemetry::ready::ReadyState;

/// Checks a directory of rules as a reload would (all or nothing): the active count, or why not.
pub type RuleValidator = Arc<dyn Fn(&Path) -> Result<usize, String> + Send + Sync>;

/// What the control plane needs of the running agent.
pub struct FleetAgent {
    pub cfg: FleetConfig,
    pub connect: NatsConnect,
    pub stats: Arc<Stats>,
    pub ready: ReadyState,
    pub policy: PolicyHandle,
    pub sensors: Arc<Mutex<Sensors>>,
    /// What isolation keeps reachable: the NATS servers and the other collectors.
    pub allows: Vec<Allow>,
    pub validate_rules: RuleValidator,
}

/// What the control loop remembers between ticks.
#[derive(Default)]
struct AgentState {
    stores: Option<Stores>,
    /// Per bundle kind, the object version last looked at (its nuid), so each is tried once.
    seen: BTreeMap<BundleKind, String>,
    said: Said,
}

/// What became of each bundle kind's last bundle: written by the control loop, reported by
/// the heartbeats.
type BundleStates = Mutex<BTreeMap<String, BundleState>>;

/// The last problem said per step, so a lasting outage is logged once.
#[derive(Default)]
struct Said(BTreeMap<&'static str, String>);

impl Said {
    /// Log `e` for `step` unless it was the last thing said for it.
    fn warn_once(&mut self, step: &'static str, e: &anyhow::Error) {
        let text = format!("{e:#}");
        if self.0.get(step) != Some(&text) {
            tracing::warn!("fleet: {step}: {text}");
            self.0.insert(step, text);
        }
    }

    fn ok(&mut self, step: &'static str) {
        self.0.remove(step);
    }
}

impl FleetAgent {
    /// Connect (in the background: the client retries forever) and run until aborted.
    pub async fn spawn(self) -> Result<JoinHandle<()>> {
        let client = crate::nats::connect(&self.connect, None).await?;
        let subscription = client
            .subscribe(super::command_subject(&self.connect.host))
            .await?;
        let id = Identity {
            host_id: self.connect.host.clone(),
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            started: super::unix_now(),
            interval: self.cfg.interval.as_secs_f64(),
        };
        tracing::info!(
            "fleet: host id {}, heartbeat every {:.1} s{}{}",
            id.host_id,
            id.interval,
            if self.cfg.rules { ", rule bundles" } else { "" },
            if self.cfg.policy {
                ", policy bundles"
            } else {
                ""
            }
        );
        Ok(tokio::spawn(self.run(client, subscription, id)))
    }

    /// Heartbeats on their own clock, so that a slow step of the control loop (a bundle being
    /// validated, a reload) never makes a live agent look stale.
    async fn run(self, client: async_nats::Client, commands: async_nats::Subscriber, id: Identity) {
        let js = jetstream::new(client.clone());
        let bundles = BundleStates::default();
        tokio::join!(
            self.heartbeats(&js, &id, &bundles),
            self.control(&client, &js, commands, &bundles)
        );
    }

    async fn heartbeats(&self, js: &jetstream::Context, id: &Identity, bundles: &BundleStates) {
        let mut said = Said::default();
        let mut stores: Option<Stores> = None;
        let mut tick = tokio::time::interval(self.cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let put = async {
                if stores.is_none() {
                    stores = Some(Stores::open(js, true).await?);
                }
                let hb = self.heartbeat(id, bundles).await;
                if let Some(s) = &stores {
                    s.heartbeats
                        .put(&id.host_id, serde_json::to_vec(&hb)?.into())
                        .await?;
                }
                anyhow::Ok(())
            };
            let result = match tokio::time::timeout(Duration::from_secs(5), put).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("no answer within 5 s")),
            };
            let fleet = &self.stats.fleet;
            match result {
                Ok(()) => {
                    fleet.heartbeats_ok.fetch_add(1, Relaxed);
                    said.ok("heartbeat");
                }
                Err(e) => {
                    fleet.heartbeats_failed.fetch_add(1, Relaxed);
                    said.warn_once("heartbeat", &e);
                }
            }
        }
    }

    /// Intent, bundles and commands.
    async fn control(
        &self,
        client: &async_nats::Client,
        js: &jetstream::Context,
        mut commands: async_nats::Subscriber,
        bundles: &BundleStates,
    ) {
        let mut st = AgentState::default();
        let mut tick = tokio::time::interval(self.cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick(js, &mut st, bundles).await,
                Some(msg) = commands.next() => self.on_command(client, js, &mut st, msg).await,
            }
        }
    }

    /// Converge to the operator's intent, take new bundles.
    async fn tick(&self, js: &jetstream::Context, st: &mut AgentState, bundles: &BundleStates) {
        if st.stores.is_none() {
            match Stores::open(js, true).await {
                Ok(s) => {
                    st.said.ok("opening the fleet's buckets");
                    st.stores = Some(s);
                }
                Err(e) => return st.said.warn_once("opening the fleet's buckets", &e),
            }
        }
        match self.converge(st).await {
            Ok(Some(done)) => {
                self.stats.fleet.convergences.fetch_add(1, Relaxed);
                tracing::warn!("fleet: {done} (operator intent)");
            }
            Ok(None) => st.said.ok("isolation intent"),
            Err(e) => st.said.warn_once("isolation intent", &e),
        }
        for kind in self.bundle_kinds() {
            if let Some(state) = self.check_bundle(kind, st).await {
                if let Ok(mut b) = bundles.lock() {
                    b.insert(kind.name().to_owned(), state);
                }
            }
        }
    }

    fn bundle_kinds(&self) -> Vec<BundleKind> {
        BundleKind::ALL
            .into_iter()
            .filter(|k| match k {
                BundleKind::Rules => self.cfg.rules,
                BundleKind::Policy => self.cfg.policy,
            })
            .collect()
    }

    async fn heartbeat(&self, id: &Identity, bundles: &BundleStates) -> Heartbeat {
        let mut hb = Heartbeat::collect(id, &self.ready, &self.stats);
        hb.isolated = tokio::task::spawn_blocking(|| isolate::is_isolated().ok())
            .await
            .ok()
            .flatten();
        let set = self.policy.get();
        hb.policy_digest = set.digest.clone();
        hb.policy_entries = set.entries.iter().filter(|e| e.list != "watch").count() as u64;
        hb.policy_mode = set.forced_mode.map(|m| m.as_str().to_owned());
        hb.bundles = bundles.lock().map(|b| b.clone()).unwrap_or_default();
        hb
    }

    /// Bring the kernel to the wanted isolation; what was done, if anything.
    async fn converge(&self, st: &AgentState) -> Result<Option<String>> {
        let Some(stores) = &st.stores else {
            return Ok(None);
        };
        let Some(want) = intent::wanted(&stores.intent, &self.connect.host).await? else {
            return Ok(None);
        };
        self.apply_isolation(want.isolated).await
    }

    async fn apply_isolation(&self, isolated: bool) -> Result<Option<String>> {
        let allows = self.allows.clone();
        tokio::task::spawn_blocking(move || {
            let now = isolate::is_isolated()?;
            if now == isolated {
                return Ok(None);
            }
            if isolated {
                isolate::isolate(&allows)?;
                let list: Vec<String> = allows.iter().map(|a| a.to_string()).collect();
                Ok(Some(format!("isolated (allowing {})", list.join(", "))))
            } else {
                isolate::unisolate()?;
                Ok(Some("unisolated".to_owned()))
            }
        })
        .await?
    }

    /// Take the newest bundle of `kind` if it is one not looked at yet; what became of it.
    async fn check_bundle(&self, kind: BundleKind, st: &mut AgentState) -> Option<BundleState> {
        let stores = st.stores.as_ref()?;
        let info = match stores.bundles.info(kind.name()).await {
            Ok(i) if !i.deleted => i,
            Ok(_) => return None,
            Err(e) if e.kind() == jetstream::object_store::InfoErrorKind::NotFound => return None,
            Err(e) => {
                st.said
                    .warn_once("bundle", &anyhow::anyhow!("{}: {e}", kind.name()));
                return None;
            }
        };
        if st.seen.get(&kind) == Some(&info.nuid) {
            return None;
        }
        st.seen.insert(kind, info.nuid.clone());
        let stated = info
            .metadata
            .get(bundle::META_SHA256)
            .cloned()
            .unwrap_or_default();
        let short = super::heartbeat::short(&stated);
        let (state, reason) = match self.take_bundle(kind, stores, &info).await {
            Ok(done) => {
                tracing::info!("fleet: {} bundle {short} accepted: {done}", kind.name());
                ("accepted", None)
            }
            Err(e) => {
                tracing::error!(
                    "fleet: {} bundle {short} refused, keeping the running {}: {e:#}",
                    kind.name(),
                    kind.name()
                );
                ("refused", Some(format!("{e:#}")))
            }
        };
        self.stats.fleet.count_bundle(kind.name(), state);
        Some(BundleState {
            digest: stated,
            state: state.into(),
            reason,
            at: super::unix_now(),
        })
    }

    /// Fetch, verify, validate, swap, reload: what was done, or why the bundle was refused.
    async fn take_bundle(
        &self,
        kind: BundleKind,
        stores: &Stores,
        info: &jetstream::object_store::ObjectInfo,
    ) -> Result<String> {
        let mut object = stores.bundles.get(kind.name()).await?;
        let mut payload = Vec::with_capacity(info.size);
        object.read_to_end(&mut payload).await?;
        let key = self.cfg.key.clone().unwrap_or_default();
        let b = bundle::verify(&payload, &info.metadata, &key, kind)?;
        let digest = bundle::sha256_hex(&payload);
        // Files and validation off the runtime thread, which also drains the sensors' rings.
        let (cfg, validate) = (self.cfg.clone(), self.validate_rules.clone());
        let installed =
            tokio::task::spawn_blocking(move || install(&cfg, kind, &b, &digest, &validate))
                .await??;
        match installed {
            Some(summary) => Ok(format!("{summary}; {}", self.reload().await)),
            None => Ok("already running".into()),
        }
    }

    /// SIGHUP ourselves (rules and policies reload as on `systemctl reload`) and wait for the
    /// rule reload's outcome.
    async fn reload(&self) -> String {
        let d = &self.stats.detect;
        let before = d.reloads_ok.load(Relaxed) + d.reloads_refused.load(Relaxed);
        // SAFETY: a signal to our own process, which handles SIGHUP.
        unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
        for _ in 0..1200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if d.reloads_ok.load(Relaxed) + d.reloads_refused.load(Relaxed) != before {
                return match d.last_reload.lock().ok().and_then(|g| g.clone()) {
                    Some(r) if r.ok => format!("reloaded: {}", r.detail),
                    Some(r) => format!("reload refused, the running rules stay: {}", r.detail),
                    None => "reloaded".into(),
                };
            }
        }
        "reload requested; no outcome within 60 s".into()
    }

    async fn on_command(
        &self,
        client: &async_nats::Client,
        js: &jetstream::Context,
        st: &mut AgentState,
        msg: async_nats::Message,
    ) {
        let host = self.connect.host.clone();
        let reply = match serde_json::from_slice::<Request>(&msg.payload) {
            Ok(req) => {
                let (ok, result) = match self.execute(&req.command, st).await {
                    Ok(r) => (true, r),
                    Err(e) => (false, format!("{e:#}")),
                };
                let counter = if ok {
                    &self.stats.fleet.commands_ok
                } else {
                    &self.stats.fleet.commands_failed
                };
                counter.fetch_add(1, Relaxed);
                tracing::info!(
                    "fleet: {} from {} (id {}): {}{result}",
                    req.command.name(),
                    req.by,
                    req.id,
                    if ok { "" } else { "failed: " }
                );
                Reply {
                    id: req.id,
                    host,
                    command: req.command.name().into(),
                    ok,
                    result,
                    at: super::unix_now(),
                }
            }
            Err(e) => Reply {
                id: String::new(),
                host,
                command: String::new(),
                ok: false,
                result: format!("not a command: {e}"),
                at: super::unix_now(),
            },
        };
        let body: bytes::Bytes = serde_json::to_vec(&reply).unwrap_or_default().into();
        if let Some(to) = msg.reply {
            if let Err(e) = client.publish(to, body.clone()).await {
                tracing::warn!("fleet: replying: {e}");
            }
        }
        let subject = super::record_subject(&self.connect.host, "reply");
        match js.publish(subject, body).await {
            Ok(ack) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), ack).await;
            }
            Err(e) => tracing::warn!("fleet: recording the reply: {e}"),
        }
    }

    async fn execute(&self, command: &Command, st: &mut AgentState) -> Result<String> {
        match command {
            Command::Ping => Ok(format!(
                "aurora {} on {}, {} active rules",
                crate::VERSION,
                self.ready.kernel,
                self.stats
                    .detect
                    .rule_states
                    .lock()
                    .map(|g| g.active)
                    .unwrap_or_default()
            )),
            Command::Isolate | Command::Unisolate => {
                // The recorded intent decides; the verb only when operators recorded none.
                let wanted = match &st.stores {
                    Some(s) => intent::wanted(&s.intent, &self.connect.host).await?,
                    None => None,
                };
                let isolated = wanted.map_or(*command == Command::Isolate, |w| w.isolated);
                Ok(self.apply_isolation(isolated).await?.unwrap_or_else(|| {
                    if isolated {
                        "already isolated"
                    } else {
                        "already unisolated"
                    }
                    .into()
                }))
            }
            Command::Kill { guid } => {
                let pid = crate::response::kill::kill_guid(guid)?;
                Ok(format!("killed pid {pid} ({guid})"))
            }
            Command::Reload => Ok(self.reload().await),
            Command::PolicyMode { mode } => {
                let mut set = (*self.policy.get()).clone();
                set.force_mode(*mode);
                self.sensors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply_policy(&set)?;
                self.stats.response.set_entries(set.counts());
                let n = set.entries.iter().filter(|e| e.list != "watch").count();
                self.policy.set(set);
                Ok(format!("policy: {n} entries in {} mode", mode.as_str()))
            }
        }
    }
}

/// Validate bundle `b` in a staging directory and make it the current one of its kind: what it
/// holds, or None when it already is the current one.
fn install(
    cfg: &FleetConfig,
    kind: BundleKind,
    b: &bundle::Bundle,
    digest: &str,
    validate: &RuleValidator,
) -> Result<Option<String>> {
    let target = cfg.dir.join(format!("{}-{}", kind.name(), &digest[..16]));
    let current = cfg.current(kind);
    if std::fs::read_link(&current).ok().as_deref() == target.file_name().map(Path::new) {
        return Ok(None);
    }
    let staging = cfg.dir.join(format!(".staging-{}", kind.name()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    b.unpack(&staging)?;
    let summary = match kind {
        BundleKind::Rules => {
            let n = validate(&staging).map_err(|e| anyhow::anyhow!("invalid rules: {e}"))?;
            format!("{} files, {n} active rules", b.files.len())
        }
        BundleKind::Policy => {
            let set = PolicySet::load(std::slice::from_ref(&staging))
                .map_err(|e| anyhow::anyhow!("invalid policy: {e}"))?;
            format!("{} files, {} entries", b.files.len(), set.entries.len())
        }
    };
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target)?;
    swap_link(&current, &target)?;
    remove_others(&cfg.dir, kind, &target);
    Ok(Some(summary))
}

/// Point `link` at `target` in one step (a new link renamed over the old one).
fn swap_link(link: &Path, target: &Path) -> Result<()> {
    let name = target.file_name().unwrap_or_default();
    let tmp = link.with_extension("swap");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    std::fs::rename(&tmp, link)?;
    Ok(())
}

/// Remove the directories of `kind`'s earlier bundles.
fn remove_others(dir: &Path, kind: BundleKind, keep: &Path) {
    let prefix = format!("{}-", kind.name());
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    for e in list.filter_map(Result::ok) {
        let p: PathBuf = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && p != keep && p.is_dir() {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// The fleet directory ready for loading: each bundle kind's link exists (to an empty
/// directory until a bundle is accepted), so the rules and policy paths can be given at start.
pub fn prepare_dir(cfg: &FleetConfig) -> Result<()> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&cfg.dir)
        .with_context(|| format!("--fleet-dir {}", cfg.dir.display()))?;
    for kind in BundleKind::ALL {
        let link = cfg.current(kind);
        if std::fs::symlink_metadata(&link).is_err() || !link.is_dir() {
            let empty = cfg.dir.join(format!("{}-none", kind.name()));
            std::fs::create_dir_all(&empty)?;
            let _ = std::fs::remove_file(&link);
            swap_link(&link, &empty)?;
        }
    }
    Ok(())
}
