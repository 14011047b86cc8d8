//! Real container runtimes for the container tests: Podman with its API service on a socket
//! the test owns, and dockerd with a private data root and no networking of its own. Images
//! are built offline from busybox-static (Debian's), imported from a root-filesystem tarball.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::daemons::poll_until;
use super::KillOnDrop;

/// What every `podman run` here needs (hybrid cgroups without systemd; see the README facts).
pub const PODMAN_RUN: &[&str] = &[
    "run",
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--network",
    "none",
];

/// A root filesystem tarball: busybox-static as /bin/busybox and the applets the tests run.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
    for applet in ["sh", "ls", "sleep", "id", "cat", "true", "uname", "env"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar of the busybox root filesystem");
    tar
}

/// GET `path` on a unix socket's HTTP API: (status, body).
pub fn api_get(socket: &Path, path: &str) -> Option<(u16, String)> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn wait_api(socket: &Path, what: &str) {
    poll_until(what, 30, || {
        api_get(socket, "/version").filter(|(code, _)| *code == 200)
    });
}

/// Podman's API service on `dir/podman.sock`, its CLI configured alike (file events, runc,
/// cgroupfs: what works without systemd).
pub struct Podman {
    pub socket: PathBuf,
    conf: PathBuf,
    service: Option<KillOnDrop>,
    images: Vec<String>,
}

impl Podman {
    pub fn start(dir: &Path) -> Podman {
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n",
        )
        .unwrap();
        let mut p = Podman {
            socket: dir.join("podman.sock"),
            conf,
            service: None,
            images: Vec::new(),
        };
        p.start_service();
        p
    }

    /// (Re)start the API service on the same socket.
    pub fn start_service(&mut self) {
        let child = self
            .cmd()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", self.socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman (Debian's podman)");
        self.service = Some(KillOnDrop(child));
        wait_api(&self.socket, "podman's API service");
    }

    /// Stop the API service (as a runtime restart does); the socket file stays.
    pub fn stop_service(&mut self) {
        self.service = None;
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf);
        c
    }

    /// Import `tarball` as image `name` (removed again when this is dropped).
    pub fn import(&mut self, tarball: &Path, name: &str) {
        super::run_ok(self.cmd().arg("import").arg(tarball).arg(name));
        self.images.push(name.to_owned());
    }

    /// `podman run` with `args` (flags, image, command); returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        super::run_ok(self.cmd().args(PODMAN_RUN).args(args))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for image in &self.images {
            let _ = self
                .cmd()
                .args(["rmi", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// dockerd on `dir/docker.sock`, data and state under `dir`, no bridge and no iptables rules:
/// it touches nothing of the host's networking.
pub struct Dockerd {
    pub socket: PathBuf,
    daemon: std::process::Child,
}

impl Dockerd {
    pub fn start(dir: &Path) -> Dockerd {
        let socket = dir.join("docker.sock");
        let child = Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dockerd (Debian's docker.io)");
        let d = Dockerd {
            socket,
            daemon: child,
        };
        wait_api(&d.socket, "dockerd");
        d
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", format!("unix://{}", self.socket.display()));
        c
    }

    /// Import `tarball` as image `name` (the daemon's data goes with it).
    pub fn import(&self, tarball: &Path, name: &str) {
        super::run_ok(self.cmd().arg("import").arg(tarball).arg(name));
    }
}

impl Drop for Dockerd {
    /// SIGTERM, so dockerd stops the containerd it started (a SIGKILL would leave it running).
    fn drop(&mut self) {
        super::nix_kill(self.daemon.id(), 15);
        for _ in 0..200 {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// containerd on `dir/containerd.sock` with its root and state under `dir` (CRI off: no CNI
/// needed); `ctr` runs containers in it.
pub struct Containerd {
    pub socket: PathBuf,
    _daemon: KillOnDrop,
}

impl Containerd {
    pub fn start(dir: &Path) -> Containerd {
        let socket = dir.join("containerd.sock");
        let config = dir.join("containerd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"{debug}\"\n",
                root = dir.join("cd-root").display(),
                state = dir.join("cd-state").display(),
                sock = socket.display(),
                debug = dir.join("cd-debug.sock").display(),
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("containerd (Debian's containerd)");
        let d = Containerd {
            socket,
            _daemon: KillOnDrop(child),
        };
        poll_until("containerd", 30, || {
            d.ctr(&["version"])
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
        d
    }

    /// `ctr` on this containerd, in Kubernetes' namespace.
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io"])
            .args(args);
        c
    }
}
