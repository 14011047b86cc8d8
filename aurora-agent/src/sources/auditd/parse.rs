//! One audit.log line → [`AuditRecord`]: the header (`node=`, `type=`, `msg=audit(T:SERIAL):`),
//! the key=value fields with auditd's encodings undone (hex-encoded untrusted strings,
//! `msg='…'` sub-fields), and the ENRICHED part after byte 0x1D (upper-case names next to the
//! lower-case numeric ones, never over them). Our own parser: `linux-audit-parser` is LGPL.
use super::syscalls;

/// Separates the raw fields from the ENRICHED interpretations (`log_format = ENRICHED`).
const ENRICHED_SEP: char = '\u{1d}';

/// Fields auditd hex-encodes when the value holds a space, quote or control byte (auparse's
/// "escaped" fields). EXECVE arguments are handled by the assembler.
const ENCODED: &[&str] = &[
    "name",
    "path",
    "comm",
    "exe",
    "cwd",
    "proctitle",
    "data",
    "cmd",
    "acct",
    "key",
    "new",
    "old",
    "dir",
    "file",
    "ocomm",
    "root_dir",
    "sw",
    "grp",
    "new_group",
    "watch",
];

/// The event a record belongs to: records with the same id make one audit event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventId {
    pub node: Option<String>,
    pub sec: u64,
    pub msec: u32,
    pub serial: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: EventId,
    pub rtype: String,
    /// Decoded fields in line order (EXECVE `aN` / `aN[i]` still raw: see the assembler).
    pub fields: Vec<(String, String)>,
}

impl AuditRecord {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no type= field")]
    NoType,
    #[error("no msg=audit(SECONDS.MILLIS:SERIAL) header")]
    NoHeader,
    #[error("bad event id in msg=audit({0})")]
    BadId(String),
}

/// A value as written: quoted values are literal, bare ones may be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw<'a> {
    Quoted(&'a str),
    Single(&'a str),
    Bare(&'a str),
}

/// Split `k=v k="v w" k='a=b c=d'` into pairs. Text without `=` is skipped.
pub fn tokens(s: &str) -> Vec<(&str, Raw<'_>)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key_start = rest[..eq].rfind(' ').map(|i| i + 1).unwrap_or(0);
        let key = &rest[key_start..eq];
        let after = &rest[eq + 1..];
        let (val, next) = match after.as_bytes().first() {
            Some(b'"') => split_quoted(&after[1..], '"', Raw::Quoted),
            Some(b'\'') => split_quoted(&after[1..], '\'', Raw::Single),
            _ => {
                let end = after.find(' ').unwrap_or(after.len());
                (Raw::Bare(&after[..end]), &after[end..])
            }
        };
        if !key.is_empty() {
            out.push((key, val));
        }
        rest = next.trim_start();
    }
    out
}

fn split_quoted<'a>(s: &'a str, q: char, wrap: fn(&'a str) -> Raw<'a>) -> (Raw<'a>, &'a str) {
    match s.find(q) {
        Some(end) => (wrap(&s[..end]), &s[end + 1..]),
        None => (wrap(s), ""),
    }
}

/// Hex text → bytes, if it is hex of whole bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A bare value of an encoded field: hex-decoded when it is hex (`(null)`, `(none)`, `?` stay).
fn decode_bare(key: &str, v: &str) -> String {
    if !ENCODED.contains(&key) {
        return v.to_owned();
    }
    match unhex(v) {
        // proctitle is argv NUL-separated; several keys are joined by 0x01.
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .trim_end_matches('\0')
            .chars()
            .map(|c| match c {
                '\0' => ' ',
                '\u{1}' => ',',
                c => c,
            })
            .collect(),
        None => v.to_owned(),
    }
}

fn header(line: &str) -> Result<(Option<String>, String, EventId, &str), ParseError> {
    let mut rest = line.trim_start();
    let mut node = None;
    if let Some(r) = rest.strip_prefix("node=") {
        let end = r.find(' ').unwrap_or(r.len());
        node = Some(r[..end].to_owned());
        rest = r[end..].trim_start();
    }
    let r = rest.strip_prefix("type=").ok_or(ParseError::NoType)?;
    let end = r.find(' ').unwrap_or(r.len());
    let rtype = r[..end].to_owned();
    let r = r[end..].trim_start();
    let r = r.strip_prefix("msg=audit(").ok_or(ParseError::NoHeader)?;
    let close = r.find("):").ok_or(ParseError::NoHeader)?;
    let id_text = &r[..close];
    let bad = || ParseError::BadId(id_text.to_owned());
    let (time, serial) = id_text.split_once(':').ok_or_else(bad)?;
    let (sec, msec) = time.split_once('.').ok_or_else(bad)?;
    let id = EventId {
        node: node.clone(),
        sec: sec.parse().map_err(|_| bad())?,
        msec: msec.parse().map_err(|_| bad())?,
        serial: serial.parse().map_err(|_| bad())?,
    };
    Ok((node, rtype, id, &r[close + 2..]))
}

/// Parse one audit.log line.
pub fn parse_line(line: &str) -> Result<AuditRecord, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (raw, enriched) = match line.split_once(ENRICHED_SEP) {
        Some((r, e)) => (r, Some(e)),
        None => (line, None),
    };
    let (_node, rtype, id, body) = header(raw)?;
    let mut fields: Vec<(String, String)> = Vec::new();
    let execve = rtype == "EXECVE";
    for (k, v) in tokens(body) {
        match v {
            Raw::Single(inner) if k == "msg" => {
                for (ik, iv) in tokens(inner) {
                    let val = match iv {
                        Raw::Bare(b) => decode_bare(ik, b),
                        Raw::Quoted(q) | Raw::Single(q) => q.to_owned(),
                    };
                    push_unique(&mut fields, ik, val);
                }
            }
            // EXECVE arguments keep their encoding marker for the assembler: quoted
            // arguments are prefixed with '"'.
            Raw::Quoted(q) if execve && is_arg_key(k) => fields.push((k.into(), format!("\"{q}"))),
            Raw::Quoted(q) | Raw::Single(q) => fields.push((k.into(), q.to_owned())),
            Raw::Bare(b) if execve => fields.push((k.into(), b.to_owned())),
            Raw::Bare(b) => fields.push((k.into(), decode_bare(k, b))),
        }
    }
    match enriched {
        Some(e) => {
            for (k, v) in tokens(e) {
                let val = match v {
                    Raw::Bare(b) => b,
                    Raw::Quoted(q) | Raw::Single(q) => q,
                };
                push_unique(&mut fields, k, val.to_owned());
            }
        }
        None => add_raw_interpretations(&mut fields),
    }
    Ok(AuditRecord { id, rtype, fields })
}

/// A key already present (the lower-case numeric one, or an earlier record field) wins.
fn push_unique(fields: &mut Vec<(String, String)>, k: &str, v: String) {
    if !fields.iter().any(|(have, _)| have == k) {
        fields.push((k.to_owned(), v));
    }
}

/// `a0`, `a12`, `a1_len`, `a1[3]`: EXECVE argument keys.
pub fn is_arg_key(k: &str) -> bool {
    k.strip_prefix('a')
        .and_then(|r| r.bytes().next())
        .is_some_and(|b| b.is_ascii_digit())
}

/// RAW logs: what ENRICHED would have added for the syscall, so rules on `SYSCALL: execve` work.
fn add_raw_interpretations(fields: &mut Vec<(String, String)>) {
    let nr = fields
        .iter()
        .find(|(k, _)| k == "syscall")
        .and_then(|(_, v)| v.parse::<u32>().ok());
    let x86_64 = fields
        .iter()
        .find(|(k, _)| k == "arch")
        .is_none_or(|(_, v)| v.eq_ignore_ascii_case("c000003e"));
    if let (Some(nr), true) = (nr, x86_64) {
        if let Some(name) = syscalls::name(nr) {
            push_unique(fields, "SYSCALL", name.to_owned());
            push_unique(fields, "ARCH", "x86_64".to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSCALL_ENRICHED: &str = "type=SYSCALL msg=audit(1764528000.123:4242): arch=c000003e syscall=59 success=yes exit=0 a0=55d5c0a1b2c0 a1=55d5c0a1b300 a2=55d5c0a1b320 a3=7ffd items=2 ppid=100 pid=200 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=4294967295 comm=\"id\" exe=\"/usr/bin/id\" subj=unconfined key=\"aurora-exec\"\u{1d}ARCH=x86_64 SYSCALL=execve AUID=\"unset\" UID=\"root\" GID=\"root\"";

    #[test]
    fn header_fields_and_enriched_part() {
        let r = parse_line(SYSCALL_ENRICHED).unwrap();
        assert_eq!(r.rtype, "SYSCALL");
        assert_eq!(
            r.id,
            EventId {
                node: None,
                sec: 1764528000,
                msec: 123,
                serial: 4242
            }
        );
        assert_eq!(r.get("syscall"), Some("59"));
        assert_eq!(r.get("SYSCALL"), Some("execve"));
        assert_eq!(
            r.get("a0"),
            Some("55d5c0a1b2c0"),
            "SYSCALL a0 stays raw hex"
        );
        assert_eq!(r.get("comm"), Some("id"));
        assert_eq!(r.get("key"), Some("aurora-exec"));
        assert_eq!(
            r.get("uid"),
            Some("0"),
            "the numeric uid is not overwritten"
        );
        assert_eq!(r.get("UID"), Some("root"));
    }

    #[test]
    fn raw_format_gets_the_syscall_name() {
        let raw = SYSCALL_ENRICHED.split('\u{1d}').next().unwrap();
        let r = parse_line(raw).unwrap();
        assert_eq!(r.get("SYSCALL"), Some("execve"));
        assert_eq!(r.get("ARCH"), Some("x86_64"));
    }

    #[test]
    fn node_msg_expansion_and_hex() {
        let l = "node=web1 type=SERVICE_STOP msg=audit(1764528001.5:77): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=unconfined msg='unit=auditd comm=\"systemd\" exe=\"/usr/lib/systemd/systemd\" hostname=? addr=? terminal=? res=success'";
        let r = parse_line(l).unwrap();
        assert_eq!(r.id.node.as_deref(), Some("web1"));
        assert_eq!(r.get("unit"), Some("auditd"));
        assert_eq!(r.get("exe"), Some("/usr/lib/systemd/systemd"));
        assert_eq!(r.get("res"), Some("success"));
        let p = parse_line("type=PROCTITLE msg=audit(1.2:3): proctitle=6C73002D6C61002F746D70")
            .unwrap();
        assert_eq!(p.get("proctitle"), Some("ls -la /tmp"));
        let n = parse_line(
            "type=PATH msg=audit(1.2:3): item=0 name=2F746D702F6120622E7368 nametype=CREATE",
        )
        .unwrap();
        assert_eq!(n.get("name"), Some("/tmp/a b.sh"));
        let k = parse_line("type=SYSCALL msg=audit(1.2:3): syscall=2 key=6101620163").unwrap();
        assert_eq!(k.get("key"), Some("a,b,c"));
        let z =
            parse_line("type=PATH msg=audit(1.2:3): item=1 name=(null) nametype=UNKNOWN").unwrap();
        assert_eq!(z.get("name"), Some("(null)"));
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for l in [
            "",
            "garbage",
            "type=X",
            "type=X msg=audit(",
            "type=X msg=audit(1:2):",
            "type=X msg=audit(a.b:c): x=1",
            "node= type=X msg=audit(1.1:1)",
            "type=X msg=audit(1.1:1): =\"\u{1d}'",
        ] {
            let _ = parse_line(l);
        }
        assert_eq!(parse_line("garbage"), Err(ParseError::NoType));
        assert!(matches!(
            parse_line("type=X msg=audit(a.b:c): x=1"),
            Err(ParseError::BadId(_))
        ));
        let r = parse_line("type=X msg=audit(1.1:1): k=\"unterminated").unwrap();
        assert_eq!(r.get("k"), Some("unterminated"));
    }
}
