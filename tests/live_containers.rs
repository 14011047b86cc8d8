//! Containers live (root): real Podman (its API service on a socket the test owns) and real
//! dockerd (private data root, no bridge, no iptables) run an image imported offline from
//! busybox-static. Events of container processes carry the container's id, image, name and pod
//! (from CRI-style labels) on every kind; host processes carry none; a hundred one-second
//! containers get their names on at least 99 % of their execs; an absent or refusing runtime
//! socket is a metric, not a crash, and a runtime that comes back is reconnected.
mod common;

use std::collections::HashMap;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::containers::{busybox_tarball, Containerd, Dockerd, Podman};
use common::*;
use serde_json::Value;

const SHELL_IN_CONTAINER: &str = "b92a7f2d-59ce-5583-af6e-b89ca715d256";

fn socket_flag(socket: &Path) -> String {
    format!("--container-socket={}", socket.display())
}

/// A container id written by `--cidfile`.
fn cid(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

fn of_container<'a>(events: &'a [Value], id: &'a str) -> impl Iterator<Item = &'a Value> {
    events.iter().filter(move |e| e["ContainerId"] == id)
}

/// Wait until the series reads `want` on the recorder's metrics.
fn wait_metric(rec: &Recorder, series: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http_get(metrics_port(&rec.ready), "/metrics");
        if sample(&body, series) == want {
            return;
        }
        assert!(Instant::now() < deadline, "{series} never {want}:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "root, BPF, and the Podman it starts: run by `cargo xtask test`"]
fn podman_container_events_carry_image_name_and_pod() {
    let dir = tempfile::tempdir().unwrap();
    let mut podman = Podman::start(dir.path());
    let image = format!("localhost/{}:test", marker("img"));
    podman.import(&busybox_tarball(dir.path()), &image);
    let rec = Recorder::start(&[&socket_flag(&podman.socket)]);
    wait_metric(&rec, "aurora_container_runtimes_up", 1);

    let (name, c1) = (marker("web"), dir.path().join("c1"));
    let c1_arg = format!("--cidfile={}", c1.display());
    podman.run(&[
        "--rm",
        "--name",
        &name,
        &c1_arg,
        &image,
        "sh",
        "-c",
        // busybox's shell runs applets without exec: `env` makes `id` an exec of its own.
        "env id; echo x > /tmp/made; sleep 0.3",
    ]);
    let c2 = dir.path().join("c2");
    let c2_arg = format!("--cidfile={}", c2.display());
    podman.run(&[
        "--rm",
        &c2_arg,
        "--label",
        "io.kubernetes.pod.name=web-0",
        "--label",
        "io.kubernetes.pod.namespace=payments",
        "--label",
        "io.kubernetes.pod.uid=6f1c2b3a-0000-4000-8000-000000000001",
        &image,
        "sh",
        "-c",
        // Podman's first exec may carry the names from its store, without labels (see
        // docs/events.md#containers); a later one has the inspection's labels.
        "sleep 0.5; env uname",
    ]);
    let host = Command::new("/bin/sh")
        .args(["-c", "exit 0"])
        .spawn()
        .unwrap();
    let host_pid = host.id() as i64;
    assert!(host.wait_with_output().unwrap().status.success());
    let metrics = rec.settle_and_metrics();
    let (events, _) = rec.stop();

    let (id1, id2) = (cid(&c1), cid(&c2));
    let execs: Vec<&Value> = of_container(&events, &id1)
        .filter(|e| e["EventID"] == 1)
        .collect();
    let id_exec = execs
        .iter()
        .find(|e| s(e, "CommandLine") == "id")
        .unwrap_or_else(|| panic!("no exec of `id` in {id1}: {execs:?}"));
    assert_eq!(id_exec["ContainerImage"], image.as_str(), "{id_exec}");
    assert_eq!(id_exec["ContainerName"], name.as_str());
    assert_eq!(id_exec["ContainerRuntime"], "podman");
    assert!(s(id_exec, "ContainerImageId").starts_with("sha256:"));
    assert!(id_exec.get("PodName").is_none(), "no pod labels: {id_exec}");
    // Every kind a container process makes carries the names, not only its execs.
    for kind in [5, 11] {
        let named = of_container(&events, &id1)
            .find(|e| e["EventID"] == kind && e["ContainerImage"] == image.as_str());
        assert!(named.is_some(), "no EventID {kind} with names in {id1}");
    }

    let pod_exec = of_container(&events, &id2)
        .find(|e| e["EventID"] == 1 && s(e, "CommandLine") == "uname")
        .unwrap_or_else(|| panic!("no exec of `uname` in {id2}"));
    assert_eq!(pod_exec["PodName"], "web-0", "{pod_exec}");
    assert_eq!(pod_exec["PodNamespace"], "payments");
    assert_eq!(pod_exec["PodUid"], "6f1c2b3a-0000-4000-8000-000000000001");

    let host_exec = events
        .iter()
        .find(|e| e["EventID"] == 1 && e["ProcessId"] == host_pid)
        .expect("the host shell's exec");
    for field in ["ContainerId", "ContainerImage", "ContainerName", "PodName"] {
        assert!(host_exec.get(field).is_none(), "{field} on {host_exec}");
    }
    assert!(
        sample(
            &metrics,
            r#"aurora_container_lookups_total{result="resolved"}"#
        ) >= 2,
        "{metrics}"
    );
}

#[test]
#[ignore = "root, BPF, and the Podman it starts: run by `cargo xtask test`"]
fn hundred_short_lived_containers_are_named() {
    const CONTAINERS: usize = 100;
    const WORKERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let mut podman = Podman::start(dir.path());
    let image = format!("localhost/{}:test", marker("churn"));
    podman.import(&busybox_tarball(dir.path()), &image);
    let rec = Recorder::start(&[&socket_flag(&podman.socket), "--file-sensor", "off"]);
    wait_metric(&rec, "aurora_container_runtimes_up", 1);

    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let (podman, image, dir) = (&podman, &image, dir.path());
            scope.spawn(move || {
                for i in (w..CONTAINERS).step_by(WORKERS) {
                    let cidfile = format!("--cidfile={}", dir.join(format!("cid{i}")).display());
                    podman.run(&[
                        "--rm",
                        &cidfile,
                        image,
                        "sh",
                        "-c",
                        "ls / >/dev/null; sleep 1",
                    ]);
                }
            });
        }
    });
    let (events, _) = rec.stop();

    let ids: Vec<String> = (0..CONTAINERS)
        .map(|i| cid(&dir.path().join(format!("cid{i}"))))
        .collect();
    let mut per: HashMap<&str, (usize, usize)> = HashMap::new();
    for e in events.iter().filter(|e| e["EventID"] == 1) {
        let Some(id) = e["ContainerId"].as_str() else {
            continue;
        };
        if let Some(id) = ids.iter().find(|c| *c == id) {
            let c = per.entry(id).or_default();
            c.0 += 1;
            c.1 += usize::from(e["ContainerImage"] == image.as_str());
        }
    }
    assert_eq!(per.len(), CONTAINERS, "every container's execs were seen");
    let (execs, named) = per.values().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    println!("{named} of {execs} container execs named");
    assert!(
        named * 100 >= execs * 99,
        "only {named} of {execs} execs carried the image name"
    );
}

#[test]
#[ignore = "root, BPF, and the dockerd it starts: run by `cargo xtask test`"]
fn docker_container_events_carry_image_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let docker = Dockerd::start(dir.path());
    let image = format!("{}:test", marker("dimg"));
    docker.import(&busybox_tarball(dir.path()), &image);
    let rec = Recorder::start(&[&socket_flag(&docker.socket), "--file-sensor", "off"]);
    wait_metric(&rec, "aurora_container_runtimes_up", 1);
    let name = marker("dweb");
    let cidfile = dir.path().join("cid");
    run_ok(
        docker
            .cmd()
            .args(["run", "--rm", "--network", "none", "--name", &name])
            .args([
                format!("--cidfile={}", cidfile.display()),
                "--label=io.kubernetes.pod.namespace=payments".into(),
                image.clone(),
                "sh".into(),
                "-c".into(),
                "env id; sleep 0.2".into(),
            ]),
    );
    let (events, _) = rec.stop();
    let id = cid(&cidfile);
    let exec = of_container(&events, &id)
        .find(|e| e["EventID"] == 1 && s(e, "CommandLine") == "id")
        .unwrap_or_else(|| panic!("no exec of `id` in {id}"));
    assert_eq!(exec["ContainerImage"], image.as_str(), "{exec}");
    assert_eq!(exec["ContainerName"], name.as_str());
    assert_eq!(exec["ContainerRuntime"], "docker");
    assert_eq!(exec["PodNamespace"], "payments");
}

#[test]
#[ignore = "root, BPF, and the dockerd and containerd it starts: run by `cargo xtask test`"]
fn containerd_container_events_carry_image_and_pod() {
    let dir = tempfile::tempdir().unwrap();
    // The image: imported into a private dockerd, saved as an archive `ctr` imports.
    let archive = dir.path().join("image.tar");
    let image = format!("{}:test", marker("cimg"));
    {
        let docker = Dockerd::start(&dir.path().join("docker"));
        docker.import(&busybox_tarball(dir.path()), &image);
        run_ok(docker.cmd().args(["save", "-o"]).arg(&archive).arg(&image));
    }
    let containerd = Containerd::start(dir.path());
    run_ok(containerd.ctr(&["images", "import"]).arg(&archive));
    let full_image = format!("docker.io/library/{image}");
    let rec = Recorder::start(&[&socket_flag(&containerd.socket), "--file-sensor", "off"]);
    wait_metric(&rec, "aurora_container_runtimes_up", 1);
    // Kubernetes' container ids are 64 hex digits; its CRI labels name pod and container.
    let id = format!(
        "{:064x}",
        std::process::id() as u128 * 0x9e37_79b9_7f4a_7c15
    );
    run_ok(&mut containerd.ctr(&[
        "run",
        "--rm",
        "--label",
        "io.kubernetes.pod.name=web-0",
        "--label",
        "io.kubernetes.pod.namespace=payments",
        "--label",
        "io.kubernetes.container.name=app",
        &full_image,
        &id,
        "sh",
        "-c",
        "env id; sleep 0.2",
    ]));
    let (events, _) = rec.stop();
    let execs: Vec<&Value> = of_container(&events, &id)
        .filter(|e| e["EventID"] == 1)
        .collect();
    assert!(!execs.is_empty(), "no exec in {id}");
    for exec in execs {
        assert_eq!(exec["ContainerImage"], full_image.as_str(), "{exec}");
        assert_eq!(exec["ContainerName"], "app");
        assert_eq!(exec["ContainerRuntime"], "containerd");
        assert_eq!(exec["PodName"], "web-0");
        assert_eq!(exec["PodNamespace"], "payments");
    }
}

#[test]
#[ignore = "root, BPF, and the Podman it starts: run by `cargo xtask test`"]
fn absent_or_refusing_runtime_is_reported_and_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.sock");
    let mut podman = Podman::start(dir.path());
    let image = format!("localhost/{}:test", marker("rc"));
    podman.import(&busybox_tarball(dir.path()), &image);
    podman.stop_service();
    // A socket nobody listens on: connections are refused.
    let _ = std::fs::remove_file(&podman.socket);
    drop(UnixListener::bind(&podman.socket).unwrap());
    let rec = Recorder::start(&[
        &socket_flag(&absent),
        &socket_flag(&podman.socket),
        "--file-sensor",
        "off",
    ]);

    let run = |podman: &Podman, what: &str| {
        let cidfile = dir.path().join(what);
        let arg = format!("--cidfile={}", cidfile.display());
        podman.run(&["--rm", &arg, &image, "sh", "-c", "env id; sleep 0.2"]);
        cid(&cidfile)
    };
    let unnamed = run(&podman, "unnamed");
    let metrics = rec.settle_and_metrics();
    assert_eq!(sample(&metrics, "aurora_container_runtimes_up"), 0);
    assert!(
        sample(&metrics, r#"aurora_container_events_total{named="false"}"#) >= 1,
        "{metrics}"
    );

    let _ = std::fs::remove_file(&podman.socket);
    podman.start_service();
    wait_metric(&rec, "aurora_container_runtimes_up", 1);
    let named = run(&podman, "named");
    // The runtime restarts: the agent notices and connects again.
    podman.stop_service();
    wait_metric(&rec, "aurora_container_runtimes_up", 0);
    let _ = std::fs::remove_file(&podman.socket);
    podman.start_service();
    wait_metric(&rec, "aurora_container_runtimes_up", 1);
    let again = run(&podman, "again");
    let (events, _) = rec.stop();

    let exec_of = |id: &str| {
        of_container(&events, id)
            .find(|e| e["EventID"] == 1 && s(e, "CommandLine") == "id")
            .cloned()
            .unwrap_or_else(|| panic!("no exec of `id` in {id}"))
    };
    assert!(exec_of(&unnamed).get("ContainerImage").is_none());
    assert_eq!(exec_of(&named)["ContainerImage"], image.as_str());
    assert_eq!(exec_of(&again)["ContainerImage"], image.as_str());
}

#[test]
#[ignore = "root, BPF, and the Podman it starts: run by `cargo xtask test`"]
fn shell_in_an_application_image_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let mut podman = Podman::start(dir.path());
    let tarball = busybox_tarball(dir.path());
    let app = format!("localhost/{}-web:test", marker("app"));
    let shell = format!("localhost/{}-busybox:test", marker("sh"));
    podman.import(&tarball, &app);
    podman.import(&tarball, &shell);
    let agent = Agent::start(
        dir.path(),
        &[
            "--rules".into(),
            repo().join("rules").into(),
            socket_flag(&podman.socket).into(),
        ],
    );
    wait_metric_agent(&agent);
    podman.run(&["--rm", &shell, "sh", "-c", "id"]);
    podman.run(&["--rm", &app, "sh", "-c", "id"]);
    let host = Command::new("/bin/sh").args(["-c", "id"]).output().unwrap();
    assert!(host.status.success());
    let first = agent.wait_for(15, 1, |a| a["rule"]["id"] == SHELL_IN_CONTAINER);
    assert!(
        !first.is_empty(),
        "no shell-in-container alert: {:?}",
        agent.alerts()
    );
    // The shell image's run came first: had it alerted, it would be here by now too.
    std::thread::sleep(Duration::from_secs(1));
    let hits: Vec<Value> = agent
        .alerts()
        .into_iter()
        .filter(|a| a["rule"]["id"] == SHELL_IN_CONTAINER)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "one alert, for the application image: {hits:?}"
    );
    assert_eq!(hits[0]["event"]["ContainerImage"], app.as_str());
    agent.stop();
}

fn wait_metric_agent(agent: &Agent) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&agent.metrics(), "aurora_container_runtimes_up") != 1 {
        assert!(
            Instant::now() < deadline,
            "the agent never connected to podman"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
