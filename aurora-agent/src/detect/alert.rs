//! An alert: the rule, what matched, the whole event, host and time.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rules::RuleMeta;
use crate::event::Event;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MatchedField {
    pub field: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MatchInfo {
    pub selections: Vec<String>,
    pub fields: Vec<MatchedField>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// When the alert was raised (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    pub host: Arc<str>,
    pub rule: Arc<RuleMeta>,
    #[serde(rename = "match")]
    pub matched: MatchInfo,
    /// Shared by every alert the event raised (no per-alert copy).
    pub event: Arc<Event>,
    /// What the rule's response did: `killed`, `would_kill`, `rate_limited`, `gone` or
    /// `refused: <rail>`; absent when the rule has no action.
    #[serde(rename = "Response", skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl Alert {
    pub fn to_json(&self) -> String {
        // Serializing our own types to a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
