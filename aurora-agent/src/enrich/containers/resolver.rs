//! The background side of container names: one task per runtime socket follows its container
//! events (a container's metadata is fetched when it is created, before its first process
//! runs, and marked gone when it is removed), one task answers the enricher's requests for ids
//! it has not seen, and a sweep drops what ended. A runtime that is absent or restarts is
//! reconnected; the agent says once when no runtime answers and once per outage.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::api::{Api, ApiError, Identity};
use super::containerd::Containerd;
use super::{ContainerMeta, Directory, Entry};
use crate::stats::EnrichStats;

/// Ids the enricher may have asked for and the resolver not yet taken.
pub const REQUEST_QUEUE: usize = 1024;
/// An id no runtime knew is asked for again after this.
pub const RETRY_UNKNOWN: Duration = Duration::from_secs(30);
/// A removed container's names stay this long (its last processes' exits come after).
const GONE_GRACE: Duration = Duration::from_secs(30);
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// Containers kept at most (a node runs a few hundred; this bounds a churn storm).
const MAX_ENTRIES: usize = 16384;
/// Shortest and longest wait between two attempts to reach a runtime.
const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// How long after start the agent waits for a runtime before saying names are unavailable.
const FIRST_CONTACT: Duration = Duration::from_secs(5);

/// Requests answered at once (each may wait on a runtime that is starting the container).
const CONCURRENT_REQUESTS: usize = 16;

/// How often a containerd connection (which has no event stream here) is checked.
const CONTAINERD_PING: Duration = Duration::from_secs(10);

struct Runtime {
    api: Api,
    containerd: Containerd,
    /// What answers there, while connected.
    identity: Mutex<Option<Identity>>,
}

impl Runtime {
    /// Docker's Engine API (Docker, Podman), else containerd's gRPC API.
    async fn identify(&self) -> Result<Identity, ApiError> {
        match self.api.identify().await {
            Ok(i) => Ok(i),
            Err(engine) => match self.containerd.version().await {
                Ok(_) => Ok(Identity {
                    name: "containerd".into(),
                    store: None,
                    containerd: true,
                }),
                Err(_) => Err(engine),
            },
        }
    }

    async fn inspect(
        &self,
        identity: &Identity,
        id: &str,
    ) -> Result<Option<(String, ContainerMeta)>, ApiError> {
        if identity.containerd {
            let meta = self.containerd.get(id, &identity.name).await?;
            return Ok(meta.map(|m| (id.to_owned(), m)));
        }
        self.api.inspect(id, &identity.name).await
    }

    /// Ids of the containers the runtime has now.
    async fn ids(&self, identity: &Identity) -> Result<Vec<String>, ApiError> {
        if identity.containerd {
            return self.containerd.existing().await;
        }
        self.api.running().await
    }

    fn connected(&self) -> Option<Identity> {
        self.identity.lock().ok().and_then(|n| n.clone())
    }

    fn set(&self, identity: Option<Identity>) {
        if let Ok(mut n) = self.identity.lock() {
            *n = identity;
        }
    }
}

struct Shared {
    runtimes: Vec<Runtime>,
    directory: Arc<Directory>,
    stats: Arc<EnrichStats>,
    /// Set once any runtime answered.
    any_contact: AtomicBool,
}

pub fn spawn(
    sockets: Vec<PathBuf>,
    directory: Arc<Directory>,
    requests: mpsc::Receiver<Arc<str>>,
    stats: Arc<EnrichStats>,
) {
    let shared = Arc::new(Shared {
        runtimes: sockets
            .into_iter()
            .map(|s| Runtime {
                containerd: Containerd { socket: s.clone() },
                api: Api::new(s),
                identity: Mutex::new(None),
            })
            .collect(),
        directory,
        stats,
        any_contact: AtomicBool::new(false),
    });
    for i in 0..shared.runtimes.len() {
        tokio::spawn(follow(shared.clone(), i));
    }
    tokio::spawn(serve_requests(shared.clone(), requests));
    tokio::spawn(sweep(shared.clone()));
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_CONTACT).await;
        if !shared.any_contact.load(Ordering::Relaxed) {
            let tried: Vec<String> = shared
                .runtimes
                .iter()
                .map(|r| r.api.socket.display().to_string())
                .collect();
            tracing::warn!(
                "container names unavailable: no runtime answered at {} (ContainerId and \
                 CgroupPath still come from the cgroup; a runtime that starts later is found)",
                tried.join(", ")
            );
        }
    });
}

/// Keep one runtime connected: announce it, load its running containers, follow its events.
/// An absent socket is looked for every second; a refused or failed one is retried with a
/// growing pause.
async fn follow(shared: Arc<Shared>, index: usize) {
    let rt = &shared.runtimes[index];
    let mut backoff = RECONNECT_MIN;
    let mut outage_said = false;
    loop {
        if !rt.api.exists() {
            tokio::time::sleep(RECONNECT_MIN).await;
            continue;
        }
        match connect(&shared, rt).await {
            Ok(()) => {
                // The stream ended: the runtime stopped or restarted.
                backoff = RECONNECT_MIN;
                outage_said = false;
                tracing::warn!(
                    socket = %rt.api.socket.display(),
                    "container runtime went away; reconnecting"
                );
            }
            Err(e) => {
                if !outage_said {
                    outage_said = true;
                    tracing::warn!("container runtime unreachable: {e}; retrying");
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        }
        if rt.connected().is_some() {
            shared
                .stats
                .container_runtimes_up
                .fetch_sub(1, Ordering::Relaxed);
        }
        rt.set(None);
        tokio::time::sleep(backoff).await;
    }
}

/// One connection's life: returns when the event stream ends (or, for containerd, when it
/// stops answering).
async fn connect(shared: &Arc<Shared>, rt: &Runtime) -> Result<(), ApiError> {
    let identity = rt.identify().await?;
    if identity.containerd {
        return connect_containerd(shared, rt, identity).await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Subscribe before listing, so a container created in between is not missed.
    let events = {
        let api = rt.api.clone();
        tokio::spawn(async move { api.follow_events(|ev| drop(tx.send(ev))).await })
    };
    let running = rt.api.running().await?;
    announce(shared, rt, &identity, running.len());
    for id in running {
        resolve_from(shared, rt, &identity, &id).await;
    }
    while let Some(ev) = rx.recv().await {
        let id: Arc<str> = ev.container_id().into();
        match ev.action.as_str() {
            // Created: its processes have not started yet; fetch now so they carry names.
            // Started: only if its creation was missed (already known is inspected once).
            "create" | "rename" => {
                resolve_from(shared, rt, &identity, &id).await;
            }
            "start" if !is_known(&shared.directory, &id) => {
                resolve_from(shared, rt, &identity, &id).await;
            }
            "destroy" | "remove" => mark_gone(&shared.directory, &id),
            _ => {}
        }
    }
    match events.await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

/// containerd: its containers are read at connection; later ones are asked for when their
/// launcher or first process is seen (runc's `create` names the id while the pod is set up).
async fn connect_containerd(
    shared: &Arc<Shared>,
    rt: &Runtime,
    identity: Identity,
) -> Result<(), ApiError> {
    let existing = rt.containerd.existing().await?;
    announce(shared, rt, &identity, existing.len());
    for id in existing {
        resolve_from(shared, rt, &identity, &id).await;
    }
    loop {
        tokio::time::sleep(CONTAINERD_PING).await;
        if rt.containerd.version().await.is_err() {
            return Ok(());
        }
    }
}

fn announce(shared: &Shared, rt: &Runtime, identity: &Identity, containers: usize) {
    rt.set(Some(identity.clone()));
    shared.any_contact.store(true, Ordering::Relaxed);
    shared
        .stats
        .container_runtimes_up
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        socket = %rt.api.socket.display(),
        runtime = %identity.name,
        containers,
        "container runtime connected"
    );
}

/// Ask one runtime about `id`; true when it knew it.
async fn resolve_from(shared: &Shared, rt: &Runtime, identity: &Identity, id: &str) -> bool {
    shared
        .stats
        .container_lookups
        .fetch_add(1, Ordering::Relaxed);
    match rt.inspect(identity, id).await {
        Ok(Some((full_id, meta))) => {
            shared
                .stats
                .container_resolved
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(id, name = %meta.name, "container resolved");
            insert(&shared.directory, full_id.into(), meta);
            true
        }
        Ok(None) => false,
        Err(e) => {
            shared
                .stats
                .container_api_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!("container {id}: {e}");
            false
        }
    }
}

fn insert(directory: &Directory, id: Arc<str>, meta: ContainerMeta) {
    directory.write().insert(id, Entry::Known(Arc::new(meta)));
}

fn is_known(directory: &Directory, id: &Arc<str>) -> bool {
    matches!(directory.read().get(id), Some(Entry::Known(_)))
}

fn mark_gone(directory: &Directory, id: &Arc<str>) {
    let mut entries = directory.write();
    if let Some(Entry::Known(m)) = entries.get(id) {
        let m = m.clone();
        entries.insert(id.clone(), Entry::Gone(m, Instant::now()));
    }
}

/// The enricher's requests: ids seen in cgroups or a launcher's arguments that no event
/// announced yet (a container starting now, one older than the connection, one of a runtime
/// whose events were missed or that Aurora does not ask).
async fn serve_requests(shared: Arc<Shared>, mut requests: mpsc::Receiver<Arc<str>>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_REQUESTS));
    while let Some(id) = requests.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            answer(&shared, id).await;
            drop(slot);
        });
    }
}

/// Ask each connected runtime in turn; Podman's store first, which has the names while its
/// API still holds the container's lock.
async fn answer(shared: &Shared, id: Arc<str>) {
    for rt in &shared.runtimes {
        let Some(identity) = rt.connected() else {
            continue;
        };
        if let Some(store) = &identity.store {
            if let Ok(contents) = tokio::fs::read(store).await {
                if let Some(meta) = super::store::find(&contents, &id, &identity.name) {
                    insert_if_unnamed(&shared.directory, id.clone(), meta);
                }
            }
        }
        if resolve_from(shared, rt, &identity, &id).await {
            return;
        }
    }
    shared
        .stats
        .container_unknown
        .fetch_add(1, Ordering::Relaxed);
    let mut entries = shared.directory.write();
    if !matches!(entries.get(&id), Some(Entry::Known(_))) {
        entries.insert(id, Entry::Unknown(Instant::now()));
    }
}

/// Names from a store: kept unless the runtime's own answer came first.
fn insert_if_unnamed(directory: &Directory, id: Arc<str>, meta: ContainerMeta) {
    let mut entries = directory.write();
    if !matches!(entries.get(&id), Some(Entry::Known(_) | Entry::Gone(..))) {
        entries.insert(id, Entry::Known(Arc::new(meta)));
    }
}

/// Every interval: containers the runtimes no longer run are marked gone (a missed removal),
/// gone and unknown ones past their time are dropped, and the directory stays bounded.
async fn sweep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let mut running = HashSet::new();
        let mut complete = true;
        let mut any = false;
        for rt in &shared.runtimes {
            let Some(identity) = rt.connected() else {
                continue;
            };
            any = true;
            match rt.ids(&identity).await {
                Ok(ids) => running.extend(ids),
                Err(_) => complete = false,
            }
        }
        let now = Instant::now();
        let mut entries = shared.directory.write();
        if any && complete {
            let ended: Vec<Arc<str>> = entries
                .iter()
                .filter(|(id, e)| matches!(e, Entry::Known(_)) && !running.contains(&***id))
                .map(|(id, _)| id.clone())
                .collect();
            for id in ended {
                if let Some(Entry::Known(m)) = entries.remove(&id) {
                    entries.insert(id, Entry::Gone(m, now));
                }
            }
        }
        entries.retain(|_, e| match e {
            Entry::Gone(_, at) => now.duration_since(*at) < GONE_GRACE,
            Entry::Unknown(at) => now.duration_since(*at) < RETRY_UNKNOWN,
            _ => true,
        });
        let before = entries.len();
        if before > MAX_ENTRIES {
            let excess: Vec<Arc<str>> =
                entries.keys().take(before - MAX_ENTRIES).cloned().collect();
            for id in excess {
                entries.remove(&id);
            }
            shared
                .stats
                .container_evictions
                .fetch_add((before - MAX_ENTRIES) as u64, Ordering::Relaxed);
        }
        shared
            .stats
            .container_cache_entries
            .store(entries.len() as u64, Ordering::Relaxed);
    }
}
