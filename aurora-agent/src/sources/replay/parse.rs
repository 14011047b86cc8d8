//! One JSONL line → [`Event`]. Our format (what `aurora record` writes) and Nextron
//! aurora-linux's replay format (`_provider`, `_eventID`, `_source`, `_timestamp`, all-string
//! fields) are both accepted. Numbers may be JSON numbers or numeric strings; schema-numeric
//! fields are normalised to numbers. The line is read straight into the event (serde's
//! visitor over the JSON map: no `serde_json::Value` tree, schema field names not allocated).
use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use compact_str::CompactString;
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::event::names::{self as f, NUMERIC};
use crate::event::time::utc_time;
use crate::event::{Event, EventKind, Value};

use crate::event::time::parse_utc_ns;

/// Keys of the Go peer's envelope.
const GO_EVENT_ID: &str = "_eventID";
const GO_TIMESTAMP: &str = "_timestamp";

/// Field names of the schema: a line's keys that are one of these are not allocated.
const KNOWN: &[&str] = &[
    f::PROCESS_GUID,
    f::PROCESS_ID,
    f::IMAGE,
    f::COMMAND_LINE,
    f::COMMAND_LINE_TRUNCATED,
    f::CURRENT_DIRECTORY,
    f::USER,
    f::LOGON_ID,
    f::PARENT_PROCESS_GUID,
    f::PARENT_PROCESS_ID,
    f::PARENT_IMAGE,
    f::PARENT_COMMAND_LINE,
    f::PARENT_USER,
    f::CONTAINER_ID,
    f::CGROUP_PATH,
    f::CONTAINER_NAME,
    f::CONTAINER_IMAGE,
    f::CONTAINER_IMAGE_ID,
    f::CONTAINER_RUNTIME,
    f::POD_NAME,
    f::POD_NAMESPACE,
    f::POD_UID,
    f::EXIT_CODE,
    f::TARGET_FILENAME,
    f::CREATION_UTC_TIME,
    f::FILE_ACTION,
    f::PROTOCOL,
    f::INITIATED,
    f::SOURCE_IS_IPV6,
    f::SOURCE_IP,
    f::SOURCE_PORT,
    f::DESTINATION_IS_IPV6,
    f::DESTINATION_IP,
    f::DESTINATION_HOSTNAME,
    f::DESTINATION_PORT,
];

/// What a line's key is to this parser.
#[derive(Clone, Copy)]
enum Role {
    EventId,
    GoEventId,
    /// The Go envelope's `_provider` and `_source`: dropped.
    GoEnvelope,
    GoTimestamp,
    UtcTime,
    /// A field of the schema: its name, and whether its values are numbers.
    Schema(&'static str, bool),
}

/// A line's key as this parser knows it (`None`: a field outside the schema, kept under its
/// own name). This runs for every field of every replayed line: names are grouped by length,
/// so a key is compared with the one to three names of its length only, once (a hash probe
/// measured 5× the instructions).
fn role(key: &str) -> Option<Role> {
    static BY_LEN: LazyLock<Vec<Vec<(&'static str, Role)>>> = LazyLock::new(|| {
        let special = [
            ("EventID", Role::EventId),
            (GO_EVENT_ID, Role::GoEventId),
            ("_provider", Role::GoEnvelope),
            ("_source", Role::GoEnvelope),
            (GO_TIMESTAMP, Role::GoTimestamp),
            (f::UTC_TIME, Role::UtcTime),
        ];
        let schema = KNOWN
            .iter()
            .map(|&n| (n, Role::Schema(n, NUMERIC.contains(&n))));
        let all: Vec<_> = special.into_iter().chain(schema).collect();
        let mut by_len = vec![Vec::new(); all.iter().map(|(n, _)| n.len() + 1).max().unwrap_or(0)];
        for (n, r) in all {
            by_len[n.len()].push((n, r));
        }
        by_len
    });
    BY_LEN
        .get(key.len())?
        .iter()
        .find(|(n, _)| *n == key)
        .map(|&(_, r)| r)
}

/// A key, borrowed from the line when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// One value as the line has it; objects and arrays are only named (skipped unread).
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    /// A number that is not an i64 (kept as its text).
    Number(String),
    Str(CompactString),
    Nested(&'static str),
}

impl Scalar {
    fn type_name(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "boolean",
            Scalar::Int(_) | Scalar::Number(_) => "number",
            Scalar::Str(_) => "string",
            Scalar::Nested(t) => t,
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(i64::try_from(v)
            .map(Scalar::Int)
            .unwrap_or_else(|_| Scalar::Number(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Number(
            serde_json::Number::from_f64(v)
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.into()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested("object"))
    }
}

fn event_id(v: &Scalar) -> Result<u64, String> {
    match v {
        Scalar::Int(n) => {
            u64::try_from(*n).map_err(|_| format!("EventID {n} is not a positive integer"))
        }
        Scalar::Number(n) => Err(format!("EventID {n} is not a positive integer")),
        Scalar::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("EventID \"{s}\" is not a number")),
        other => Err(format!(
            "EventID has the wrong type ({})",
            other.type_name()
        )),
    }
}

fn field_value(key: &str, numeric: bool, v: Scalar) -> Result<Option<Value>, String> {
    Ok(Some(match v {
        Scalar::Null => return Ok(None),
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::Int(i),
        Scalar::Number(n) if numeric => return Err(format!("field {key}: {n} is not an integer")),
        Scalar::Number(n) => Value::Str(n.into()),
        Scalar::Str(s) if numeric => match s.trim().parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) if s.is_empty() => return Ok(None),
            Err(_) => return Err(format!("field {key}: expected a number, got \"{s}\"")),
        },
        Scalar::Str(s) => Value::Str(s),
        Scalar::Nested(t) => {
            return Err(format!("field {key}: nested {t} values are not supported"))
        }
    }))
}

/// The whole line: an object read straight into an event (no intermediate JSON tree). The
/// outer `Result` is JSON syntax; the inner one what the line means.
struct LineVisitor;

impl<'de> Visitor<'de> for LineVisitor {
    type Value = Result<Event, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(Cow<'static, str>, Value)> = Vec::with_capacity(24);
        // UtcTime comes first, as in live events: its slot is held now and filled at the end
        // (no shift of every field after the line is read).
        fields.push((Cow::Borrowed(f::UTC_TIME), Value::Bool(false)));
        let (mut id, mut time, mut go_time) = (None, None, None);
        let mut problem: Option<String> = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let v: Scalar = map.next_value()?;
            if problem.is_some() {
                continue; // read the rest for syntax errors, report the first meaning error
            }
            match role(&key.0) {
                // EventID wins over the Go envelope's _eventID, whichever comes first.
                Some(Role::EventId) => id = Some(event_id(&v)),
                Some(Role::GoEventId) => {
                    if id.is_none() {
                        id = Some(event_id(&v));
                    }
                }
                Some(Role::GoEnvelope) => {}
                Some(Role::GoTimestamp) => {
                    if let Scalar::Str(s) = v {
                        go_time = Some(s);
                    }
                }
                Some(Role::UtcTime) => match v {
                    Scalar::Str(s) if parse_utc_ns(&s).is_some() => time = Some(s),
                    Scalar::Str(s) => {
                        problem = Some(format!(
                            "UtcTime \"{s}\" is neither RFC 3339 nor YYYY-MM-DD HH:MM:SS.fff"
                        ))
                    }
                    other => {
                        problem = Some(format!(
                            "UtcTime has the wrong type ({})",
                            other.type_name()
                        ))
                    }
                },
                Some(Role::Schema(name, numeric)) => match field_value(name, numeric, v) {
                    Ok(Some(val)) => fields.push((Cow::Borrowed(name), val)),
                    Ok(None) => {}
                    Err(e) => problem = Some(e),
                },
                None => match field_value(&key.0, false, v) {
                    Ok(Some(val)) => fields.push((Cow::Owned(key.0.into_owned()), val)),
                    Ok(None) => {}
                    Err(e) => problem = Some(e),
                },
            }
        }
        let id = match id {
            Some(Ok(id)) => id,
            Some(Err(e)) => return Ok(Err(e)),
            None => return Ok(Err("missing EventID".into())),
        };
        let Some(kind) = EventKind::from_event_id(id) else {
            return Ok(Err(format!(
                "unknown EventID {id} ({})",
                EventKind::describe_all()
            )));
        };
        if let Some(p) = problem {
            return Ok(Err(p));
        }
        // UtcTime: explicit, else the Go envelope's, else now.
        let t = time
            .or_else(|| go_time.filter(|g| parse_utc_ns(g).is_some()))
            .unwrap_or_else(|| utc_time(chrono::Utc::now()).into());
        fields[0].1 = Value::Str(t);
        Ok(Ok(Event { kind, fields }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("not a JSON object (a array)".into()))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object (a string)".into()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object (a boolean)".into()))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object (a number)".into()))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object (a number)".into()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object (a number)".into()))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err("not a JSON object (a null)".into()))
    }
}

/// Parse one line. `Ok(None)` for a blank line; `Err(reason)` for a line to reject.
pub fn parse_line(line: &str) -> Result<Option<Event>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(trimmed);
    let parsed = de
        .deserialize_any(LineVisitor)
        .and_then(|r| de.end().map(|()| r))
        .map_err(|e| format!("not JSON: {e}"))?;
    parsed.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_with_numeric_normalisation() {
        let ev = parse_line(r#"{"EventID":3,"UtcTime":"2024-05-01 12:00:00.000","Image":"/usr/bin/nc","DestinationPort":"4444","SourcePort":5555,"Initiated":"true"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.kind, EventKind::NetworkConnection);
        assert_eq!(ev.get(f::DESTINATION_PORT), Some(&Value::Int(4444)));
        assert_eq!(ev.get(f::SOURCE_PORT), Some(&Value::Int(5555)));
        assert_eq!(ev.get_str(f::INITIATED), Some("true"));
        assert_eq!(ev.fields[0].0, f::UTC_TIME);
    }

    #[test]
    fn go_format_accepted() {
        let ev = parse_line(r#"{"_provider":"LinuxEBPF","_eventID":"1","_source":"LinuxEBPF","_timestamp":"2025-01-02T03:04:05Z","Image":"/usr/bin/base64","CommandLine":"base64 -d","ProcessId":"77","ParentProcessId":"1"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.kind, EventKind::ProcessCreation);
        assert_eq!(ev.get_str(f::UTC_TIME), Some("2025-01-02T03:04:05Z"));
        assert_eq!(ev.get(f::PROCESS_ID), Some(&Value::Int(77)));
        assert!(!ev.has("_provider") && !ev.has("_source"));
    }

    #[test]
    fn bad_lines_have_reasons() {
        let cases = [
            ("{not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"Image":"x"}"#, "missing EventID"),
            (r#"{"EventID":2}"#, "unknown EventID 2"),
            (r#"{"EventID":"one"}"#, "is not a number"),
            (
                r#"{"EventID":1,"ProcessId":"abc"}"#,
                "field ProcessId: expected a number",
            ),
            (
                r#"{"EventID":1,"ProcessId":1.5}"#,
                "field ProcessId: 1.5 is not an integer",
            ),
            (r#"{"EventID":1,"Image":{"a":1}}"#, "nested object"),
            (r#"{"EventID":1,"UtcTime":"soon"}"#, "UtcTime \"soon\""),
            (r#"{"EventID":1,"UtcTime":5}"#, "UtcTime has the wrong type"),
        ];
        for (line, want) in cases {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        assert_eq!(parse_line("   ").unwrap(), None);
    }
}
