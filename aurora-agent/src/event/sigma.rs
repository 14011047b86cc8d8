//! rsigma-eval reads our events directly through its `Event` trait: no JSON conversion.
//!
//! Keywords (field-less Sigma values) are searched in "the whole event", which the Sigma
//! specification leaves to the log source. Here it is every string value of the event, and for
//! the two kinds that come from log lines also the line as the log carried it (`keyword_line`),
//! so a keyword that spans fields (`sshd[`, `type=EXECVE`, `a0=grep`) is found as in the log:
//! - system logs: `HOSTNAME PROGRAM[PID]: MESSAGE`;
//! - auditd: the record's fields as `key=value` pairs separated by spaces, `type=` first;
//! - eBPF kinds (process, network, file): the field values alone.
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;

use rsigma_eval::event::EventValue;

use super::{Event, Value};

impl Value {
    /// The value as rsigma's matchers read it (borrowed).
    pub fn as_event_value(&self) -> EventValue<'_> {
        match self {
            Value::Str(s) => EventValue::Str(Cow::Borrowed(s)),
            Value::Int(n) => EventValue::Int(*n),
            Value::Bool(b) => EventValue::Bool(*b),
        }
    }
}

impl rsigma_eval::Event for Event {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.get(path).map(Value::as_event_value)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.fields.iter().any(|(_, v)| match v {
            Value::Str(s) => pred(s),
            _ => false,
        }) || with_keyword_line(self, |line| line.is_some_and(pred))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out: Vec<Cow<'_, str>> = self
            .fields
            .iter()
            .filter_map(|(_, v)| match v {
                Value::Str(s) => Some(Cow::Borrowed(s.as_str())),
                _ => None,
            })
            .collect();
        if let Some(line) = keyword_line(self) {
            out.push(Cow::Owned(line));
        }
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for (_, v) in &self.fields {
            if let Value::Str(s) = v {
                visit(s);
            }
        }
        with_keyword_line(self, |line| {
            if let Some(line) = line {
                visit(line)
            }
        });
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    fn field_keys(&self) -> Vec<Cow<'_, str>> {
        self.fields
            .iter()
            .map(|(k, _)| Cow::Borrowed(k.as_ref()))
            .collect()
    }
}

/// The event as its log line carried it, for keywords (see the module doc); None for the eBPF
/// kinds, whose field values are the whole event.
pub fn keyword_line(ev: &Event) -> Option<String> {
    let mut line = String::new();
    write_keyword_line(ev, &mut line).then_some(line)
}

thread_local! {
    /// The keyword line of the event being evaluated: (built, has one, text). Reset by
    /// `keyword_scope`; outside a scope it is rebuilt on every use.
    static LINE: RefCell<(bool, bool, String)> = const { RefCell::new((false, false, String::new())) };
    static SCOPED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` (every rule's evaluation of one event, which does not change meanwhile) with the
/// event's keyword line built at most once: every keyword of every keyword rule that missed
/// the field values asks for it, and an auditd record's line is a few hundred bytes.
pub fn keyword_scope<R>(f: impl FnOnce() -> R) -> R {
    let reset = || {
        LINE.with(|c| {
            if let Ok(mut l) = c.try_borrow_mut() {
                l.0 = false;
            }
        })
    };
    reset();
    SCOPED.with(|s| s.set(true));
    let r = f();
    SCOPED.with(|s| s.set(false));
    reset();
    r
}

/// `keyword_line` into a buffer reused per thread (keyword rules evaluate it per event).
pub fn with_keyword_line<R>(ev: &Event, f: impl FnOnce(Option<&str>) -> R) -> R {
    let scoped = SCOPED.with(|s| s.get());
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut l) => {
            if !(scoped && l.0) {
                let mut text = std::mem::take(&mut l.2);
                text.clear();
                l.1 = write_keyword_line(ev, &mut text);
                l.2 = text;
                l.0 = true;
            }
            if l.1 {
                f(Some(&l.2))
            } else {
                f(None)
            }
        }
        // Re-entered from inside `f` (not done by rsigma): build a fresh one.
        Err(_) => f(keyword_line(ev).as_deref()),
    })
}

fn write_keyword_line(ev: &Event, out: &mut String) -> bool {
    use super::names as f;
    use super::EventKind;
    match ev.kind {
        EventKind::SystemLog => {
            let text = |k: &str| ev.get(k).map(|v| v.as_text()).unwrap_or_default();
            if let Some(host) = ev.get_str(f::HOSTNAME) {
                let _ = write!(out, "{host} ");
            }
            out.push_str(&text(f::SYSLOG_IDENTIFIER));
            if let Some(pid) = ev.get(f::PROCESS_ID) {
                let _ = write!(out, "[{}]", pid.as_text());
            }
            let _ = write!(out, ": {}", text(f::MESSAGE));
            true
        }
        EventKind::Audit => {
            // push_str, not write!: a record's line is built for every auditd event a keyword
            // rule may see, and formatting was most of that.
            if let Some(t) = ev.get("type") {
                out.push_str("type=");
                out.push_str(&t.as_text());
            }
            for (k, v) in ev.fields.iter().filter(|(k, _)| *k != "type") {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(k);
                out.push('=');
                out.push_str(&v.as_text());
            }
            true
        }
        _ => false,
    }
}
