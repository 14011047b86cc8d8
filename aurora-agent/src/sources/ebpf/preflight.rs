//! Checks before loading: privileges, BTF, ring buffers, tracefs. Each failure says what to do
//! (and the agent exits 2).
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "insufficient privileges to load eBPF sensors: run as root, or grant CAP_BPF, \
         CAP_PERFMON and CAP_SYS_RESOURCE (e.g. the systemd unit in deploy/aurora.service); \
         effective capabilities here: {0:#x}"
    )]
    Privileges(u64),
    #[error(
        "kernel BTF not found at /sys/kernel/btf/vmlinux: Aurora's CO-RE sensors need a kernel \
         built with CONFIG_DEBUG_INFO_BTF=y (Debian 11+, Ubuntu 20.10+, RHEL 8.2+ have it)"
    )]
    NoBtf,
    #[error(
        "this kernel has no BPF ring buffers (BPF_MAP_TYPE_RINGBUF, Linux 5.8+): Aurora's \
         sensors need Linux 5.8 or later with BTF (running {0})"
    )]
    NoRingBuf(String),
    #[error(
        "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({0}): mount it \
         with `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    Tracefs(nix::Error),
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability mask from /proc/self/status.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

pub fn has_bpf_privileges(caps: u64) -> bool {
    let has = |c: u32| caps & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Mount tracefs where the kernel expects it when nothing provides it yet.
pub fn ensure_tracefs() -> Result<(), PreflightError> {
    let tracing = Path::new("/sys/kernel/tracing");
    if tracing.join("events").exists() || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(());
    }
    tracing::info!("tracefs not mounted; mounting it at /sys/kernel/tracing");
    nix::mount::mount(
        Some("nodev"),
        tracing,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(PreflightError::Tracefs)
}

pub fn check() -> Result<(), PreflightError> {
    let caps = effective_caps();
    if !has_bpf_privileges(caps) {
        return Err(PreflightError::Privileges(caps));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBtf);
    }
    // Probed, not inferred from the version: distributions backport features.
    if matches!(
        aya::sys::is_map_supported(aya::maps::MapType::RingBuf),
        Ok(false)
    ) {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(PreflightError::NoRingBuf(release));
    }
    ensure_tracefs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_rules() {
        assert!(has_bpf_privileges(1 << CAP_SYS_ADMIN));
        assert!(has_bpf_privileges((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!has_bpf_privileges(1 << CAP_BPF));
        assert!(!has_bpf_privileges(0));
    }
}
