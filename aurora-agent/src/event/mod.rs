//! The one event type for live and replayed telemetry: a kind plus flat fields named as in
//! Sysmon for Linux (what SigmaHQ's Linux rules are written against).
//!
//! Fields are a small ordered vector: building one is a few pushes, matching is a short scan
//! comparing names (no per-event JSON round trip), and output keeps Sysmon's field order.
pub mod audit;
mod sigma;
pub mod text;
pub mod time;

pub use sigma::{keyword_scope, with_keyword_line as with_keyword_text};

use std::borrow::Cow;

use compact_str::CompactString;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Field names (Sysmon for Linux schema, plus our own CommandLineTruncated, CgroupPath and the container fields).
pub mod names {
    pub const UTC_TIME: &str = "UtcTime";
    pub const PROCESS_GUID: &str = "ProcessGuid";
    pub const PROCESS_ID: &str = "ProcessId";
    pub const IMAGE: &str = "Image";
    pub const COMMAND_LINE: &str = "CommandLine";
    pub const COMMAND_LINE_TRUNCATED: &str = "CommandLineTruncated";
    pub const CURRENT_DIRECTORY: &str = "CurrentDirectory";
    pub const USER: &str = "User";
    pub const LOGON_ID: &str = "LogonId";
    pub const PARENT_PROCESS_GUID: &str = "ParentProcessGuid";
    pub const PARENT_PROCESS_ID: &str = "ParentProcessId";
    pub const PARENT_IMAGE: &str = "ParentImage";
    pub const PARENT_COMMAND_LINE: &str = "ParentCommandLine";
    pub const PARENT_USER: &str = "ParentUser";
    pub const CONTAINER_ID: &str = "ContainerId";
    pub const CGROUP_PATH: &str = "CgroupPath";
    /// Ours, from the container runtime's API: on every event of a container's process.
    pub const CONTAINER_NAME: &str = "ContainerName";
    pub const CONTAINER_IMAGE: &str = "ContainerImage";
    pub const CONTAINER_IMAGE_ID: &str = "ContainerImageId";
    pub const CONTAINER_RUNTIME: &str = "ContainerRuntime";
    pub const POD_NAME: &str = "PodName";
    pub const POD_NAMESPACE: &str = "PodNamespace";
    pub const POD_UID: &str = "PodUid";
    pub const EXIT_CODE: &str = "ExitCode";
    pub const TARGET_FILENAME: &str = "TargetFilename";
    pub const CREATION_UTC_TIME: &str = "CreationUtcTime";
    /// Ours: `created` (a new file) or `overwritten` (an existing file truncated).
    pub const FILE_ACTION: &str = "FileAction";
    pub const PROTOCOL: &str = "Protocol";
    pub const INITIATED: &str = "Initiated";
    pub const SOURCE_IS_IPV6: &str = "SourceIsIpv6";
    pub const SOURCE_IP: &str = "SourceIp";
    pub const SOURCE_PORT: &str = "SourcePort";
    pub const DESTINATION_IS_IPV6: &str = "DestinationIsIpv6";
    pub const DESTINATION_IP: &str = "DestinationIp";
    pub const DESTINATION_HOSTNAME: &str = "DestinationHostname";
    pub const DESTINATION_PORT: &str = "DestinationPort";

    /// Response fields (EventID 102): what was done (`blocked`, `killed`, `would_block`,
    /// `isolated`, `unisolated`), under which mode, and the policy entry (`file:line`).
    pub const ACTION: &str = "Action";
    pub const MODE: &str = "Mode";
    pub const POLICY: &str = "Policy";
    pub const POLICY_ENTRY: &str = "PolicyEntry";
    /// `exec` or `open`.
    pub const OPERATION: &str = "Operation";
    /// Isolation: the addresses still reachable.
    pub const ALLOWED: &str = "Allowed";

    /// System-log fields (EventID 101).
    pub const SYSLOG_IDENTIFIER: &str = "SyslogIdentifier";
    pub const HOSTNAME: &str = "Hostname";
    pub const MESSAGE: &str = "Message";

    /// Fields whose values are numbers in the schema (rules say `DestinationPort: 4444`).
    pub const NUMERIC: &[&str] = &[
        PROCESS_ID,
        PARENT_PROCESS_ID,
        LOGON_ID,
        SOURCE_PORT,
        DESTINATION_PORT,
        EXIT_CODE,
    ];
}

/// What happened; the number is the Sysmon EventID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    ProcessCreation,
    NetworkConnection,
    ProcessTermination,
    FileEvent,
    /// One auditd record (its event's SYSCALL fields merged in); EventID 100 is ours.
    Audit,
    /// One system-log message (journald or a syslog file); EventID 101 is ours.
    SystemLog,
    /// What Aurora did: a policy block in the kernel, an isolation; EventID 102 is ours.
    Response,
}

impl EventKind {
    pub const COUNT: usize = 7;
    pub const ALL: [EventKind; Self::COUNT] = [
        EventKind::ProcessCreation,
        EventKind::NetworkConnection,
        EventKind::ProcessTermination,
        EventKind::FileEvent,
        EventKind::Audit,
        EventKind::SystemLog,
        EventKind::Response,
    ];

    pub fn event_id(self) -> u32 {
        match self {
            EventKind::ProcessCreation => 1,
            EventKind::NetworkConnection => 3,
            EventKind::ProcessTermination => 5,
            EventKind::FileEvent => 11,
            EventKind::Audit => 100,
            EventKind::SystemLog => 101,
            EventKind::Response => 102,
        }
    }

    pub fn from_event_id(id: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.event_id() as u64 == id)
    }

    /// Every kind as `ID name`, for messages.
    pub fn describe_all() -> String {
        Self::ALL
            .iter()
            .map(|k| format!("{} {}", k.event_id(), k.category()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The Sigma logsource category of this kind.
    pub fn category(self) -> &'static str {
        match self {
            EventKind::ProcessCreation => "process_creation",
            EventKind::NetworkConnection => "network_connection",
            EventKind::ProcessTermination => "process_termination",
            EventKind::FileEvent => "file_event",
            EventKind::Audit => "auditd",
            EventKind::SystemLog => "system_log",
            EventKind::Response => "response",
        }
    }

    pub fn from_category(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.category() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.category())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.category())
    }
}

/// A field's value. Text is a `CompactString`: values up to 24 bytes (times, users, most
/// paths) live inline, so building an event allocates only for long ones (command lines).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(CompactString),
    Int(i64),
    Bool(bool),
}

impl Value {
    /// Text form, as a Sigma string comparison sees it.
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s),
            Value::Int(n) => Cow::Owned(n.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

pub type FieldName = Cow<'static, str>;

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub fields: Vec<(FieldName, Value)>,
}

impl Event {
    pub fn new(kind: EventKind) -> Self {
        Event {
            kind,
            fields: Vec::with_capacity(20),
        }
    }

    /// Field by name. The hot path of detection (every matcher of every candidate rule asks):
    /// length and first/last bytes are compared before the full name, which avoids a memcmp
    /// call for nearly every non-matching field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let n = name.as_bytes();
        let (first, last) = match (n.first(), n.last()) {
            (Some(f), Some(l)) => (*f, *l),
            _ => {
                return self
                    .fields
                    .iter()
                    .find(|(k, _)| k.is_empty())
                    .map(|(_, v)| v)
            }
        };
        self.fields
            .iter()
            .find(|(k, _)| {
                let k = k.as_bytes();
                k.len() == n.len() && k[0] == first && k[k.len() - 1] == last && k == n
            })
            .map(|(_, v)| v)
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn get_int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(Value::Int(n)) => Some(*n),
            Some(Value::Str(s)) => s.parse().ok(),
            _ => None,
        }
    }

    /// Append a field (callers building events set each name once).
    pub fn push(&mut self, name: impl Into<FieldName>, value: Value) {
        self.fields.push((name.into(), value));
    }

    pub fn push_str(&mut self, name: &'static str, value: impl Into<CompactString>) {
        self.fields
            .push((Cow::Borrowed(name), Value::Str(value.into())));
    }

    pub fn push_int(&mut self, name: &'static str, value: i64) {
        self.fields.push((Cow::Borrowed(name), Value::Int(value)));
    }

    /// Set a field, replacing an existing value of that name.
    pub fn set(&mut self, name: &'static str, value: Value) {
        match self.fields.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((Cow::Borrowed(name), value)),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// `{"EventID": n, <fields in order>}`: the record/replay line format and the alert's event.
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len() + 1))?;
        map.serialize_entry("EventID", &self.kind.event_id())?;
        for (k, v) in &self.fields {
            match v {
                Value::Str(x) => map.serialize_entry(k, x.as_str())?,
                Value::Int(n) => map.serialize_entry(k, n)?,
                Value::Bool(b) => map.serialize_entry(k, b)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_event_id_first_and_numbers_as_numbers() {
        let mut e = Event::new(EventKind::NetworkConnection);
        e.push_str(names::IMAGE, "/usr/bin/nc");
        e.push_int(names::DESTINATION_PORT, 4444);
        e.push_str(names::INITIATED, "true");
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"EventID":3,"Image":"/usr/bin/nc","DestinationPort":4444,"Initiated":"true"}"#
        );
    }

    #[test]
    fn set_replaces_and_get_int_reads_numeric_strings() {
        let mut e = Event::new(EventKind::ProcessCreation);
        e.push_str(names::PROCESS_ID, "42");
        assert_eq!(e.get_int(names::PROCESS_ID), Some(42));
        e.set(names::PROCESS_ID, Value::Int(43));
        assert_eq!(e.get(names::PROCESS_ID), Some(&Value::Int(43)));
        assert_eq!(e.fields.len(), 1);
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_event_id(k.event_id() as u64), Some(k));
            assert_eq!(EventKind::from_category(k.category()), Some(k));
        }
        assert_eq!(EventKind::from_event_id(2), None);
    }
}
