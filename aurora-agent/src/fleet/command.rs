//! Commands an operator sends one agent (request/reply on `aurora-cmd.<host>`), and the
//! replies. Both sides also put them in the stream (`aurora.fleet.<host>.command|reply`), so
//! who asked what, when, and what came of it is kept with the fleet's alerts.
use serde::{Deserialize, Serialize};

use crate::policy::Mode;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    /// Is the agent there? (its version and uptime)
    Ping,
    /// Converge to the wanted isolation (the operator's CLI records it first).
    Isolate,
    Unisolate,
    /// SIGKILL the process a ProcessGuid names, if it still is that process.
    Kill {
        guid: String,
    },
    /// Reload rules and policies, as SIGHUP does.
    Reload,
    /// Every policy deny entry in this mode until the agent restarts.
    PolicyMode {
        mode: Mode,
    },
}

impl Command {
    /// `ping`, `isolate`, `kill GUID`, `policy-mode enforce`, … as `aurora fleet cmd` takes them.
    pub fn parse(words: &[String]) -> Result<Command, String> {
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        Ok(match w.as_slice() {
            ["ping"] => Command::Ping,
            ["isolate"] => Command::Isolate,
            ["unisolate"] => Command::Unisolate,
            ["reload"] => Command::Reload,
            ["kill", guid] => Command::Kill {
                guid: (*guid).to_owned(),
            },
            ["policy-mode", "audit"] => Command::PolicyMode { mode: Mode::Audit },
            ["policy-mode", "enforce"] => Command::PolicyMode {
                mode: Mode::Enforce,
            },
            _ => {
                return Err(format!(
                    "{:?}: expected ping, isolate, unisolate, reload, kill PROCESS_GUID or \
                     policy-mode audit|enforce",
                    words.join(" ")
                ))
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Isolate => "isolate",
            Command::Unisolate => "unisolate",
            Command::Kill { .. } => "kill",
            Command::Reload => "reload",
            Command::PolicyMode { .. } => "policy-mode",
        }
    }
}

/// A command as sent and recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub host: String,
    /// The operator, as `--operator` names them.
    pub by: String,
    pub sent: f64,
    #[serde(flatten)]
    pub command: Command,
}

/// The agent's answer, as sent and recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: String,
    pub host: String,
    pub command: String,
    pub ok: bool,
    pub result: String,
    pub at: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn commands_parse_and_round_trip() {
        for s in [
            "ping",
            "isolate",
            "unisolate",
            "reload",
            "kill {x}",
            "policy-mode enforce",
        ] {
            let c = Command::parse(&words(s)).unwrap();
            let r = Request {
                id: "1".into(),
                host: "h".into(),
                by: "op".into(),
                sent: 1.0,
                command: c.clone(),
            };
            let back: Request = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            assert_eq!(back, r);
        }
        assert!(Command::parse(&words("policy-mode block")).is_err());
        assert!(Command::parse(&words("kill")).is_err());
    }
}
