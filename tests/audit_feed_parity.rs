//! The auditd records Aurora makes from its sensors' events against auditd's own for the
//! same exec (a captured audit.log event run through the auditd source), and the duplicate
//! check between the two.
use aurora_agent::detect::audit_feed::analyze::shape;
use aurora_agent::detect::audit_feed::{AuditFeed, Feed};
use aurora_agent::event::audit::AUDIT_SOURCE;
use aurora_agent::event::{names as f, Event, EventKind, Value};
use aurora_agent::sources::auditd::{assemble::Assembler, parse::parse_line};

/// One exec as auditd logged it (tests/fixtures/auditd_capture.log).
const AUDITD_EXEC: &[&str] = &[
    r#"type=SYSCALL msg=audit(1796064586.125:1625): arch=c000003e syscall=59 success=yes exit=0 a0=556711cd94d0 a1=556711cd8950 a2=556711cd57d0 a3=e74b7f861403d421 items=2 ppid=15445 pid=15463 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="auditctl" exe="/usr/sbin/auditctl" key=(null)ARCH=x86_64 SYSCALL=execve AUID="unset" UID="root" GID="root" EUID="root" SUID="root" FSUID="root" EGID="root" SGID="root" FSGID="root""#,
    r#"type=EXECVE msg=audit(1796064586.125:1625): argc=7 a0="auditctl" a1="-w" a2="/tmp/aurora-fixture" a3="-p" a4="wa" a5="-k" a6="aurora-fixture""#,
    r#"type=CWD msg=audit(1796064586.125:1625): cwd="/work/main""#,
    r#"type=PATH msg=audit(1796064586.125:1625): item=0 name="/usr/sbin/auditctl" inode=9125893 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0OUID="root" OGID="root""#,
    r#"type=PATH msg=audit(1796064586.125:1625): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=325843 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0OUID="root" OGID="root""#,
];

fn auditd_events() -> Vec<Event> {
    let mut asm = Assembler::default();
    let mut out = Vec::new();
    for line in AUDITD_EXEC {
        // auditd's enriched format puts 0x1d before the interpreted fields.
        let line = line
            .replace("ARCH=", "\x1dARCH=")
            .replace("OUID=", "\x1dOUID=");
        asm.push(parse_line(&line).expect("parses"), None, &mut out);
    }
    asm.finish(&mut out);
    out
}

/// The same exec as the exec sensor reports it.
fn process_creation() -> Event {
    let mut ev = Event::new(EventKind::ProcessCreation);
    ev.push_str(f::UTC_TIME, "2026-12-01 10:09:46.125");
    ev.push_int(f::PROCESS_ID, 15463);
    ev.push_str(f::IMAGE, "/usr/sbin/auditctl");
    ev.push_str(
        f::COMMAND_LINE,
        "auditctl -w /tmp/aurora-fixture -p wa -k aurora-fixture",
    );
    ev.push_str(f::USER, "root");
    ev.push_int(f::LOGON_ID, 4294967295);
    ev.push_int(f::PARENT_PROCESS_ID, 15445);
    ev
}

fn all_shapes() -> AuditFeed {
    let feed = Feed {
        shapes: 0xff,
        watches: vec![],
    };
    AuditFeed::new([&feed].into_iter(), true).expect("a feed")
}

fn of_type<'e>(evs: &'e [Event], rtype: &str) -> &'e Event {
    evs.iter()
        .find(|e| e.get_str("type") == Some(rtype))
        .unwrap_or_else(|| panic!("no {rtype} record"))
}

#[test]
fn made_records_carry_auditds_values_for_every_field_they_have() {
    let theirs = auditd_events();
    let mut ours = Vec::new();
    all_shapes().make(&process_creation(), &mut ours);
    assert_eq!(ours.len(), 3, "EXECVE, SYSCALL and PATH of the exec");
    for rtype in ["EXECVE", "SYSCALL", "PATH"] {
        let (mine, auditd) = (of_type(&ours, rtype), of_type(&theirs, rtype));
        for (k, v) in &mine.fields {
            if [f::UTC_TIME, AUDIT_SOURCE].contains(&k.as_ref()) {
                continue;
            }
            let Value::Str(v) = v else {
                panic!("{rtype} {k}: not text")
            };
            assert_eq!(
                auditd.get_str(k),
                Some(v.as_str()),
                "{rtype}: field {k} differs from auditd's"
            );
        }
        // The argv auditd decoded is all there.
        if rtype == "EXECVE" {
            for i in 0..7 {
                assert!(mine.has(&format!("a{i}")), "EXECVE lacks a{i}");
            }
        }
    }
}

#[test]
fn a_record_made_and_logged_is_evaluated_once() {
    let mut feed = all_shapes();
    let mut ours = Vec::new();
    feed.make(&process_creation(), &mut ours);
    let dedup = feed.dedup.as_mut().expect("auditd too");
    let t = 1_000_000_000;
    for m in &ours {
        assert!(!dedup.duplicate(m, true, t), "first seen");
    }
    for theirs in auditd_events() {
        let rtype = theirs.get_str("type").unwrap_or_default().to_owned();
        let dup = dedup.duplicate(&theirs, false, t + 400_000_000);
        let expected = ["EXECVE", "SYSCALL", "PATH"].contains(&rtype.as_str());
        assert_eq!(dup, expected, "auditd's {rtype}");
    }
    // The same argv from another process is its own record.
    let mut other = process_creation();
    other.set(f::PROCESS_ID, Value::Int(99));
    let mut again = Vec::new();
    feed.make(&other, &mut again);
    let dedup = feed.dedup.as_mut().expect("auditd too");
    assert!(!dedup.duplicate(&again[0], true, t));
}

#[test]
fn only_the_shapes_rules_need_are_made_and_creations_make_path_create() {
    let feed = Feed {
        shapes: shape::PATH_CREATE,
        watches: vec![],
    };
    let mut f = AuditFeed::new([&feed].into_iter(), false).expect("a feed");
    let mut out = Vec::new();
    f.make(&process_creation(), &mut out);
    assert!(out.is_empty(), "no exec shape asked for");
    let mut created = Event::new(EventKind::FileEvent);
    created.push_int(f::PROCESS_ID, 7);
    created.push_str(f::IMAGE, "/usr/bin/touch");
    created.push_str(f::TARGET_FILENAME, "/etc/systemd/system/x.service");
    created.push_str(f::FILE_ACTION, "created");
    f.make(&created, &mut out);
    assert_eq!(
        (
            out[0].get_str("name"),
            out[0].get_str("nametype"),
            out[0].get_str("comm")
        ),
        (
            Some("/etc/systemd/system/x.service"),
            Some("CREATE"),
            Some("touch")
        )
    );
    assert!(AuditFeed::new(std::iter::empty(), true).is_none());
}
