//! Which kernel programs Aurora attaches and how: the exec/exit/TCP tracepoints, and the file
//! sensor in one of two modes — the VFS hook (fexit on `do_filp_open`: sees io_uring, costs
//! other syscalls nothing) or, where BPF trampolines or that function are missing, the
//! openat-family syscall tracepoints. The choice and its reason are kept for the ready file
//! and the stats.
use anyhow::{bail, Context as _, Result};
use aya::programs::{FExit, Program, TracePoint};
use aya::{Btf, Ebpf};
use serde::{Deserialize, Serialize};

use crate::telemetry::ready::{FileSensorState, ProgramStatus};

/// How file creation is observed (`--file-sensor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileSensorMode {
    /// The VFS hook, falling back to tracepoints when it cannot attach.
    #[default]
    Auto,
    /// The VFS hook or nothing (start fails).
    Vfs,
    /// The syscall tracepoints (blind to io_uring; taxes every syscall).
    Tracepoint,
    /// No file events at all.
    Off,
}

impl FileSensorMode {
    pub const ALL: [Self; 4] = [Self::Auto, Self::Vfs, Self::Tracepoint, Self::Off];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The mode's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Vfs => "vfs",
            Self::Tracepoint => "tracepoint",
            Self::Off => "off",
        }
    }
}

enum Attach {
    TracePoint(&'static str, &'static str),
    FExit(&'static str),
}

struct Spec {
    prog: &'static str,
    attach: Attach,
    /// Optional programs may fail to attach (absent on some architectures/kernels).
    required: bool,
}

const fn tp(prog: &'static str, category: &'static str, required: bool) -> Spec {
    Spec {
        prog,
        attach: Attach::TracePoint(category, prog),
        required,
    }
}

const CORE: &[Spec] = &[
    tp("sched_process_exec", "sched", true),
    tp("sched_process_exit", "sched", true),
    tp("inet_sock_set_state", "sock", true),
    // DNS answers: on the way in, and as processes read them (names connection destinations).
    tp("netif_receive_skb", "net", true),
    tp("consume_skb", "skb", true),
];

const FILE_VFS: &[Spec] = &[Spec {
    prog: "do_filp_open_exit",
    attach: Attach::FExit("do_filp_open"),
    required: true,
}];

const FILE_TRACEPOINTS: &[Spec] = &[
    tp("sys_enter_openat", "syscalls", true),
    tp("sys_exit_openat", "syscalls", true),
    // open/creat are x86-only legacy calls; openat2 is 5.6+.
    tp("sys_enter_openat2", "syscalls", false),
    tp("sys_exit_openat2", "syscalls", false),
    tp("sys_enter_open", "syscalls", false),
    tp("sys_exit_open", "syscalls", false),
    tp("sys_enter_creat", "syscalls", false),
    tp("sys_exit_creat", "syscalls", false),
    // Files created through io_uring (5.16+ tracepoint layout; absent without io_uring).
    tp("io_uring_complete", "io_uring", false),
];

fn load_one(ebpf: &mut Ebpf, spec: &Spec, btf: Option<&Btf>) -> Result<ProgramStatus> {
    let prog = ebpf
        .program_mut(spec.prog)
        .with_context(|| format!("program {} missing from the object", spec.prog))?;
    let (attached, info, attach) = match spec.attach {
        Attach::TracePoint(category, name) => {
            let p: &mut TracePoint = prog.try_into()?;
            if let Err(e) = p.load() {
                if spec.required {
                    return Err(e).with_context(|| format!("verifier rejected {}", spec.prog));
                }
                tracing::debug!("optional program {}: {e}", spec.prog);
                return Ok(ProgramStatus {
                    name: spec.prog.to_owned(),
                    attach: format!("{category}/{name}"),
                    attached: false,
                    verified_insns: None,
                });
            }
            let attached = match p.attach(category, name) {
                Ok(_) => true,
                Err(e) if !spec.required => {
                    tracing::debug!("optional tracepoint {category}/{name}: {e}");
                    false
                }
                Err(e) => return Err(e).with_context(|| format!("attaching {category}/{name}")),
            };
            (attached, p.info().ok(), format!("{category}/{name}"))
        }
        Attach::FExit(function) => {
            let p: &mut FExit = prog.try_into()?;
            let btf = btf.context("the kernel's BTF could not be read")?;
            p.load(function, btf)
                .with_context(|| format!("loading fexit/{function}"))?;
            p.attach()
                .with_context(|| format!("attaching fexit/{function}"))?;
            (true, p.info().ok(), format!("fexit/{function}"))
        }
    };
    Ok(ProgramStatus {
        name: spec.prog.to_owned(),
        attach,
        attached,
        verified_insns: info.and_then(|i| i.verified_instruction_count()),
    })
}

fn load_all(ebpf: &mut Ebpf, specs: &[Spec], btf: Option<&Btf>) -> Result<Vec<ProgramStatus>> {
    specs.iter().map(|s| load_one(ebpf, s, btf)).collect()
}

/// Load and attach every program; returns their status and the file sensor chosen. `btf` (the
/// kernel's, for the fexit hook) is only needed by the VFS mode; it is dropped on return.
pub use super::enforce::attach_lsm;

pub fn attach(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    mode: FileSensorMode,
) -> Result<(Vec<ProgramStatus>, FileSensorState)> {
    let mut status = load_all(ebpf, CORE, btf)?;
    if mode == FileSensorMode::Off {
        let state = FileSensorState {
            mode: "off".into(),
            fallback_reason: None,
        };
        return Ok((status, state));
    }
    let fallback_reason = if mode == FileSensorMode::Tracepoint {
        "--file-sensor tracepoint".to_owned()
    } else {
        match load_all(ebpf, FILE_VFS, btf) {
            Ok(s) => {
                status.extend(s);
                let state = FileSensorState {
                    mode: "vfs".into(),
                    fallback_reason: None,
                };
                return Ok((status, state));
            }
            Err(e) if mode == FileSensorMode::Vfs => {
                return Err(e).context("--file-sensor vfs: the VFS file hook cannot run here")
            }
            Err(e) => {
                unload(ebpf, FILE_VFS);
                format!("{e:#}")
            }
        }
    };
    status.extend(load_all(ebpf, FILE_TRACEPOINTS, btf)?);
    let state = FileSensorState {
        mode: "tracepoint".into(),
        fallback_reason: Some(fallback_reason),
    };
    Ok((status, state))
}

fn unload(ebpf: &mut Ebpf, specs: &[Spec]) {
    for s in specs {
        if let Some(p) = ebpf.program_mut(s.prog) {
            unload_program(p);
        }
    }
}

/// Detach and unload one program, whatever its kind.
pub fn unload_program(p: &mut Program) {
    let _ = match p {
        Program::TracePoint(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        Program::Lsm(p) => p.unload(),
        _ => Ok(()),
    };
}

/// Every program of every mode is in the object (a clear error at start when one is not).
pub fn check_object(ebpf: &Ebpf) -> Result<()> {
    let lsm = super::enforce::LSM_PROGRAMS.iter().map(|(p, _)| *p);
    for s in CORE
        .iter()
        .chain(FILE_VFS)
        .chain(FILE_TRACEPOINTS)
        .map(|s| s.prog)
        .chain(lsm)
    {
        if ebpf.program(s).is_none() {
            bail!("program {s} missing from the eBPF object");
        }
    }
    Ok(())
}
