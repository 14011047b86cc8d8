//! ProcessGuid: `{BBBBBBBB-SSSS-SSSS-SSSS-PPPPPPPPPPPP}`, Sysmon's GUID shape.
//! B = first 8 hex digits of the kernel boot id (/proc/sys/kernel/random/boot_id), S = process
//! start time in clock ticks since boot (48 bits), P = process id. The same process gets the same
//! GUID in every event and across agent restarts within one boot; a reused PID gets a new one.

#[derive(Clone, Debug)]
pub struct GuidMaker {
    boot: u32,
}

impl GuidMaker {
    pub fn from_system() -> Self {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        Self::from_boot_id(&id)
    }

    pub fn from_boot_id(boot_id: &str) -> Self {
        let hex: String = boot_id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();
        GuidMaker {
            boot: u32::from_str_radix(&hex, 16).unwrap_or(0),
        }
    }

    /// Formatted by hand (per event: `format!` cost ten times as much).
    pub fn guid(&self, pid: u32, start_ticks: u64) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        fn hex(out: &mut String, v: u64, digits: u32) {
            for i in (0..digits).rev() {
                out.push(HEX[((v >> (i * 4)) & 0xf) as usize] as char);
            }
        }
        let s = start_ticks & 0xffff_ffff_ffff;
        let mut out = String::with_capacity(38);
        out.push('{');
        hex(&mut out, u64::from(self.boot), 8);
        out.push('-');
        hex(&mut out, (s >> 32) & 0xffff, 4);
        out.push('-');
        hex(&mut out, (s >> 16) & 0xffff, 4);
        out.push('-');
        hex(&mut out, s & 0xffff, 4);
        out.push('-');
        hex(&mut out, u64::from(pid), 12);
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        let g = GuidMaker::from_boot_id("3f2a1b4c-0000-4000-8000-000000000000\n");
        assert_eq!(
            g.guid(1234, 0x1_0002_0003),
            "{3f2a1b4c-0001-0002-0003-0000000004d2}"
        );
        assert_eq!(g.guid(1234, 99), g.guid(1234, 99));
        assert_ne!(
            g.guid(1234, 99),
            g.guid(1234, 100),
            "PID reuse must give a new GUID"
        );
        assert_ne!(g.guid(1234, 99), g.guid(1235, 99));
    }
}
