//! `-c FILE` and the one layering mechanism: flags over file over defaults.
//!
//! The file is YAML with the same keys as the long flags. Every component's config struct is
//! both a clap `Args` and a serde struct with those names, so the command line and the file
//! fill the same struct: `ConfigFile::layer` reads the struct from the file, then lays every
//! flag that was given over it. Defaults are applied by the component that owns the setting,
//! once. Unknown keys are errors naming the key, the file and the line.
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

/// A parsed config file (or none: every setting comes from flags and defaults).
#[derive(Debug, Default, Clone)]
pub struct ConfigFile {
    path: Option<PathBuf>,
    text: String,
}

impl ConfigFile {
    /// Parse `text`; `known` lists the keys the file may use (the long flags).
    pub fn parse(path: &Path, text: &str, known: &[String]) -> Result<ConfigFile, ConfigError> {
        let err = |message: String| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        };
        let doc: Json = if text.trim().is_empty() {
            Json::Object(Default::default())
        } else {
            yaml_serde::from_str(text).map_err(|e| err(e.to_string()))?
        };
        let Json::Object(map) = &doc else {
            return Err(err(
                "expected a mapping of settings (key: value lines)".into()
            ));
        };
        for key in map.keys() {
            if !known.iter().any(|k| k == key) {
                return Err(err(format!(
                    "unknown key `{key}`{} (keys are the long flags without dashes, e.g. throttle-rate)",
                    line_of(text, key).map(|l| format!(" at line {l}")).unwrap_or_default()
                )));
            }
        }
        Ok(ConfigFile {
            path: Some(path.to_owned()),
            text: text.to_owned(),
        })
    }

    pub fn load(path: &Path, known: &[String]) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(path, &text, known)
    }

    /// `flags` over what this file says for the same struct. A flag counts as given when it
    /// is not empty: a value, a `true` switch, a non-empty list (a count such as `-v` is
    /// left out of the serialized flags while zero).
    pub fn layer<T: Serialize + DeserializeOwned + Default>(
        &self,
        flags: &T,
    ) -> Result<T, ConfigError> {
        let path = self.path.as_deref().unwrap_or(Path::new("-"));
        let err = |message: String| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        };
        let from_file: T = if self.text.trim().is_empty() {
            T::default()
        } else {
            // Parsed from the text (not a tree) so type errors keep their line numbers.
            yaml_serde::from_str(&self.text).map_err(|e| err(e.to_string()))?
        };
        let mut merged = serde_json::to_value(&from_file).map_err(|e| err(e.to_string()))?;
        let given = serde_json::to_value(flags).map_err(|e| err(e.to_string()))?;
        if let (Json::Object(m), Json::Object(g)) = (&mut merged, given) {
            for (k, v) in g {
                if is_given(&v) {
                    m.insert(k, v);
                }
            }
        }
        serde_json::from_value(merged).map_err(|e| err(e.to_string()))
    }
}

fn is_given(v: &Json) -> bool {
    match v {
        Json::Null | Json::Bool(false) => false,
        Json::Array(a) => !a.is_empty(),
        _ => true,
    }
}

/// The 1-based line where `key:` starts a line.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, rename_all = "kebab-case")]
    struct Part {
        rules: Vec<PathBuf>,
        throttle_rate: Option<f64>,
        throttle_burst: Option<u32>,
        json: bool,
        #[serde(skip_serializing_if = "is_zero")]
        verbose: u8,
    }

    fn is_zero(n: &u8) -> bool {
        *n == 0
    }

    fn known() -> Vec<String> {
        [
            "rules",
            "throttle-rate",
            "throttle-burst",
            "json",
            "verbose",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn file_fills_what_flags_leave_out() {
        let c = ConfigFile::parse(
            Path::new("a.yml"),
            "rules: [rules]\nthrottle-rate: 2.5\njson: true\nverbose: 1\n",
            &known(),
        )
        .unwrap();
        let flags = Part {
            throttle_rate: Some(0.0),
            ..Default::default()
        };
        let p: Part = c.layer(&flags).unwrap();
        assert_eq!(p.rules, vec![PathBuf::from("rules")]);
        assert_eq!(p.throttle_rate, Some(0.0), "a given flag wins, even zero");
        assert!(p.json);
        assert_eq!(p.verbose, 1);
        let p: Part = ConfigFile::default().layer(&flags).unwrap();
        assert_eq!(p, flags, "no file: the flags");
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let err = ConfigFile::parse(
            Path::new("/etc/aurora.yml"),
            "json: true\nthrotle-rate: 2\n",
            &known(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/aurora.yml: "), "{msg}");
        assert!(msg.contains("throtle-rate"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let c = ConfigFile::parse(Path::new("c.yml"), "throttle-burst: lots\n", &known()).unwrap();
        let err = c.layer(&Part::default()).unwrap_err().to_string();
        assert!(err.starts_with("c.yml: "), "{err}");
        assert!(err.contains("line 1"), "the line is named: {err}");
        assert!(err.contains("throttle-burst"), "the key is named: {err}");
    }

    #[test]
    fn a_list_is_not_a_mapping() {
        let err = ConfigFile::parse(Path::new("c.yml"), "- a\n", &known()).unwrap_err();
        assert!(err.to_string().contains("mapping"), "{err}");
    }
}
