//! Which of the records Aurora makes from its sensors an auditd rule can match, and which
//! files its PATH selections name (to watch in the kernel). Read off the rule's own
//! detection: a selection can match a made record when every item tests a field that record
//! carries, with a `type` (and `SYSCALL`, `nametype`, `key`) value it has. Filters
//! (`filter*` selections) are not asked: they only take matches away.
use rsigma_parser::{Detection, DetectionItem, SigmaRule, SigmaValue};

/// The record shapes made from the sensors (a bit each).
pub mod shape {
    /// EXECVE of an exec (argv, SYSCALL fields merged).
    pub const EXECVE: u8 = 1;
    /// SYSCALL of an exec.
    pub const SYSCALL_EXEC: u8 = 2;
    /// PATH of an exec: the executable.
    pub const PATH_EXEC: u8 = 4;
    /// PATH of a file creation (nametype CREATE).
    pub const PATH_CREATE: u8 = 8;
    /// PATH of an open of a watched file (nametype NORMAL).
    pub const PATH_OPEN: u8 = 16;
}

/// Opens of a watched file that make a PATH record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Opens for writing only (`-p wa`: changes to configuration).
    Write,
    /// Every open (`-p rwa`: reads are the technique, e.g. discovery).
    Any,
}

/// A file a rule's PATH selection names, as written (`*` globs within a component).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watch {
    pub pattern: String,
    pub access: Access,
}

/// What the sensors can feed one auditd rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feed {
    /// `shape` bits of the records that can match it.
    pub shapes: u8,
    pub watches: Vec<Watch>,
}

impl Feed {
    pub fn fed(&self) -> bool {
        self.shapes != 0
    }
}

/// One made record's identity, for the checks below.
struct Shape {
    bit: u8,
    rtype: &'static str,
    syscall: &'static str,
    nametype: Option<&'static str>,
}

const SHAPES: [Shape; 5] = [
    Shape {
        bit: shape::EXECVE,
        rtype: "EXECVE",
        syscall: "execve",
        nametype: None,
    },
    Shape {
        bit: shape::SYSCALL_EXEC,
        rtype: "SYSCALL",
        syscall: "execve",
        nametype: None,
    },
    Shape {
        bit: shape::PATH_EXEC,
        rtype: "PATH",
        syscall: "execve",
        nametype: Some("NORMAL"),
    },
    Shape {
        bit: shape::PATH_CREATE,
        rtype: "PATH",
        syscall: "openat",
        nametype: Some("CREATE"),
    },
    Shape {
        bit: shape::PATH_OPEN,
        rtype: "PATH",
        syscall: "openat",
        nametype: Some("NORMAL"),
    },
];

/// The SYSCALL record's fields every made record carries (merged in).
const SYSCALL_FIELDS: &[&str] = &[
    "arch", "success", "exit", "ppid", "pid", "auid", "uid", "euid", "suid", "fsuid", "comm",
    "exe", "ARCH", "AUID", "UID", "EUID", "SUID", "FSUID",
];

/// Tags of techniques where reading the file is the act (discovery, credential access,
/// collection): their PATH rules watch every open; the others (changes to configuration,
/// persistence) only opens for writing, as their audit watches (`-p wa`) do.
const READ_TACTICS: &[&str] = &[
    "attack.discovery",
    "attack.credential-access",
    "attack.credential_access",
    "attack.collection",
];

pub fn analyze(rule: &SigmaRule) -> Feed {
    let mut feed = Feed::default();
    for (name, det) in &rule.detection.named {
        // Keyword lists match any record: they say nothing about which one.
        if name.to_ascii_lowercase().starts_with("filter") || keywords_only(det) {
            continue;
        }
        for s in &SHAPES {
            if detection_matches(det, s) {
                feed.shapes |= s.bit;
            }
        }
        if detection_matches(det, &SHAPES[4]) {
            collect_names(det, &mut feed.watches);
        }
    }
    if feed.watches.is_empty() {
        feed.shapes &= !shape::PATH_OPEN;
    }
    let reads = rule
        .tags
        .iter()
        .any(|t| READ_TACTICS.contains(&t.to_ascii_lowercase().as_str()));
    for w in &mut feed.watches {
        w.access = if reads { Access::Any } else { Access::Write };
    }
    feed.watches.sort();
    feed.watches.dedup();
    feed
}

fn detection_matches(d: &Detection, s: &Shape) -> bool {
    match d {
        Detection::AllOf(items) => items.iter().all(|i| item_matches(i, s)),
        Detection::AnyOf(subs) => subs.iter().any(|d| detection_matches(d, s)),
        Detection::And(subs) => subs.iter().all(|d| detection_matches(d, s)),
        Detection::Keywords(_) => true,
        Detection::ArrayMatch { .. } | Detection::Conditional { .. } => false,
    }
}

/// A selection of field-less values only (`- value`, `'|all': [...]`).
fn keywords_only(d: &Detection) -> bool {
    match d {
        Detection::Keywords(_) => true,
        Detection::AllOf(items) => items.iter().all(|i| i.field.name.is_none()),
        Detection::AnyOf(subs) | Detection::And(subs) => subs.iter().all(keywords_only),
        _ => false,
    }
}

fn text(v: &SigmaValue) -> Option<String> {
    match v {
        SigmaValue::String(s) => Some(s.original.clone()),
        SigmaValue::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

fn any_value_is(item: &DetectionItem, want: &str) -> bool {
    item.values
        .iter()
        .filter_map(text)
        .any(|v| v.eq_ignore_ascii_case(want))
}

fn is_arg(name: &str) -> bool {
    name.strip_prefix('a')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn item_matches(item: &DetectionItem, s: &Shape) -> bool {
    let Some(name) = item.field.name.as_deref() else {
        return true;
    };
    match name {
        "type" => any_value_is(item, s.rtype),
        "SYSCALL" => any_value_is(item, s.syscall),
        "syscall" => false,
        "nametype" => s.nametype.is_some_and(|n| any_value_is(item, n)),
        "name" | "item" => s.nametype.is_some(),
        "argc" => s.bit == shape::EXECVE,
        "key" => any_value_is(item, crate::event::audit::NO_KEY),
        n if is_arg(n) => s.bit == shape::EXECVE,
        n => SYSCALL_FIELDS.contains(&n),
    }
}

/// The exact (or `*`-globbed) absolute paths a PATH selection's `name` items name.
fn collect_names(d: &Detection, out: &mut Vec<Watch>) {
    match d {
        Detection::AllOf(items) => {
            for i in items {
                if i.field.name.as_deref() == Some("name") && i.field.modifiers.is_empty() {
                    for v in i.values.iter().filter_map(text) {
                        if v.starts_with('/') && !v.contains('?') {
                            out.push(Watch {
                                pattern: v,
                                access: Access::Write,
                            });
                        }
                    }
                }
            }
        }
        Detection::AnyOf(subs) | Detection::And(subs) => {
            subs.iter().for_each(|d| collect_names(d, out))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(detection: &str, tags: &str) -> SigmaRule {
        let text = format!(
            "title: t\nlogsource: {{product: linux, service: auditd}}\ntags: [{tags}]\n\
             detection:\n{detection}\nlevel: low\n"
        );
        rsigma_parser::parse_sigma_yaml(&text)
            .expect("parses")
            .rules
            .remove(0)
    }

    #[test]
    fn execve_syscall_and_path_rules_are_fed_socket_and_key_rules_are_not() {
        let execve = rule(
            "  sel: {type: EXECVE, a0: tar}\n  condition: sel",
            "attack.collection",
        );
        assert_eq!(analyze(&execve).shapes, shape::EXECVE);
        let split = rule("  sel: {type: SYSCALL, comm: split}\n  condition: sel", "");
        assert_eq!(analyze(&split).shapes, shape::SYSCALL_EXEC);
        let socket = rule(
            "  sel: {type: SYSCALL, SYSCALL: socket, a0: 26}\n  condition: sel",
            "",
        );
        assert!(!analyze(&socket).fed());
        let key = rule("  sel: {key: susp_activity}\n  condition: sel", "");
        assert!(!analyze(&key).fed());
        let keywords = rule(
            "  sel: {type: EXECVE}\n  kw: ['|all': [grep, password]]\n  condition: sel and kw",
            "",
        );
        assert_eq!(analyze(&keywords).shapes, shape::EXECVE);
    }

    #[test]
    fn path_rules_watch_the_names_they_list_with_the_access_their_tactic_implies() {
        let discovery = rule(
            "  sel: {type: PATH, name: [/etc/login.defs, '/etc/*release']}\n  condition: sel",
            "attack.discovery, attack.t1201",
        );
        let f = analyze(&discovery);
        assert_eq!(
            f.shapes,
            shape::PATH_EXEC | shape::PATH_CREATE | shape::PATH_OPEN
        );
        assert_eq!(
            f.watches,
            vec![
                Watch {
                    pattern: "/etc/*release".into(),
                    access: Access::Any
                },
                Watch {
                    pattern: "/etc/login.defs".into(),
                    access: Access::Any
                }
            ]
        );
        let change = rule(
            "  sel: {type: PATH, name: /etc/ld.so.preload}\n  condition: sel",
            "attack.persistence",
        );
        assert_eq!(analyze(&change).watches[0].access, Access::Write);
        let create = rule(
            "  p: {type: PATH, nametype: CREATE}\n  n: {name|startswith: /etc/systemd/system/}\n  condition: p and n",
            "",
        );
        let f = analyze(&create);
        assert_eq!(f.shapes & shape::PATH_CREATE, shape::PATH_CREATE);
        assert!(f.watches.is_empty() && f.shapes & shape::PATH_OPEN == 0);
    }
}
