//! sha256 denies. The kernel cannot hash a file on every kernel, so when the policy has
//! sha256 entries the exec tracepoint stops (SIGSTOP) every process whose executable is not
//! in the hash cache, before its first instruction, and reports the hold. This thread hashes
//! the held process's executable (through /proc/PID/exe: the very file it runs, whatever name
//! or link it was started by), then kills it (enforce) or lets it continue and remembers the
//! file by (dev, inode, ctime, size), so a known file is never held again until it changes.
//! A denied file's inode goes into the kernel's deny map: its next exec dies (or, under BPF
//! LSM, fails) without a hold.
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc, Mutex};

use aurora_common::{
    FileKey, FileStamp, BLOCK_ACTION_KILLED, BLOCK_ACTION_WOULD_BLOCK, DENY_ENFORCE,
};
use sha2::{Digest as _, Sha256};

use super::kill::{kill_verified, start_ticks, KillError};
use crate::enrich::clock::BootClock;
use crate::policy::PolicyHandle;
use crate::sources::ebpf::Sensors;
use crate::sources::{BlockRaw, RawEvent};
use crate::stats::ResponseStats;

/// What the resolver needs: the policies, the kernel maps, the pipeline queue (decisions go
/// on as block events) and the counters.
pub struct HoldResolver {
    pub policy: PolicyHandle,
    pub sensors: Arc<Mutex<Sensors>>,
    pub events: tokio::sync::mpsc::Sender<RawEvent>,
    pub stats: Arc<ResponseStats>,
}

/// The executable's (dev, inode) as the kernel keys it, its stamp and its sha256.
fn hash_exe(pid: u32) -> std::io::Result<(FileKey, FileStamp, [u8; 32])> {
    let mut f = std::fs::File::open(format!("/proc/{pid}/exe"))?;
    let meta = f.metadata()?;
    let dev = meta.dev();
    let key = FileKey {
        dev: crate::policy::kernel_dev(libc::major(dev) as u64, libc::minor(dev) as u64),
        ino: meta.ino(),
    };
    let stamp = FileStamp {
        ctime_ns: meta.ctime() as u64 * 1_000_000_000 + meta.ctime_nsec() as u64,
        size: meta.size(),
    };
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok((key, stamp, h.finalize().into()))
}

fn resume(pid: u32) {
    // SAFETY: plain syscall. The process is stopped at exec; a pid reused since would need
    // this one to have died, which a stopped process only does by SIGKILL.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
}

impl HoldResolver {
    pub fn spawn(
        self,
        holds: mpsc::Receiver<BlockRaw>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("aurora-holds".into())
            .spawn(move || {
                let clock = BootClock::new();
                // Ends when the drain (the only sender) ends; what it sent is resolved first.
                for b in holds {
                    self.resolve(b, &clock);
                }
            })
    }

    fn resolve(&self, b: BlockRaw, clock: &BootClock) {
        let pid = b.task.tgid;
        if start_ticks(pid) != Some(clock.ticks(b.task.start_boottime_ns)) {
            self.stats.holds_gone.fetch_add(1, Relaxed);
            return;
        }
        let (key, stamp, hash) = match hash_exe(pid) {
            Ok(v) if v.0 == b.file => v,
            Ok(_) | Err(_) => {
                // Unreadable or not the file the kernel held: let it run (fail open), counted.
                self.stats.holds_failed.fetch_add(1, Relaxed);
                tracing::warn!(pid, "could not hash the held executable; resuming it");
                resume(pid);
                return;
            }
        };
        let set = self.policy.get();
        let Some(deny) = set.deny_sha256.get(&hash).copied() else {
            self.sensors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .learn_allowed(key, stamp);
            self.stats.holds_allowed.fetch_add(1, Relaxed);
            resume(pid);
            return;
        };
        self.stats.holds_denied.fetch_add(1, Relaxed);
        let action = if deny.flags & DENY_ENFORCE != 0 {
            // The start time was checked above, and a stopped process cannot exit on its own.
            match kill_verified(pid, None) {
                Ok(()) | Err(KillError::Gone) => {}
                Err(KillError::Os(e)) => tracing::warn!(pid, "killing a denied process: {e}"),
            }
            self.sensors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .learn_denied(key, deny);
            BLOCK_ACTION_KILLED
        } else {
            resume(pid);
            BLOCK_ACTION_WOULD_BLOCK
        };
        let decided = BlockRaw {
            entry: deny.entry,
            action,
            ..b
        };
        let _ = self.events.blocking_send(RawEvent::Block(decided));
    }
}
