//! System-log messages → events: syslog lines as files hold them (RFC 5424, RFC 3164 with or
//! without `<PRI>`, and rsyslog's RFC 3339 file format that Debian 12 writes) and journald's
//! JSON export (`journalctl -o json`). sudo's `TTY=… ; PWD=… ; USER=… ; COMMAND=…` is split
//! into fields (rules match `USER: '#-1'`).
use std::borrow::Cow;

use chrono::{DateTime, Datelike, Local, NaiveDateTime, TimeZone, Utc};
use serde_json::Value as Json;

use crate::event::time::utc_time;
use crate::event::{names as f, Event, EventKind, Value};

pub const IDENTIFIER: &str = f::SYSLOG_IDENTIFIER;
pub const FACILITY: &str = "Facility";
pub const SEVERITY: &str = "Severity";
pub const HOSTNAME: &str = f::HOSTNAME;
pub const MESSAGE: &str = f::MESSAGE;

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// What a line had: its parts before they become fields.
#[derive(Default)]
struct Parts<'a> {
    time: Option<DateTime<Utc>>,
    facility: Option<&'static str>,
    severity: Option<&'static str>,
    host: Option<&'a str>,
    ident: Option<&'a str>,
    pid: Option<i64>,
    message: Cow<'a, str>,
}

/// Parse one syslog-file line. `default_facility` names the facility of files whose lines
/// carry no `<PRI>` (auth.log holds auth/authpriv messages). Never fails: a line that fits no
/// format is a message of its own.
pub fn parse_line(line: &str, default_facility: Option<&'static str>) -> Event {
    let line = line.trim_end_matches(['\r', '\n']);
    let (pri, rest) = pri(line);
    let mut p = match rest.strip_prefix("1 ") {
        Some(r) if pri.is_some() => rfc5424(r),
        _ => rfc3164(rest),
    };
    match pri {
        Some(v) => {
            p.facility = FACILITIES.get((v / 8) as usize).copied();
            p.severity = Some(SEVERITIES[(v % 8) as usize]);
        }
        None => p.facility = default_facility,
    }
    build(p)
}

fn pri(line: &str) -> (Option<u32>, &str) {
    let Some(r) = line.strip_prefix('<') else {
        return (None, line);
    };
    match r.find('>') {
        Some(end) if (1..=3).contains(&end) => match r[..end].parse::<u32>() {
            Ok(v) if v < 192 => (Some(v), &r[end + 1..]),
            _ => (None, line),
        },
        _ => (None, line),
    }
}

fn nil(s: &str) -> Option<&str> {
    (s != "-" && !s.is_empty()).then_some(s)
}

/// `TIMESTAMP HOST APP PROCID MSGID [SD] MSG` after `<PRI>1 `.
fn rfc5424(r: &str) -> Parts<'_> {
    let mut it = r.splitn(6, ' ');
    let (ts, host, app, pid, _msgid) = (
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    );
    let rest = it.next().unwrap_or("");
    let msg = skip_structured_data(rest);
    Parts {
        time: DateTime::parse_from_rfc3339(ts)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        host: nil(host),
        ident: nil(app),
        pid: nil(pid).and_then(|p| p.parse().ok()),
        message: Cow::Borrowed(msg.trim_start_matches('\u{feff}').trim_start()),
        ..Default::default()
    }
}

/// `-` or `[id k="v"]…`, then the message.
fn skip_structured_data(s: &str) -> &str {
    if let Some(r) = s.strip_prefix("- ") {
        return r;
    }
    if s == "-" {
        return "";
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'[' {
        let mut in_quote = false;
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b'"' => in_quote = !in_quote,
                b']' if !in_quote => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    s.get(i.min(s.len())..).unwrap_or("").trim_start()
}

/// `Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, or the same with an RFC 3339 timestamp.
fn rfc3164(r: &str) -> Parts<'_> {
    let (time, rest) = match bsd_time(r) {
        Some(t) => (Some(t), &r[15..]),
        None => match r.split_once(' ') {
            Some((ts, rest)) => match DateTime::parse_from_rfc3339(ts) {
                Ok(t) => (Some(t.with_timezone(&Utc)), rest),
                Err(_) => (None, r),
            },
            None => (None, r),
        },
    };
    if time.is_none() {
        return Parts {
            message: Cow::Borrowed(r),
            ..Default::default()
        };
    }
    let rest = rest.trim_start();
    let (host, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (ident, pid, message) = tag(rest);
    Parts {
        time,
        host: nil(host),
        ident,
        pid,
        message: Cow::Borrowed(message),
        ..Default::default()
    }
}

/// `TAG[PID]: MSG` or `TAG: MSG`; anything else is all message.
fn tag(s: &str) -> (Option<&str>, Option<i64>, &str) {
    let end = s.find([':', '[', ' ']).unwrap_or(s.len());
    let name = &s[..end];
    let rest = &s[end..];
    if name.is_empty() {
        return (None, None, s);
    }
    if let Some(r) = rest.strip_prefix('[') {
        if let Some((pid, after)) = r.split_once(']') {
            if let Some(msg) = after.strip_prefix(':') {
                return (Some(name), pid.parse().ok(), msg.trim_start());
            }
        }
    } else if let Some(msg) = rest.strip_prefix(':') {
        return (Some(name), None, msg.trim_start());
    }
    (None, None, s)
}

/// `Nov 30 18:38:51` (the year is not in the line: this year, or last year if that would be
/// in the future; local time, as syslogd wrote it).
fn bsd_time(s: &str) -> Option<DateTime<Utc>> {
    let head = s.get(..15)?;
    let now = Local::now();
    let parse = |year: i32| {
        NaiveDateTime::parse_from_str(&format!("{year} {head}"), "%Y %b %e %H:%M:%S").ok()
    };
    let t = parse(now.year())?;
    let local = Local.from_local_datetime(&t).earliest()?;
    if local > now + chrono::Duration::days(1) {
        let t = parse(now.year() - 1)?;
        return Local
            .from_local_datetime(&t)
            .earliest()
            .map(|l| l.with_timezone(&Utc));
    }
    Some(local.with_timezone(&Utc))
}

fn build(p: Parts<'_>) -> Event {
    let mut ev = Event::new(EventKind::SystemLog);
    ev.push_str(f::UTC_TIME, utc_time(p.time.unwrap_or_else(Utc::now)));
    if let Some(h) = p.host {
        ev.push_str(HOSTNAME, h);
    }
    if let Some(i) = p.ident {
        ev.push_str(IDENTIFIER, i);
    }
    if let Some(pid) = p.pid {
        ev.push_int(f::PROCESS_ID, pid);
    }
    if let Some(fac) = p.facility {
        ev.push_str(FACILITY, fac);
    }
    if let Some(sev) = p.severity {
        ev.push_str(SEVERITY, sev);
    }
    if p.ident.is_some_and(|i| i.eq_ignore_ascii_case("sudo")) {
        sudo_fields(&p.message, &mut ev);
    }
    ev.push_str(MESSAGE, p.message.into_owned());
    ev
}

/// `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`
fn sudo_fields(msg: &str, ev: &mut Event) {
    let Some((user, rest)) = msg.split_once(" : ") else {
        return;
    };
    if !rest.contains("COMMAND=") && !rest.contains("USER=") {
        return;
    }
    ev.push_str("SUDO_USER", user.trim());
    for part in rest.split(" ; ") {
        if let Some((k, v)) = part.split_once('=') {
            let k = k.trim();
            if ["TTY", "PWD", "USER", "GROUP", "COMMAND"].contains(&k) {
                ev.push(Cow::Owned(k.to_owned()), Value::Str(v.trim().into()));
            }
        }
    }
}

/// One `journalctl -o json` line. Errors name what is wrong.
pub fn parse_journal_json(line: &str) -> Result<Option<Event>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let obj = match serde_json::from_str::<Json>(line) {
        Ok(Json::Object(m)) => m,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    let text = |k: &str| -> Option<String> {
        match obj.get(k)? {
            Json::String(s) => Some(s.clone()),
            // journald exports non-UTF-8 or binary fields as arrays of bytes.
            Json::Array(a) => {
                let bytes: Vec<u8> = a
                    .iter()
                    .filter_map(|b| b.as_u64())
                    .map(|b| b as u8)
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let Some(message) = text("MESSAGE") else {
        return Err("no MESSAGE field".into());
    };
    let number = |k: &str| text(k).and_then(|v| v.parse::<u64>().ok());
    let time =
        number("__REALTIME_TIMESTAMP").and_then(|us| DateTime::from_timestamp_micros(us as i64));
    let host = text("_HOSTNAME");
    let ident = text("SYSLOG_IDENTIFIER").or_else(|| text("_COMM"));
    let p = Parts {
        time,
        facility: number("SYSLOG_FACILITY").and_then(|n| FACILITIES.get(n as usize).copied()),
        severity: number("PRIORITY").and_then(|n| SEVERITIES.get(n as usize).copied()),
        host: host.as_deref(),
        ident: ident.as_deref(),
        pid: number("_PID")
            .or_else(|| number("SYSLOG_PID"))
            .map(|p| p as i64),
        message: Cow::Owned(message),
    };
    Ok(Some(build(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_with_structured_data() {
        let e = parse_line(
            "<38>1 2026-11-30T18:00:00.123456+00:00 web1 sshd 4242 - [meta x=\"a]b\"] error in libcrypto",
            None,
        );
        assert_eq!(e.get_str(IDENTIFIER), Some("sshd"));
        assert_eq!(e.get_str(FACILITY), Some("auth"));
        assert_eq!(e.get_str(SEVERITY), Some("info"));
        assert_eq!(e.get_int(f::PROCESS_ID), Some(4242));
        assert_eq!(e.get_str(HOSTNAME), Some("web1"));
        assert_eq!(e.get_str(MESSAGE), Some("error in libcrypto"));
        assert_eq!(e.get_str(f::UTC_TIME), Some("2026-11-30 18:00:00.123"));
    }

    #[test]
    fn rfc3164_and_debian_file_format() {
        let e = parse_line(
            "<86>Nov  3 04:05:06 host sudo: pam_unix(sudo:session): x",
            None,
        );
        assert_eq!(e.get_str(IDENTIFIER), Some("sudo"));
        assert_eq!(e.get_str(FACILITY), Some("authpriv"));
        assert_eq!(e.get_str(MESSAGE), Some("pam_unix(sudo:session): x"));
        let d = parse_line(
            "2026-11-30T18:38:51.123456+00:00 host CRON[77]: (root) REPLACE (root)",
            Some("auth"),
        );
        assert_eq!(d.get_str(IDENTIFIER), Some("CRON"));
        assert_eq!(d.get_int(f::PROCESS_ID), Some(77));
        assert_eq!(d.get_str(FACILITY), Some("auth"));
        assert_eq!(d.get_str(MESSAGE), Some("(root) REPLACE (root)"));
        let plain = parse_line("no header at all: x", None);
        assert_eq!(plain.get_str(MESSAGE), Some("no header at all: x"));
        assert!(!plain.has(IDENTIFIER));
    }

    #[test]
    fn sudo_fields_are_split() {
        let e = parse_line(
            "Nov 30 18:00:00 h sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=#-1 ; COMMAND=/usr/bin/id",
            None,
        );
        assert_eq!(e.get_str("USER"), Some("#-1"));
        assert_eq!(e.get_str("TTY"), Some("pts/0"));
        assert_eq!(e.get_str("COMMAND"), Some("/usr/bin/id"));
        assert_eq!(e.get_str("SUDO_USER"), Some("alice"));
    }

    #[test]
    fn journal_json() {
        let e = parse_journal_json(r#"{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1764528000000000","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"sshd","_PID":"12","SYSLOG_FACILITY":"4","PRIORITY":"3","MESSAGE":"Corrupted MAC on input"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(e.get_str(IDENTIFIER), Some("sshd"));
        assert_eq!(e.get_str(FACILITY), Some("auth"));
        assert_eq!(e.get_str(SEVERITY), Some("err"));
        assert_eq!(e.get_int(f::PROCESS_ID), Some(12));
        let b = parse_journal_json(r#"{"MESSAGE":[104,105]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(b.get_str(MESSAGE), Some("hi"));
        assert!(parse_journal_json("{}").unwrap_err().contains("MESSAGE"));
        assert!(parse_journal_json("[").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn hostile_lines_never_panic() {
        for l in [
            "",
            "<",
            "<999>x",
            "<1>",
            "<13>1",
            "<13>1 ",
            "<13>1 - - - - - [",
            "<13>1 - - - - - [a\\",
            "Nov 30",
            "Nov 30 99:99:99 h x",
            "x[",
            "x[1",
            "x[1]",
            "é[1]: ü",
            "<13>Nov 30 18:00:00",
        ] {
            let _ = parse_line(l, None);
        }
    }
}
