//! Audit records → events. Records sharing `msg=audit(T:SERIAL)` (and `node=`) form one audit
//! event; audit.log has no EOE records, so an event is closed once records of a later event
//! have been seen and either a short delay passed (live) or enough later events started, or on
//! idle / end of input. Each record then becomes one flat event with its event's SYSCALL
//! fields merged in (the record's own fields win, `type` stays the record's; an EXECVE
//! record does not take the syscall's raw a0..a3 next to its argv): the shape
//! SigmaHQ's auditd rules are written against. EXECVE records of one event are joined into
//! one argv (`aN_len` / `aN[i]` chunks included).
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::parse::{is_arg_key, unhex, AuditRecord, EventId};
use crate::event::time::utc_time;
use crate::event::{names as f, Event, EventKind, Value};

/// An event stays open this long after its last record once a later event was seen (live).
pub const CLOSE_DELAY: Duration = Duration::from_millis(500);
/// ... or until this many later events have started (replay, and bursts).
const MAX_LATER: u64 = 32;
/// Open events kept at most; the oldest is closed first.
const MAX_OPEN: usize = 1024;

struct Open {
    id: EventId,
    records: Vec<AuditRecord>,
    seq: u64,
    touched: Option<Instant>,
}

#[derive(Default)]
pub struct Assembler {
    open: Vec<Open>,
    started: u64,
}

impl Assembler {
    /// Add a record; returns the events this closed. `now` is None in replay (closing by
    /// count only keeps replay deterministic).
    pub fn push(&mut self, rec: AuditRecord, now: Option<Instant>, out: &mut Vec<Event>) {
        match self.open.iter_mut().find(|o| o.id == rec.id) {
            Some(o) => {
                o.records.push(rec);
                o.touched = now;
            }
            None => {
                self.started += 1;
                self.open.push(Open {
                    id: rec.id.clone(),
                    records: vec![rec],
                    seq: self.started,
                    touched: now,
                });
            }
        }
        let started = self.started;
        self.close_where(out, |o| {
            o.seq < started
                && (started - o.seq >= MAX_LATER
                    || matches!((o.touched, now), (Some(t), Some(n)) if n.duration_since(t) >= CLOSE_DELAY))
        });
        while self.open.len() > MAX_OPEN {
            let o = self.open.remove(0);
            emit(o.records, out);
        }
    }

    /// Close events untouched for `CLOSE_DELAY` (the source calls this when input is idle).
    pub fn close_idle(&mut self, now: Instant, out: &mut Vec<Event>) {
        self.close_where(out, |o| {
            o.touched
                .is_none_or(|t| now.duration_since(t) >= CLOSE_DELAY)
        });
    }

    /// Close everything (end of input, shutdown).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.close_where(out, |_| true);
    }

    pub fn open_events(&self) -> usize {
        self.open.len()
    }

    fn close_where(&mut self, out: &mut Vec<Event>, cond: impl Fn(&Open) -> bool) {
        let mut i = 0;
        while i < self.open.len() {
            if cond(&self.open[i]) {
                let o = self.open.remove(i);
                emit(o.records, out);
            } else {
                i += 1;
            }
        }
    }
}

/// One event per record (EXECVE records joined), SYSCALL fields merged in.
fn emit(mut records: Vec<AuditRecord>, out: &mut Vec<Event>) {
    join_execve(&mut records);
    let syscall = records
        .iter()
        .position(|r| r.rtype == "SYSCALL")
        .map(|i| records[i].fields.clone())
        .unwrap_or_default();
    for rec in records {
        let mut ev = Event::new(EventKind::Audit);
        // Checked: a hostile line may carry any number of seconds (found by the fuzzer).
        let ms = i64::try_from(rec.id.sec)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .and_then(|ms| ms.checked_add(i64::from(rec.id.msec)));
        if let Some(t) = ms.and_then(chrono::DateTime::from_timestamp_millis) {
            ev.push_str(f::UTC_TIME, utc_time(t));
        }
        ev.push(Cow::Borrowed("type"), Value::Str(rec.rtype.as_str().into()));
        if let Some(node) = &rec.id.node {
            ev.push(Cow::Borrowed("node"), Value::Str(node.as_str().into()));
        }
        ev.push(
            Cow::Borrowed("AuditEventId"),
            Value::Str(compact_str::format_compact!(
                "{}.{:03}:{}",
                rec.id.sec,
                rec.id.msec,
                rec.id.serial
            )),
        );
        let merge: Vec<(String, String)> = if rec.rtype == "SYSCALL" {
            Vec::new()
        } else {
            syscall
                .iter()
                // EXECVE's aN are argv: the syscall's raw a0..a3 would only blur them.
                .filter(|(k, _)| !(rec.rtype == "EXECVE" && is_arg_key(k)))
                .filter(|(k, _)| k != "type" && !rec.fields.iter().any(|(o, _)| o == k))
                .cloned()
                .collect()
        };
        for (k, v) in rec.fields.into_iter().chain(merge) {
            ev.push(Cow::Owned(k), Value::Str(v.into()));
        }
        out.push(ev);
    }
}

/// EXECVE records of one event → one record with `argc` and `a0..aN` decoded: quoted values
/// (marked with a leading '"' by the parser) are literal, bare ones hex; `aN[i]` chunks are
/// concatenated in order and `aN_len` dropped.
fn join_execve(records: &mut Vec<AuditRecord>) {
    let Some(first) = records.iter().position(|r| r.rtype == "EXECVE") else {
        return;
    };
    let mut args: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut other: Vec<(String, String)> = Vec::new();
    let mut i = first;
    while i < records.len() {
        if records[i].rtype != "EXECVE" {
            i += 1;
            continue;
        }
        let rec = if i == first {
            std::mem::take(&mut records[i].fields)
        } else {
            records.remove(i).fields
        };
        for (k, v) in rec {
            if !is_arg_key(&k) {
                if !other.iter().any(|(o, _)| *o == k) {
                    other.push((k, v));
                }
                continue;
            }
            let digits: String = k[1..].chars().take_while(char::is_ascii_digit).collect();
            let Ok(n) = digits.parse::<u32>() else {
                continue;
            };
            if k[1 + digits.len()..].starts_with("_len") {
                continue;
            }
            args.entry(n).or_default().extend(decode_arg(&v));
        }
        if i == first {
            i += 1;
        }
    }
    let mut fields = other;
    for (n, bytes) in args {
        fields.push((
            format!("a{n}"),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    records[first].fields = fields;
}

fn decode_arg(v: &str) -> Vec<u8> {
    match v.strip_prefix('"') {
        Some(lit) => lit.as_bytes().to_vec(),
        None => unhex(v).unwrap_or_else(|| v.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_line;
    use super::*;

    fn feed(lines: &[&str]) -> Vec<Event> {
        let mut a = Assembler::default();
        let mut out = Vec::new();
        for l in lines {
            a.push(parse_line(l).unwrap(), None, &mut out);
        }
        a.finish(&mut out);
        out
    }

    #[test]
    fn one_event_per_record_with_syscall_fields_merged() {
        let evs = feed(&[
            "type=SYSCALL msg=audit(1764528000.100:10): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 pid=200 uid=0 comm=\"chmod\" exe=\"/usr/bin/chmod\" key=\"exec\"",
            "type=EXECVE msg=audit(1764528000.100:10): argc=3 a0=\"chmod\" a1=\"u+s\" a2=2F746D702F612062",
            "type=PATH msg=audit(1764528000.100:10): item=0 name=\"/usr/bin/chmod\" nametype=NORMAL",
            "type=PROCTITLE msg=audit(1764528000.100:10): proctitle=63686D6F6400752B73",
        ]);
        assert_eq!(evs.len(), 4);
        let execve = &evs[1];
        assert_eq!(execve.get_str("type"), Some("EXECVE"));
        assert_eq!(
            execve.get_str("a0"),
            Some("chmod"),
            "own a0 wins over SYSCALL's"
        );
        assert_eq!(execve.get_str("a2"), Some("/tmp/a b"));
        assert_eq!(execve.get_str("exe"), Some("/usr/bin/chmod"));
        assert_eq!(execve.get_str("key"), Some("exec"));
        assert_eq!(execve.get_str("UtcTime"), Some("2025-11-30 18:40:00.100"));
        assert_eq!(evs[0].get_str("a0"), Some("1"));
        assert_eq!(evs[2].get_str("name"), Some("/usr/bin/chmod"));
        assert_eq!(evs[2].get_str("syscall"), Some("59"));
        assert_eq!(evs[3].get_str("proctitle"), Some("chmod u+s"));
    }

    #[test]
    fn chunked_and_split_argv_is_joined() {
        let evs = feed(&[
            "type=EXECVE msg=audit(5.000:1): argc=3 a0=\"sh\" a1_len=6 a1[0]=616263 a1[1]=646566",
            "type=SYSCALL msg=audit(5.000:2): syscall=2 comm=\"x\"",
            "type=EXECVE msg=audit(5.000:1): a2=\"-c\"",
        ]);
        let execve: Vec<_> = evs
            .iter()
            .filter(|e| e.get_str("type") == Some("EXECVE"))
            .collect();
        assert_eq!(execve.len(), 1, "interleaved EXECVE records joined");
        assert_eq!(execve[0].get_str("a1"), Some("abcdef"));
        assert_eq!(execve[0].get_str("a2"), Some("-c"));
        assert_eq!(execve[0].get_str("argc"), Some("3"));
    }

    /// Regression (cargo fuzz, target auditd): a timestamp whose milliseconds overflow i64.
    #[test]
    fn huge_timestamps_are_not_a_panic() {
        let evs = feed(&[
            "type=SYSCALL msg=audit(18446744073709551615.999:1): syscall=59",
            "type=SYSCALL msg=audit(9223372036854775807.999:2): syscall=59",
        ]);
        assert_eq!(evs.len(), 2);
        assert!(
            evs.iter().all(|e| !e.has("UtcTime")),
            "no time rather than a wrong one"
        );
    }

    #[test]
    fn closes_after_later_events_or_delay() {
        let mut a = Assembler::default();
        let mut out = Vec::new();
        let t0 = Instant::now();
        a.push(
            parse_line("type=A msg=audit(1.0:1): x=1").unwrap(),
            Some(t0),
            &mut out,
        );
        a.push(
            parse_line("type=B msg=audit(1.0:2): x=1").unwrap(),
            Some(t0),
            &mut out,
        );
        assert!(
            out.is_empty(),
            "a later event alone does not close before the delay"
        );
        let later = t0 + CLOSE_DELAY;
        a.push(
            parse_line("type=C msg=audit(1.0:3): x=1").unwrap(),
            Some(later),
            &mut out,
        );
        assert_eq!(out.len(), 2, "events 1 and 2 closed after the delay");
        a.close_idle(later + CLOSE_DELAY, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(a.open_events(), 0);
    }
}
