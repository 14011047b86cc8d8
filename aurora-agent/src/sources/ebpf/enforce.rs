//! How this kernel enforces the policies: BPF LSM programs (`bprm_check_security`,
//! `file_open`: the operation fails with EPERM) where BPF LSM is active and they attach, else
//! the fallbacks (the exec tracepoint's SIGKILL; the open hooks' SIGKILL, which need a file
//! sensor). The choice and its reason go to the ready file, the log and a metric; the kernel
//! learns it through the `ENFORCE` map (the fallbacks stand aside for what LSM enforces).
use anyhow::{Context as _, Result};
use aurora_common::{ENFORCE_LSM_EXEC, ENFORCE_LSM_OPEN, ENFORCE_SLOT_LSM};
use aya::maps::Array;
use aya::programs::Lsm;
use aya::{Btf, Ebpf};

use crate::policy::{active_lsms, Enforcement};
use crate::telemetry::ready::{FileSensorState, ProgramStatus};

/// (program, LSM hook) per operation, in `OPERATIONS` order.
pub const LSM_PROGRAMS: [(&str, &str); 2] = [
    ("lsm_bprm_check", "bprm_check_security"),
    ("lsm_file_open", "file_open"),
];
const OPERATIONS: [(&str, u32); 2] = [("exec", ENFORCE_LSM_EXEC), ("open", ENFORCE_LSM_OPEN)];

fn load_lsm(ebpf: &mut Ebpf, prog: &str, hook: &str, btf: &Btf) -> Result<Option<u32>> {
    let p: &mut Lsm = ebpf
        .program_mut(prog)
        .with_context(|| format!("program {prog} missing"))?
        .try_into()?;
    p.load(hook, btf)
        .with_context(|| format!("loading lsm/{hook}"))?;
    p.attach()
        .with_context(|| format!("attaching lsm/{hook}"))?;
    Ok(p.info().ok().and_then(|i| i.verified_instruction_count()))
}

/// The fallback of each operation: exec always has the tracepoint; opens are checked by the
/// file sensor's hooks, so only when one runs.
fn fallback(operation: &str, file_sensor: &FileSensorState) -> &'static str {
    match (operation, file_sensor.mode.as_str()) {
        ("exec", _) => "tracepoint-sigkill",
        (_, "vfs") => "vfs-sigkill",
        (_, "tracepoint") => "tracepoint-sigkill",
        _ => "none",
    }
}

/// Attach the LSM programs where they can enforce, write the kernel's flags, and say for each
/// operation how it is enforced and why.
pub fn attach_lsm(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    file_sensor: &FileSensorState,
) -> Result<(Vec<ProgramStatus>, Vec<Enforcement>)> {
    let lsms = active_lsms();
    let bpf_active = lsms
        .as_deref()
        .map(|l| l.split(',').any(|m| m.trim() == "bpf"));
    let mut status = vec![];
    let mut out = vec![];
    let mut flags = 0u32;
    for ((prog, hook), (operation, flag)) in LSM_PROGRAMS.into_iter().zip(OPERATIONS) {
        let mut attached = false;
        let mut insns = None;
        let (mechanism, reason) = match (bpf_active, btf) {
            (Some(false), _) => (
                fallback(operation, file_sensor),
                format!(
                    "no `bpf` in the active LSM list ({})",
                    lsms.as_deref().unwrap_or_default()
                ),
            ),
            (_, None) => (
                fallback(operation, file_sensor),
                "the kernel's BTF is unreadable (BPF LSM needs it)".to_owned(),
            ),
            (active, Some(btf)) => match load_lsm(ebpf, prog, hook, btf) {
                Ok(n) => {
                    attached = true;
                    insns = n;
                    if active == Some(true) {
                        flags |= flag;
                        ("lsm", "BPF LSM is active".to_owned())
                    } else {
                        // Attached, but whether the hook runs is unknown: the fallback stays
                        // on (where LSM refuses first, it never sees the operation).
                        (
                            fallback(operation, file_sensor),
                            "BPF LSM attached, but the active LSM list is unreadable \
                             (securityfs not mounted)"
                                .to_owned(),
                        )
                    }
                }
                Err(e) => {
                    if let Some(p) = ebpf.program_mut(prog) {
                        super::programs::unload_program(p);
                    }
                    (fallback(operation, file_sensor), format!("{e:#}"))
                }
            },
        };
        status.push(ProgramStatus {
            name: prog.to_owned(),
            attach: format!("lsm/{hook}"),
            attached,
            verified_insns: insns,
        });
        out.push(Enforcement {
            operation: operation.to_owned(),
            mechanism: mechanism.to_owned(),
            reason,
        });
    }
    let mut map: Array<_, u32> =
        Array::try_from(ebpf.map_mut("ENFORCE").context("ENFORCE map missing")?)?;
    map.set(ENFORCE_SLOT_LSM, flags, 0)
        .context("writing ENFORCE")?;
    Ok((status, out))
}
