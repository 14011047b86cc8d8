//! Live telemetry: loads the embedded CO-RE object, attaches the programs and drains one ring
//! per program into the pipeline queue.
pub mod config;
pub mod decode;
pub mod drain;
mod enforce;
mod listeners;
pub mod loader;
pub mod policy_maps;
pub mod preflight;
pub mod programs;
pub mod ringsize;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use aurora_common::{Ring, PREFIX_LEN, RING_COUNT};
use aya::maps::{lpm_trie::Key, LpmTrie, Map, MapData, PerCpuArray, RingBuf};
use aya::{Btf, Ebpf, EbpfLoader};

pub use decode::{DecodeError, ShortRecord};

use crate::policy::Enforcement;
use crate::telemetry::ready::ProgramStatus;
pub use crate::telemetry::ready::{FileSensorState, LoaderState};
pub use programs::FileSensorMode;

/// The kernel object, built by aurora-agent/build.rs and embedded once.
static OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/aurora"));

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EbpfConfig {
    /// Bytes per ring (power of two, ≥ one page).
    pub ring_bytes: u32,
    /// Path prefixes for file events (`--watch-dir`); empty = everything.
    pub watch_dirs: Vec<PathBuf>,
    /// aya-log level for kernel diagnostics (0 = off).
    pub kernel_log_level: u8,
    /// How file creation is observed (`--file-sensor`).
    pub file_sensor: FileSensorMode,
}

/// Where the programs and maps live.
enum Holder {
    /// Loaded in this process (kernel-side logging needs the object here).
    InProcess(Ebpf),
    /// Loaded by the loader child: this process holds the descriptors (dropping them detaches).
    Handed(Vec<std::os::fd::OwnedFd>),
}

/// Loaded and attached sensors. Dropping it detaches every program.
pub struct Sensors {
    holder: Holder,
    rings: Vec<(Ring, Map)>,
    lost: PerCpuArray<MapData, u64>,
    policy: policy_maps::PolicyMaps,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    programs: Vec<ProgramStatus>,
    file_sensor: FileSensorState,
    enforcement: Vec<Enforcement>,
    loader: LoaderState,
}

/// The object loaded and attached, before the agent takes what it reads.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub programs: Vec<ProgramStatus>,
    pub file_sensor: FileSensorState,
    pub enforcement: Vec<Enforcement>,
}

/// The maps the agent reads or writes after loading: the rings, the lost counter, the
/// policy maps.
fn wanted_maps() -> Vec<&'static str> {
    Ring::ALL
        .iter()
        .map(|r| r.map_name())
        .chain(policy_maps::NAMES)
        .collect()
}

/// Relocate the object against the running kernel (the loader parses its BTF) and create its
/// maps with their configured sizes; the loader and its BTF are dropped on return.
fn open_object(cfg: &EbpfConfig, agent_tgid: u32, filter: u8) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    // Small-record rings get a quarter of the size (ring pages are resident: this is the
    // agent's RSS).
    let small = (cfg.ring_bytes / 4).max(ringsize::page_size() as u32);
    for ring in Ring::ALL {
        let size = if ring.small() { small } else { cfg.ring_bytes };
        loader.map_max_entries(ring.map_name(), size);
    }
    loader
        .override_global("AGENT_TGID", &agent_tgid, true)
        .override_global("FILTER_PREFIXES", &filter, true)
        .override_global(aya_log::LEVEL, &cfg.kernel_log_level, false);
    loader.load(OBJ).context(
        "loading the eBPF object failed (kernel too old for ring buffers/BTF, or BPF disabled \
         by lockdown?)",
    )
}

/// Load, fill the configuration maps and attach every program (in whichever process parses
/// the BTF). `agent_tgid` is the process whose own activity the programs skip.
pub fn load_object(cfg: &EbpfConfig, agent_tgid: u32) -> Result<Loaded> {
    let filter: u8 = u8::from(!cfg.watch_dirs.is_empty());
    let mut ebpf = open_object(cfg, agent_tgid, filter)?;
    if filter != 0 {
        let mut trie: LpmTrie<_, [u8; PREFIX_LEN], u8> = LpmTrie::try_from(
            ebpf.map_mut("WATCHED_PREFIXES")
                .context("WATCHED_PREFIXES map missing")?,
        )?;
        for dir in &cfg.watch_dirs {
            let bytes = dir.as_os_str().as_encoded_bytes();
            let mut data = [0u8; PREFIX_LEN];
            let n = bytes.len().min(PREFIX_LEN);
            data[..n].copy_from_slice(&bytes[..n]);
            trie.insert(&Key::new((n * 8) as u32, data), 1, 0)
                .with_context(|| format!("adding watch dir {}", dir.display()))?;
        }
    }
    programs::check_object(&ebpf)?;
    // The fexit attach needs the kernel's BTF once more; parsed only now, after the loader
    // (which parsed its own copy) is gone, so the two never peak together.
    let btf = Btf::from_sys_fs();
    let (mut programs, file_sensor) =
        programs::attach(&mut ebpf, btf.as_ref().ok(), cfg.file_sensor)?;
    let (lsm, enforcement) = programs::attach_lsm(&mut ebpf, btf.as_ref().ok(), &file_sensor)?;
    programs.extend(lsm);
    drop(btf);
    {
        let map = ebpf.map_mut("LISTENERS").context("LISTENERS map missing")?;
        let mut listeners = aya::maps::HashMap::try_from(map)?;
        let n = listeners::seed(&mut listeners);
        tracing::debug!(
            listeners = n,
            "pre-existing TCP listeners recorded for attribution"
        );
    }
    Ok(Loaded {
        ebpf,
        programs,
        file_sensor,
        enforcement,
    })
}

impl Sensors {
    /// Load and attach the sensors: in the loader child (the agent never holds the kernel's
    /// BTF), or here when kernel-side logging is on (its reader needs the object) or the child
    /// cannot be started.
    pub fn load(cfg: &EbpfConfig) -> Result<Self> {
        preflight::check()?;
        let in_process = |reason: String| -> Result<Self> {
            let mut s = Self::in_process(cfg)?;
            s.loader = LoaderState {
                mode: "in-process".into(),
                reason: Some(reason),
            };
            Ok(s)
        };
        let sensors = if cfg.kernel_log_level == 0 {
            match loader::load_in_child(cfg) {
                Ok(h) => Self::from_handoff(h)?,
                Err(e) if loader::not_started(&e) => {
                    tracing::warn!("{e:#}; loading the sensors in the agent itself");
                    in_process(format!("{e:#}"))?
                }
                Err(e) => return Err(e),
            }
        } else {
            let why = "kernel-side logging (-v) reads the programs' log through the loaded object";
            tracing::info!("{why}: loading the sensors in the agent itself");
            in_process(why.into())?
        };
        match &sensors.file_sensor.fallback_reason {
            None => tracing::info!("file sensor: VFS hook (fexit/do_filp_open)"),
            Some(why) => tracing::warn!(
                "file sensor: syscall tracepoints (blind to io_uring, slower syscalls): {why}"
            ),
        }
        Ok(sensors)
    }

    fn in_process(cfg: &EbpfConfig) -> Result<Self> {
        let mut loaded = load_object(cfg, std::process::id())?;
        let logger = if cfg.kernel_log_level > 0 {
            match aya_log::EbpfLogger::init(&mut loaded.ebpf) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!("kernel-side logging unavailable: {e}");
                    None
                }
            }
        } else {
            None
        };
        let mut maps = BTreeMap::new();
        for name in wanted_maps() {
            let map = loaded
                .ebpf
                .take_map(name)
                .with_context(|| format!("{name} map missing"))?;
            maps.insert(name.to_owned(), map);
        }
        Self::assemble(
            Holder::InProcess(loaded.ebpf),
            maps,
            loaded.programs,
            loaded.file_sensor,
            loaded.enforcement,
            logger,
        )
    }

    fn from_handoff(h: loader::Handoff) -> Result<Self> {
        let mut maps = BTreeMap::new();
        for (name, data) in h.maps {
            maps.insert(name, Map::from_map_data(data)?);
        }
        Self::assemble(
            Holder::Handed(h.keep),
            maps,
            h.programs,
            h.file_sensor,
            h.enforcement,
            None,
        )
    }

    fn assemble(
        holder: Holder,
        mut maps: BTreeMap<String, Map>,
        programs: Vec<ProgramStatus>,
        file_sensor: FileSensorState,
        enforcement: Vec<Enforcement>,
        logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    ) -> Result<Self> {
        let mut take = |name: &str| {
            maps.remove(name)
                .with_context(|| format!("{name} map missing"))
        };
        let lost = PerCpuArray::try_from(take("LOST")?)?;
        let policy = policy_maps::PolicyMaps::new(&mut take)?;
        let mut rings = Vec::new();
        for ring in Ring::ALL {
            rings.push((ring, take(ring.map_name())?));
        }
        Ok(Sensors {
            holder,
            rings,
            lost,
            policy,
            logger,
            programs,
            file_sensor,
            enforcement,
            loader: LoaderState {
                mode: "child".into(),
                reason: None,
            },
        })
    }

    /// What loaded and attached, for the ready file.
    pub fn programs(&self) -> &[ProgramStatus] {
        &self.programs
    }

    /// How denied operations are enforced here, and why.
    pub fn enforcement(&self) -> &[Enforcement] {
        &self.enforcement
    }

    /// The file sensor mode in use and why.
    pub fn file_sensor(&self) -> &FileSensorState {
        &self.file_sensor
    }

    /// Where the programs were loaded, for the ready file.
    pub fn loader(&self) -> &LoaderState {
        &self.loader
    }

    /// Take the four rings (once) for the drain task.
    pub fn take_rings(&mut self) -> Result<Vec<(Ring, RingBuf<MapData>)>> {
        std::mem::take(&mut self.rings)
            .into_iter()
            .map(|(ring, map)| Ok((ring, RingBuf::try_from(map)?)))
            .collect()
    }

    /// Make the kernel enforce `set` (replacing what it enforced before).
    pub fn apply_policy(&mut self, set: &crate::policy::PolicySet) -> Result<()> {
        self.policy.apply(set)
    }

    /// See `PolicyMaps::learn_allowed`.
    pub fn learn_allowed(&mut self, key: aurora_common::FileKey, stamp: aurora_common::FileStamp) {
        self.policy.learn_allowed(key, stamp);
    }

    /// See `PolicyMaps::learn_denied`.
    pub fn learn_denied(&mut self, key: aurora_common::FileKey, deny: aurora_common::DenyEntry) {
        self.policy.learn_denied(key, deny);
    }

    /// Kernel-side lost records per ring (reserve failures), summed over CPUs.
    pub fn lost(&self) -> [u64; RING_COUNT as usize] {
        let mut out = [0u64; RING_COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(vals) = self.lost.get(&(i as u32), 0) {
                *slot = vals.iter().sum();
            }
        }
        out
    }

    /// Forward buffered kernel log records to tracing.
    pub fn flush_kernel_logs(&mut self) {
        if let Some(l) = self.logger.as_mut() {
            l.flush();
        }
    }

    /// Detach every program so no new records arrive; maps stay readable.
    pub fn detach(&mut self) {
        match &mut self.holder {
            Holder::InProcess(ebpf) => {
                for (_, p) in ebpf.programs_mut() {
                    programs::unload_program(p);
                }
            }
            // The last references to the links, perf events and programs.
            Holder::Handed(keep) => keep.clear(),
        }
    }
}
