//! `--ringbuf-size`: bytes (`8388608`, `8M`, `512K`) or pages (`2048p`); a power of two ≥ one page.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingSizeError {
    #[error("ring size '{0}' is not a number (examples: 8M, 524288, 128p)")]
    NotANumber(String),
    #[error("ring size {0} bytes is not a power of two (try {1})")]
    NotPowerOfTwo(u64, u64),
    #[error("ring size {0} bytes is below one page ({1} bytes)")]
    BelowPage(u64, u64),
    #[error("ring size {0} bytes is above the 1 GiB limit")]
    TooLarge(u64),
}

pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64
}

pub fn parse(s: &str) -> Result<u32, RingSizeError> {
    parse_with_page(s, page_size())
}

fn parse_with_page(s: &str, page: u64) -> Result<u32, RingSizeError> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'p' | 'P')) => (&t[..i], page),
        Some((i, 'k' | 'K')) => (&t[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| RingSizeError::NotANumber(s.to_owned()))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or(RingSizeError::TooLarge(u64::MAX))?;
    if bytes < page {
        return Err(RingSizeError::BelowPage(bytes, page));
    }
    if bytes > 1 << 30 {
        return Err(RingSizeError::TooLarge(bytes));
    }
    if !bytes.is_power_of_two() {
        return Err(RingSizeError::NotPowerOfTwo(
            bytes,
            bytes.next_power_of_two(),
        ));
    }
    Ok(bytes as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bytes_units_and_pages() {
        assert_eq!(parse_with_page("4096", 4096), Ok(4096));
        assert_eq!(parse_with_page("8M", 4096), Ok(8 << 20));
        assert_eq!(parse_with_page("512k", 4096), Ok(512 << 10));
        assert_eq!(parse_with_page("16p", 4096), Ok(65536));
    }

    #[test]
    fn rejects_bad_sizes_with_reasons() {
        assert_eq!(
            parse_with_page("3000", 4096),
            Err(RingSizeError::BelowPage(3000, 4096))
        );
        assert_eq!(
            parse_with_page("12288", 4096),
            Err(RingSizeError::NotPowerOfTwo(12288, 16384))
        );
        assert!(matches!(
            parse_with_page("lots", 4096),
            Err(RingSizeError::NotANumber(_))
        ));
        assert!(matches!(
            parse_with_page("2G", 4096),
            Err(RingSizeError::TooLarge(_))
        ));
        assert!(matches!(
            parse_with_page("-1", 4096),
            Err(RingSizeError::NotANumber(_))
        ));
    }
}
