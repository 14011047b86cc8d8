//! Container metadata: the image, name and Kubernetes pod of a container id, from the runtime's
//! own API (Docker's, which Podman's service also speaks, or containerd's), kept in a directory the background
//! resolver fills and the enricher only reads. Events are never held back for it: an event
//! whose container is not known yet goes out without the names, and is counted.
mod api;
mod containerd;
mod resolver;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::event::{names as f, Event};
use crate::stats::EnrichStats;

pub use api::{Api, ApiError};

/// Sockets asked when `--container-socket` is not given: Docker's, Podman's (rootful) and
/// containerd's usual paths. A socket that appears later (the runtime started after the
/// agent) is found.
pub const DEFAULT_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
];

/// Programs a runtime runs to start a container, with its id among their arguments.
const LAUNCHERS: &[&str] = &["conmon", "containerd-shim", "runc", "crun"];

/// What a runtime says about one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerMeta {
    pub name: Arc<str>,
    /// The image as the container was created from it (`docker.io/library/nginx:1.25`).
    pub image: Arc<str>,
    pub image_id: Arc<str>,
    /// `docker`, `podman` or `containerd`.
    pub runtime: Arc<str>,
    /// From the CRI labels `io.kubernetes.pod.*`, when the container is a pod's.
    pub pod_name: Option<Arc<str>>,
    pub pod_namespace: Option<Arc<str>>,
    pub pod_uid: Option<Arc<str>>,
    /// How many labels the container has (the pod ones are fields of their own).
    pub labels: usize,
}

impl ContainerMeta {
    /// The fields every event of a process in this container carries.
    pub fn push_fields(&self, ev: &mut Event) {
        ev.push_str(f::CONTAINER_NAME, &*self.name);
        ev.push_str(f::CONTAINER_IMAGE, &*self.image);
        // containerd keeps no image id with the container.
        if !self.image_id.is_empty() {
            ev.push_str(f::CONTAINER_IMAGE_ID, &*self.image_id);
        }
        ev.push_str(f::CONTAINER_RUNTIME, &*self.runtime);
        for (name, v) in [
            (f::POD_NAME, &self.pod_name),
            (f::POD_NAMESPACE, &self.pod_namespace),
            (f::POD_UID, &self.pod_uid),
        ] {
            if let Some(v) = v {
                ev.push_str(name, &**v);
            }
        }
    }
}

/// Where the container names come from; `build()` of the flags.
#[derive(Clone, Debug, Default)]
pub struct ContainerConfig {
    /// Runtime API sockets asked, in order; empty: container names are off.
    pub sockets: Vec<PathBuf>,
}

impl ContainerConfig {
    /// From `--container-socket` (`none` alone turns names off; not given: the defaults).
    pub fn from_flags(sockets: &[PathBuf]) -> anyhow::Result<ContainerConfig> {
        if sockets.iter().any(|s| s.as_os_str() == "none") {
            if sockets.len() > 1 {
                anyhow::bail!("--container-socket none: given with other sockets");
            }
            return Ok(ContainerConfig { sockets: vec![] });
        }
        if sockets.is_empty() {
            return Ok(ContainerConfig {
                sockets: DEFAULT_SOCKETS.iter().map(PathBuf::from).collect(),
            });
        }
        if let Some(rel) = sockets.iter().find(|s| !s.is_absolute()) {
            anyhow::bail!(
                "--container-socket {}: must be an absolute path",
                rel.display()
            );
        }
        Ok(ContainerConfig {
            sockets: sockets.to_vec(),
        })
    }
}

/// What the directory knows of one container id.
#[derive(Clone, Debug)]
enum Entry {
    /// Asked for, no answer yet.
    Pending,
    Known(Arc<ContainerMeta>),
    /// No runtime knew it (or none answered) at this time; asked again after a while.
    Unknown(Instant),
    /// The runtime said it ended at this time; kept a while for its last events (exits).
    Gone(Arc<ContainerMeta>, Instant),
}

/// Container id → metadata, shared by the resolver (writes) and the enricher (reads).
#[derive(Default)]
pub struct Directory {
    entries: RwLock<HashMap<Arc<str>, Entry>>,
}

impl Directory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The enricher's handle: looks ids up, asks the resolver for unknown ones (never waits).
pub struct ContainerNames {
    directory: Arc<Directory>,
    requests: mpsc::Sender<Arc<str>>,
    stats: Arc<EnrichStats>,
}

impl ContainerNames {
    /// Start the resolver on the current runtime; `None` when names are off.
    pub fn start(cfg: &ContainerConfig, stats: Arc<EnrichStats>) -> Option<ContainerNames> {
        if cfg.sockets.is_empty() {
            return None;
        }
        let directory = Arc::new(Directory::default());
        let (requests, rx) = mpsc::channel(resolver::REQUEST_QUEUE);
        resolver::spawn(cfg.sockets.clone(), directory.clone(), rx, stats.clone());
        Some(ContainerNames {
            directory,
            requests,
            stats,
        })
    }

    /// The metadata of container `id`, if a runtime has told it yet.
    pub fn meta(&self, id: &Arc<str>) -> Option<Arc<ContainerMeta>> {
        let found = match self.directory.read().get(id) {
            Some(Entry::Known(m)) | Some(Entry::Gone(m, _)) => Some(Some(m.clone())),
            Some(Entry::Pending) => Some(None),
            Some(Entry::Unknown(at)) => (at.elapsed() < resolver::RETRY_UNKNOWN).then_some(None),
            None => None,
        };
        let meta = match found {
            Some(m) => m,
            None => {
                self.ask(id);
                None
            }
        };
        let counter = if meta.is_some() {
            &self.stats.container_events_named
        } else {
            &self.stats.container_events_unnamed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        meta
    }

    /// An exec of a runtime's launcher (conmon, a containerd shim, runc, crun) names the
    /// container it is about to start: ask for its names now, while the runtime sets it up, so
    /// its first process already carries them (Podman's event stream arrives after that).
    pub fn launcher_exec(&self, image: &str, argv: &[u8]) {
        let base = image.rsplit('/').next().unwrap_or(image);
        if !LAUNCHERS.iter().any(|l| base.starts_with(l)) {
            return;
        }
        let Some(id) = argv
            .split(|&b| b == 0)
            .filter_map(|a| std::str::from_utf8(a).ok())
            .find(|a| super::cgroup::is_hex_id(a))
        else {
            return;
        };
        if !self.directory.read().contains_key(id) {
            self.ask(&Arc::from(id));
        }
    }

    fn ask(&self, id: &Arc<str>) {
        self.directory.write().insert(id.clone(), Entry::Pending);
        if self.requests.try_send(id.clone()).is_err() {
            // The resolver is behind: forget the request so a later event asks again.
            self.directory.write().remove(id);
            self.stats
                .container_requests_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_from_flags() {
        let defaults = ContainerConfig::from_flags(&[]).unwrap();
        assert_eq!(defaults.sockets.len(), DEFAULT_SOCKETS.len());
        assert!(ContainerConfig::from_flags(&["none".into()])
            .unwrap()
            .sockets
            .is_empty());
        let one = ContainerConfig::from_flags(&["/run/x.sock".into()]).unwrap();
        assert_eq!(one.sockets, vec![PathBuf::from("/run/x.sock")]);
        let err = ContainerConfig::from_flags(&["none".into(), "/run/x.sock".into()]);
        assert!(err.is_err());
        let rel = ContainerConfig::from_flags(&["x.sock".into()]).unwrap_err();
        assert!(rel.to_string().contains("absolute"), "{rel}");
    }

    #[test]
    fn unknown_ids_are_asked_once_and_counted() {
        let stats = Arc::new(EnrichStats::default());
        let (requests, mut rx) = mpsc::channel(4);
        let names = ContainerNames {
            directory: Arc::new(Directory::default()),
            requests,
            stats: stats.clone(),
        };
        let id: Arc<str> = "a".repeat(64).into();
        assert!(names.meta(&id).is_none());
        assert!(names.meta(&id).is_none());
        assert_eq!(rx.try_recv().unwrap(), id);
        assert!(rx.try_recv().is_err(), "a pending id is not asked again");
        let meta = ContainerMeta {
            name: "web".into(),
            image: "nginx".into(),
            image_id: "sha256:1".into(),
            runtime: "docker".into(),
            pod_name: None,
            pod_namespace: None,
            pod_uid: None,
            labels: 0,
        };
        names
            .directory
            .write()
            .insert(id.clone(), Entry::Known(Arc::new(meta)));
        assert_eq!(&*names.meta(&id).unwrap().image, "nginx");
        assert_eq!(stats.container_events_unnamed.load(Ordering::Relaxed), 2);
        assert_eq!(stats.container_events_named.load(Ordering::Relaxed), 1);
        // A launcher's exec asks for the id in its arguments.
        let other = "b".repeat(64);
        names.launcher_exec(
            "/usr/bin/conmon",
            format!("conmon\0-c\0{other}\0").as_bytes(),
        );
        assert_eq!(&*rx.try_recv().unwrap(), other.as_str());
        names.launcher_exec("/usr/bin/bash", format!("bash\0{other}\0").as_bytes());
        assert!(rx.try_recv().is_err());
    }
}
