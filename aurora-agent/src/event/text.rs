//! Turning kernel bytes into event strings: lossless for non-UTF-8, exact for argv.
use std::fmt::Write as _;

/// Valid UTF-8 passes through; each invalid byte becomes `\xNN` (so nothing is dropped and the
/// output is always valid UTF-8).
pub fn bytes_to_string(bytes: &[u8]) -> String {
    bytes_to_text(bytes).into_owned()
}

/// [`bytes_to_string`] without a copy when the bytes are valid UTF-8.
pub fn bytes_to_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(escape_invalid(bytes)),
    }
}

fn escape_invalid(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 16);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                // SAFETY-free: `good` was validated by from_utf8 up to valid_up_to.
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len()).max(1).min(rest.len());
                for b in &rest[..bad] {
                    let _ = write!(out, "\\x{b:02x}");
                }
                bytes = &rest[bad..];
            }
        }
    }
}

/// argv as the kernel lays it out (NUL-separated, NUL-terminated) → one command line: arguments
/// joined by single spaces, exactly as given (no quoting), trailing NULs dropped.
pub fn join_argv(raw: &[u8]) -> String {
    let trimmed = match raw.iter().rposition(|&b| b != 0) {
        Some(last) => &raw[..=last],
        None => return String::new(),
    };
    let joined: Vec<u8> = trimmed
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    bytes_to_string(&joined)
}

/// Bytes up to the first NUL (C string in a fixed buffer).
pub fn c_str(buf: &[u8]) -> &[u8] {
    match buf.iter().position(|&b| b == 0) {
        Some(n) => &buf[..n],
        None => buf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_joins_with_spaces_and_keeps_inner_spaces() {
        assert_eq!(
            join_argv(b"bash\0-c\0echo hi there\0"),
            "bash -c echo hi there"
        );
        assert_eq!(join_argv(b"ls\0\0\0"), "ls");
        assert_eq!(join_argv(b""), "");
        assert_eq!(join_argv(b"\0\0"), "");
        // An empty argument in the middle keeps its place.
        assert_eq!(join_argv(b"a\0\0b\0"), "a  b");
    }

    #[test]
    fn invalid_utf8_is_escaped_not_dropped() {
        assert_eq!(bytes_to_string(b"/tmp/\xffx\xfe"), "/tmp/\\xffx\\xfe");
        assert_eq!(bytes_to_string("héllo".as_bytes()), "héllo");
        // A truncated multi-byte sequence at the end.
        assert_eq!(bytes_to_string(b"ab\xe2\x82"), "ab\\xe2\\x82");
    }

    #[test]
    fn c_str_stops_at_nul() {
        assert_eq!(c_str(b"bash\0\0garbage"), b"bash");
        assert_eq!(c_str(b"full"), b"full");
    }
}
