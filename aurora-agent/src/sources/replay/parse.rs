//! One JSONL line → [`Event`]. Our format (what `aurora record` writes) and Nextron
//! aurora-linux's replay format (`_provider`, `_eventID`, `_source`, `_timestamp`, all-string
//! fields) are both accepted. Numbers may be JSON numbers or numeric strings; schema-numeric
//! fields are normalised to numbers.
use std::borrow::Cow;

use serde_json::{Map, Value as Json};

use crate::enrich::clock::utc_time;
use crate::event::names::{self as f, NUMERIC};
use crate::event::{Event, EventKind, Value};

use crate::event::time::parse_utc;

/// Keys of the Go peer's envelope.
const GO_EVENT_ID: &str = "_eventID";
const GO_TIMESTAMP: &str = "_timestamp";

fn event_id(v: &Json) -> Result<u64, String> {
    match v {
        Json::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("EventID {n} is not a positive integer")),
        Json::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("EventID \"{s}\" is not a number")),
        other => Err(format!("EventID has the wrong type ({})", type_name(other))),
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn field_value(key: &str, v: Json) -> Result<Option<Value>, String> {
    let numeric = NUMERIC.contains(&key);
    Ok(Some(match v {
        Json::Null => return Ok(None),
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None if numeric => return Err(format!("field {key}: {n} is not an integer")),
            None => Value::Str(n.to_string()),
        },
        Json::String(s) if numeric => match s.trim().parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) if s.is_empty() => return Ok(None),
            Err(_) => return Err(format!("field {key}: expected a number, got \"{s}\"")),
        },
        Json::String(s) => Value::Str(s),
        other => {
            return Err(format!(
                "field {key}: nested {} values are not supported",
                type_name(&other)
            ))
        }
    }))
}

/// Parse one line. `Ok(None)` for a blank line; `Err(reason)` for a line to reject.
pub fn parse_line(line: &str) -> Result<Option<Event>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let obj: Map<String, Json> = match serde_json::from_str::<Json>(trimmed) {
        Ok(Json::Object(m)) => m,
        Ok(other) => return Err(format!("not a JSON object (a {})", type_name(&other))),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    let id = match obj.get("EventID").or_else(|| obj.get(GO_EVENT_ID)) {
        Some(v) => event_id(v)?,
        None => return Err("missing EventID".into()),
    };
    let kind = EventKind::from_event_id(id)
        .ok_or_else(|| format!("unknown EventID {id} ({})", EventKind::describe_all()))?;
    let mut ev = Event::new(kind);
    let mut time: Option<String> = None;
    let mut go_time: Option<String> = None;
    for (k, v) in obj {
        match k.as_str() {
            "EventID" | GO_EVENT_ID | "_provider" | "_source" => {}
            GO_TIMESTAMP => go_time = v.as_str().map(str::to_owned),
            f::UTC_TIME => match v {
                Json::String(s) => {
                    if parse_utc(&s).is_none() {
                        return Err(format!(
                            "UtcTime \"{s}\" is neither RFC 3339 nor YYYY-MM-DD HH:MM:SS.fff"
                        ));
                    }
                    time = Some(s);
                }
                other => {
                    return Err(format!(
                        "UtcTime has the wrong type ({})",
                        type_name(&other)
                    ))
                }
            },
            _ => {
                if let Some(val) = field_value(&k, v)? {
                    ev.push(Cow::Owned(k), val);
                }
            }
        }
    }
    // UtcTime first, as in live events: explicit, else the Go envelope's, else now.
    let t = time
        .or_else(|| go_time.filter(|g| parse_utc(g).is_some()))
        .unwrap_or_else(|| utc_time(chrono::Utc::now()));
    ev.fields
        .insert(0, (Cow::Borrowed(f::UTC_TIME), Value::Str(t)));
    Ok(Some(ev))
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
