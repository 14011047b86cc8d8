//! Helpers shared by the integration tests: running the `aurora` binary and reading its output.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod auditd;
pub mod containers;
pub mod daemons;
pub mod fleet;
pub mod nats;
pub mod testdata;

pub fn aurora() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aurora"))
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The SigmaHQ Linux rule corpus (see `testdata.rs` for where it is looked for).
pub fn sigmahq() -> PathBuf {
    testdata::require(testdata::Corpus::SigmaHq, &repo())
}

/// The rule-count scaling corpus.
pub fn sigmahq_scale() -> PathBuf {
    testdata::require(testdata::Corpus::SigmaHqScale, &repo())
}

/// A unique marker for this test run.
pub fn marker(name: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("aurora-test-{name}-{}-{t}-{n}", std::process::id())
}

/// `aurora record` running in the background, writing JSONL to a temp file.
pub struct Recorder {
    child: Child,
    pub out: PathBuf,
    /// The agent's ready file (programs, file sensor mode), read once it appeared.
    pub ready: Value,
    stderr_lines: mpsc::Receiver<String>,
    pub stderr: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Wait until `child` has written its ready file; returns it parsed. Panics (the test fails)
/// if the child exits first or nothing appears within 60 s: live tests never skip.
pub fn wait_ready(child: &mut Child, ready: &Path, stderr: &mpsc::Receiver<String>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(ready) {
            return serde_json::from_str(&text).expect("the ready file is JSON");
        }
        if let Some(status) = child.try_wait().unwrap() {
            let log: Vec<String> = stderr.try_iter().collect();
            panic!(
                "aurora exited before it was ready ({status}):\n{}",
                log.join("\n")
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let log: Vec<String> = stderr.try_iter().collect();
            panic!("aurora not ready within 60 s:\n{}", log.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of a child's stderr, read on a thread.
pub fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Recorder {
    /// Start recording and wait until the sensors are attached (the ready file).
    pub fn start(extra: &[&str]) -> Recorder {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.jsonl");
        let ready_path = dir.path().join("ready.json");
        let mut child = Command::new(aurora())
            .arg("record")
            .arg("--output")
            .arg(&out)
            .arg("--ready-file")
            .arg(&ready_path)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn aurora record");
        let rx = stderr_lines(&mut child);
        let ready = wait_ready(&mut child, &ready_path, &rx);
        Recorder {
            child,
            out,
            ready,
            stderr_lines: rx,
            stderr: Vec::new(),
            _dir: dir,
        }
    }

    /// Let the last records travel through the rings (and the kernel counters be copied), then
    /// read the agent's `/metrics`.
    pub fn settle_and_metrics(&self) -> String {
        std::thread::sleep(Duration::from_millis(1200));
        let (code, body) = http_get(metrics_port(&self.ready), "/metrics");
        assert_eq!(code, 200, "/metrics: {body}");
        body
    }

    /// SIGTERM, wait (must exit 0 within 5 s), and return every recorded event.
    pub fn stop(mut self) -> (Vec<Value>, Vec<String>) {
        // Let the last events travel through the rings and the pipeline.
        std::thread::sleep(Duration::from_millis(500));
        nix_kill(self.child.id(), 15);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                panic!("aurora record did not stop within 5 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.stderr_lines.recv_timeout(Duration::from_millis(500)) {
            self.stderr.push(l);
        }
        assert!(
            status.success(),
            "aurora record exit status {status}:\n{}",
            self.stderr.join("\n")
        );
        let text = std::fs::read_to_string(&self.out).unwrap();
        let events = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("record writes JSON lines"))
            .collect();
        (events, std::mem::take(&mut self.stderr))
    }
}

pub fn nix_kill(pid: u32, sig: i32) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

pub fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("field {k} missing or not a string in {v}"))
}

pub fn n(v: &Value, k: &str) -> i64 {
    v.get(k)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("field {k} missing or not a number in {v}"))
}

pub fn of_kind(events: &[Value], id: i64) -> impl Iterator<Item = &Value> {
    events
        .iter()
        .filter(move |e| e["EventID"].as_i64() == Some(id))
}

/// A free TCP port on loopback (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The metrics port a ready file names (the agent ran with `--metrics-listen`).
pub fn metrics_port(ready: &Value) -> u16 {
    ready["metrics"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the ready file names no metrics address: {ready}"))
}

/// GET `path` from 127.0.0.1:`port`: (status code, body). A refused connection is status 0.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// The value of one series (`name{labels}` exactly as exposed) in a Prometheus exposition;
/// 0 when absent.
pub fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

/// The sum of every series of one metric family (`name` or `name{...}` lines).
pub fn family_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Run `cmd` (an `aurora replay`) with `--metrics-file`; returns its output and the counters
/// it wrote at exit.
pub fn with_metrics(cmd: &mut Command) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("replay.prom");
    let out = cmd.arg("--metrics-file").arg(&file).output().unwrap();
    let metrics = std::fs::read_to_string(&file).unwrap_or_default();
    (out, metrics)
}

/// Sum of `aurora_ring_kernel_lost_total` over the rings.
pub fn kernel_lost(metrics: &str) -> u64 {
    ["exec", "exit", "file", "net"]
        .iter()
        .map(|r| {
            sample(
                metrics,
                &format!("aurora_ring_kernel_lost_total{{ring=\"{r}\"}}"),
            )
        })
        .sum()
}

/// A child process killed when dropped (a failing test leaves no agent behind).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child that is killed and reaped if the test ends (an assertion fails) before it was waited
/// for; `wait_with_output` hands its output over as `Child`'s does.
pub struct Guarded(Option<Child>);

impl Guarded {
    pub fn new(child: Child) -> Guarded {
        Guarded(Some(child))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("not waited for yet")
    }

    pub fn wait_with_output(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("not waited for yet")
            .wait_with_output()
            .unwrap()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run a command that must succeed (its stderr is the failure message); returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The live agent writing JSON alerts to a logfile in `dir` (kept across restarts with the
/// same `dir`), started with `args` and waited for through its ready file.
pub struct Agent {
    child: Child,
    pub log: PathBuf,
    pub ready: Value,
    stderr_lines: mpsc::Receiver<String>,
}

impl Agent {
    pub fn start(dir: &Path, args: &[std::ffi::OsString]) -> Agent {
        Agent::start_in(dir, None, args)
    }

    /// `start`, in the network namespace `netns` (`ip netns exec`) when given.
    pub fn start_in(dir: &Path, netns: Option<&str>, args: &[std::ffi::OsString]) -> Agent {
        let log = dir.join("alerts.log");
        let ready_path = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready_path);
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(aurora());
                c
            }
            None => Command::new(aurora()),
        };
        let mut child = cmd
            .args(["--no-stdout", "--json", "--throttle-rate", "0", "--logfile"])
            .arg(&log)
            .arg("--ready-file")
            .arg(&ready_path)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn aurora");
        let rx = stderr_lines(&mut child);
        let ready = wait_ready(&mut child, &ready_path, &rx);
        Agent {
            child,
            log,
            ready,
            stderr_lines: rx,
        }
    }

    /// Every alert written so far.
    pub fn alerts(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("alerts are JSON lines"))
            .collect()
    }

    /// Wait (up to `secs`) until `n` alerts satisfy `pred`; returns those seen.
    pub fn wait_for(&self, secs: u64, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let hits: Vec<Value> = self.alerts().into_iter().filter(|a| pred(a)).collect();
            if hits.len() >= n || Instant::now() > deadline {
                return hits;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait (up to `secs`) until every alert written so far satisfies `done` as a whole;
    /// returns them.
    pub fn wait_until(&self, secs: u64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let all = self.alerts();
            if done(&all) || Instant::now() > deadline {
                return all;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn metrics(&self) -> String {
        let (code, body) = http_get(metrics_port(&self.ready), "/metrics");
        assert_eq!(code, 200, "/metrics: {body}");
        body
    }

    /// SIGKILL, as a crash would; waits for it to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }

    /// SIGTERM; must exit 0 within 5 s. Returns its stderr.
    pub fn stop(mut self) -> Vec<String> {
        nix_kill(self.child.id(), 15);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                panic!("aurora did not stop within 5 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = Vec::new();
        while let Ok(l) = self.stderr_lines.recv_timeout(Duration::from_millis(300)) {
            err.push(l);
        }
        assert!(
            status.success(),
            "aurora exit {status}:\n{}",
            err.join("\n")
        );
        err
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
