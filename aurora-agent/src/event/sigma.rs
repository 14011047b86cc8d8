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

/// `keyword_line` into a buffer reused per thread (keyword rules evaluate it per event).
fn with_keyword_line<R>(ev: &Event, f: impl FnOnce(Option<&str>) -> R) -> R {
    thread_local! {
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => {
            line.clear();
            if write_keyword_line(ev, &mut line) {
                f(Some(&line))
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
            if let Some(t) = ev.get("type") {
                let _ = write!(out, "type={}", t.as_text());
            }
            for (k, v) in ev.fields.iter().filter(|(k, _)| *k != "type") {
                if !out.is_empty() {
                    out.push(' ');
                }
                let _ = write!(out, "{k}={}", v.as_text());
            }
            true
        }
        _ => false,
    }
}
