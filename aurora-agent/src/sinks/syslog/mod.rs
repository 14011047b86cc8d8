//! Syslog formatting (RFC 5424 / 3164) and framing (RFC 6587).
pub mod format;

/// TCP framing of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6587 octet counting: `LEN SP MSG`.
    OctetCounting,
    /// `MSG LF` (non-transparent framing).
    Newline,
}

pub fn frame(msg: &str, framing: Framing) -> Vec<u8> {
    match framing {
        Framing::OctetCounting => format!("{} {msg}", msg.len()).into_bytes(),
        Framing::Newline => format!("{msg}\n").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_counting_counts_bytes() {
        assert_eq!(frame("héllo", Framing::OctetCounting), b"6 h\xc3\xa9llo");
        assert_eq!(frame("x", Framing::Newline), b"x\n");
    }
}
