//! Neutralising hostile event values for line-oriented outputs (text, syslog): a command line
//! must not be able to forge a log line or drive a terminal. Control characters (C0, DEL, C1)
//! become visible escapes; everything else passes unchanged. JSON output does not need this:
//! serde_json escapes control characters itself.
use std::borrow::Cow;
use std::fmt::Write as _;

fn is_control(c: char) -> bool {
    c.is_control() // C0 (incl. \n \r \t NUL ESC), DEL, C1
}

pub fn neutralize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_control(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_lines_and_escapes_are_neutralised() {
        let hostile = "sh -c 'x'\nNov 25 10:00:00 host sshd[1]: Accepted\r\x1b[31mred\x00\u{9b}";
        let n = neutralize(hostile);
        assert!(!n.contains('\n') && !n.contains('\r') && !n.contains('\x1b') && !n.contains('\0'));
        assert!(!n.contains('\u{9b}'));
        assert_eq!(
            n,
            "sh -c 'x'\\nNov 25 10:00:00 host sshd[1]: Accepted\\r\\x1b[31mred\\x00\\x9b"
        );
        assert!(matches!(neutralize("plain ünïcode"), Cow::Borrowed(_)));
    }
}
