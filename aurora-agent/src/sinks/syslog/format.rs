//! Syslog message formats: RFC 5424 (default) and RFC 3164, with the alert as structured data
//! plus a text MSG, or the JSON alert as MSG.
use std::fmt::Write as _;

use crate::detect::alert::Alert;
use crate::detect::rules::AlertLevel;
use crate::sinks::sanitize::neutralize;
use crate::sinks::text;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rfc {
    R5424,
    R3164,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Human-readable MSG (and structured data in 5424).
    Text,
    /// The JSON alert as MSG.
    Json,
}

/// SD-ID: private enterprise number 32473 is reserved for documentation (RFC 5612).
pub const SD_ID: &str = "aurora@32473";

pub fn severity(level: AlertLevel) -> u8 {
    match level {
        AlertLevel::Critical => 2,
        AlertLevel::High => 3,
        AlertLevel::Medium => 4,
        AlertLevel::Low => 5,
        AlertLevel::Informational => 6,
    }
}

/// Facility by name (kern, user, daemon, auth, syslog, authpriv, local0..7) or number 0-23.
pub fn facility(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 23).then_some(n);
    }
    let n = match s.to_ascii_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        l if l.starts_with("local") => {
            return l[5..]
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= 7)
                .map(|n| 16 + n)
        }
        _ => return None,
    };
    Some(n)
}

/// SD-PARAM value escaping (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash; control
/// characters are neutralised so the record stays one line.
pub fn sd_escape(v: &str) -> String {
    let v = neutralize(v);
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// HOSTNAME / APP-NAME / PROCID / MSGID must be printable US-ASCII without spaces.
fn header_token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

pub struct Formatter {
    pub rfc: Rfc,
    pub payload: Payload,
    pub facility: u8,
    pub pid: u32,
}

impl Formatter {
    pub fn format(&self, a: &Alert) -> String {
        let pri = self.facility as u16 * 8 + severity(a.rule.level) as u16;
        let msg = match self.payload {
            Payload::Text => text::summary(a),
            // serde_json escapes control characters: the JSON stays on one line.
            Payload::Json => a.to_json(),
        };
        match self.rfc {
            Rfc::R5424 => {
                let mut s = String::with_capacity(msg.len() + 256);
                let _ = write!(
                    s,
                    "<{pri}>1 {} {} aurora {} {} ",
                    a.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    header_token(&a.host, 255),
                    self.pid,
                    header_token(a.event.kind.category(), 32),
                );
                if self.payload == Payload::Text {
                    let _ = write!(
                        s,
                        "[{SD_ID} ruleId=\"{}\" ruleTitle=\"{}\" level=\"{}\"",
                        sd_escape(a.rule.key()),
                        sd_escape(&a.rule.title),
                        a.rule.level.as_str()
                    );
                    for (k, v) in &a.event.fields {
                        let _ = write!(
                            s,
                            " {}=\"{}\"",
                            header_token(k, 32),
                            sd_escape(&v.as_text())
                        );
                    }
                    s.push(']');
                } else {
                    s.push('-');
                }
                s.push(' ');
                s.push_str(&msg);
                s
            }
            Rfc::R3164 => format!(
                "<{pri}>{} {} aurora[{}]: {}",
                a.time.format("%b %e %H:%M:%S"),
                header_token(&a.host, 255),
                self.pid,
                msg
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::tests::sample_alert;

    #[test]
    fn rfc5424_grammar_and_sd_escaping() {
        let a = sample_alert("curl x | sh\n<13>1 forged", "My \"rule\" [x]\\");
        let f = Formatter {
            rfc: Rfc::R5424,
            payload: Payload::Text,
            facility: 1,
            pid: 42,
        };
        let m = f.format(&a);
        // PRI = user(1)*8 + high(3)
        assert!(m.starts_with("<11>1 2024-05-01T12:34:56.789000Z testhost aurora 42 process_creation [aurora@32473 "), "{m}");
        assert!(m.contains(r#"ruleTitle="My \"rule\" [x\]\\""#), "{m}");
        assert!(
            m.contains(r#"CommandLine="curl x | sh\\n<13>1 forged""#),
            "{m}"
        );
        assert!(!m.contains('\n'));
        assert!(m.contains("] Sigma match: My \"rule\" [x]\\ [high]"), "{m}");
    }

    #[test]
    fn rfc5424_json_payload_and_3164() {
        let a = sample_alert("id", "T");
        let j = Formatter {
            rfc: Rfc::R5424,
            payload: Payload::Json,
            facility: 16,
            pid: 7,
        }
        .format(&a);
        assert!(j.starts_with("<131>1 "), "{j}");
        let msg = j.split_once(" - ").unwrap().1;
        let v: serde_json::Value = serde_json::from_str(msg).unwrap();
        assert_eq!(v["rule"]["title"], "T");
        let b = Formatter {
            rfc: Rfc::R3164,
            payload: Payload::Text,
            facility: 4,
            pid: 9,
        }
        .format(&a);
        assert!(
            b.starts_with("<35>May  1 12:34:56 testhost aurora[9]: Sigma match: T [high]"),
            "{b}"
        );
    }

    #[test]
    fn facilities_and_severities() {
        assert_eq!(facility("user"), Some(1));
        assert_eq!(facility("local7"), Some(23));
        assert_eq!(facility("23"), Some(23));
        assert_eq!(facility("24"), None);
        assert_eq!(facility("local8"), None);
        assert_eq!(facility("bogus"), None);
        assert_eq!(severity(AlertLevel::Critical), 2);
        assert_eq!(severity(AlertLevel::Informational), 6);
    }
}
