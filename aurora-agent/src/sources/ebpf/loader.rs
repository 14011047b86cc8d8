//! The sensor loader child. Loading relocates the object against the kernel's BTF, which aya
//! 0.14 parses whole (5–6 MB of type data on a 6.x kernel, ~15 MB of heap while it parses):
//! done in the agent, that transient was its peak memory for the rest of its life. So the agent
//! re-executes itself (`/proc/self/exe`, hidden subcommand `load-sensors`) with one end of a
//! socket pair as stdin; the child loads and attaches everything and hands back every
//! descriptor it holds (maps, programs, links) with SCM_RIGHTS, then exits without detaching.
//! The agent keeps those descriptors: the rings and the lost counter are named, the rest only
//! keep the programs attached until `Sensors::detach` closes them.
use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};
use aya::maps::{Map, MapData};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use super::{EbpfConfig, FileSensorState, Loaded};
use crate::policy::Enforcement;
use crate::telemetry::ready::ProgramStatus;

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "load-sensors";
/// The most descriptors one SCM_RIGHTS message carries (the kernel's SCM_MAX_FD).
const MAX_FDS: usize = 253;
/// Bound on either message (the handoff is a few KB of JSON).
const MAX_MESSAGE: usize = 64 * 1024;

/// What the agent asks for.
#[derive(Serialize, Deserialize)]
struct Request {
    cfg: EbpfConfig,
    /// The agent's pid: the programs skip its own activity (not the child's).
    agent_tgid: u32,
}

/// What the child answers; descriptors travel alongside, in `fds` order.
#[derive(Serialize, Deserialize)]
enum Reply {
    Loaded {
        programs: Vec<ProgramStatus>,
        file_sensor: FileSensorState,
        enforcement: Vec<Enforcement>,
        /// Map name → index of its descriptor.
        maps: BTreeMap<String, usize>,
        fds: usize,
    },
    Failed(String),
}

/// The loaded sensors as the agent receives them.
pub struct Handoff {
    pub programs: Vec<ProgramStatus>,
    pub file_sensor: FileSensorState,
    pub enforcement: Vec<Enforcement>,
    /// The maps the agent reads, by name.
    pub maps: BTreeMap<String, MapData>,
    /// Programs, links, perf events and the remaining maps: held, never read.
    pub keep: Vec<OwnedFd>,
}

/// The child could not be started at all (the agent then loads in-process).
#[derive(Debug, thiserror::Error)]
#[error("the sensor loader (/proc/self/exe {SUBCOMMAND}) could not be started: {0}")]
pub struct NotStarted(#[source] std::io::Error);

/// Whether `load_in_child` failed before the child ran.
pub fn not_started(e: &anyhow::Error) -> bool {
    e.downcast_ref::<NotStarted>().is_some()
}

/// Load the sensors in a child process and take over what it attached.
pub fn load_in_child(cfg: &EbpfConfig) -> Result<Handoff> {
    let wanted = super::wanted_maps();
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the sensor loader")?;
    // The child logs to our stderr at our verbosity.
    let verbosity = match tracing::level_filters::LevelFilter::current() {
        tracing::level_filters::LevelFilter::TRACE => &["-v", "-v"][..],
        tracing::level_filters::LevelFilter::DEBUG => &["-v"][..],
        _ => &[][..],
    };
    let mut child = Command::new("/proc/self/exe")
        .arg(SUBCOMMAND)
        .args(verbosity)
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .spawn()
        .map_err(NotStarted)?;
    let request = serde_json::to_vec(&Request {
        cfg: cfg.clone(),
        agent_tgid: std::process::id(),
    })?;
    let answer = send(&ours, &request, &[]).and_then(|()| receive(&ours));
    let status = child.wait().context("waiting for the sensor loader")?;
    let (reply, fds) = answer.with_context(|| format!("sensor loader ({status})"))?;
    let (programs, file_sensor, enforcement, names, count) = match reply {
        Reply::Loaded {
            programs,
            file_sensor,
            enforcement,
            maps,
            fds,
        } => (programs, file_sensor, enforcement, maps, fds),
        Reply::Failed(why) => bail!("{why}"),
    };
    if fds.len() != count {
        bail!(
            "sensor loader sent {} descriptors, announced {count}",
            fds.len()
        );
    }
    let mut slots: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    let mut maps = BTreeMap::new();
    for name in &wanted {
        let fd = names
            .get(*name)
            .and_then(|&i| slots.get_mut(i))
            .and_then(Option::take)
            .with_context(|| format!("sensor loader did not hand over map {name}"))?;
        let data = MapData::from_fd(fd).with_context(|| format!("map {name} from the loader"))?;
        maps.insert((*name).to_owned(), data);
    }
    Ok(Handoff {
        programs,
        file_sensor,
        enforcement,
        maps,
        keep: slots.into_iter().flatten().collect(),
    })
}

/// The child: read the request from stdin (the socket), load, hand everything over, exit
/// without detaching (the agent holds the descriptors by then).
pub fn serve() -> Result<()> {
    let wanted = super::wanted_maps();
    // SAFETY: the agent started us with the socket as stdin; nothing else owns fd 0.
    let sock = unsafe { OwnedFd::from_raw_fd(0) };
    let (request, _) = receive_raw(&sock).context("reading the loader request")?;
    let request: Request =
        serde_json::from_slice(&request).context("decoding the loader request")?;
    match super::load_object(&request.cfg, request.agent_tgid) {
        Ok(loaded) => {
            let result = hand_over(&sock, loaded, &wanted);
            if let Err(e) = &result {
                let _ = send(&sock, &reply_bytes(&Reply::Failed(format!("{e:#}"))), &[]);
            }
            result
        }
        Err(e) => send(&sock, &reply_bytes(&Reply::Failed(format!("{e:#}"))), &[]),
    }
}

fn reply_bytes(r: &Reply) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_default()
}

fn hand_over(sock: &OwnedFd, loaded: Loaded, wanted: &[&str]) -> Result<()> {
    let Loaded {
        mut ebpf,
        programs,
        file_sensor,
        enforcement,
    } = loaded;
    let mut named: BTreeMap<RawFd, String> = BTreeMap::new();
    let mut taken = Vec::new();
    for name in wanted {
        let map = ebpf
            .take_map(name)
            .with_context(|| format!("{name} map missing"))?;
        let data = match map {
            Map::RingBuf(d)
            | Map::PerCpuArray(d)
            | Map::HashMap(d)
            | Map::LruHashMap(d)
            | Map::Array(d) => d,
            _ => bail!("{name}: unexpected map type"),
        };
        named.insert(data.fd().as_fd().as_raw_fd(), (*name).to_owned());
        taken.push(data);
    }
    let fds: Vec<RawFd> = open_descriptors()?
        .into_iter()
        .filter(|&fd| fd > 2 && fd != sock.as_raw_fd())
        .collect();
    if fds.len() > MAX_FDS {
        bail!("{} descriptors to hand over (at most {MAX_FDS})", fds.len());
    }
    let maps = fds
        .iter()
        .enumerate()
        .filter_map(|(i, fd)| named.get(fd).map(|n| (n.clone(), i)))
        .collect();
    let reply = Reply::Loaded {
        programs,
        file_sensor,
        enforcement,
        maps,
        fds: fds.len(),
    };
    send(sock, &reply_bytes(&reply), &fds)?;
    // Dropping would detach the programs and close the maps; the process exit only closes
    // our copies of the descriptors.
    std::mem::forget(taken);
    std::mem::forget(ebpf);
    Ok(())
}

/// This process's open descriptors (without the one the listing itself used).
fn open_descriptors() -> Result<Vec<RawFd>> {
    let listed: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .context("listing /proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // SAFETY: F_GETFD only queries the descriptor table.
    Ok(listed
        .into_iter()
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect())
}

fn send(sock: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> Result<()> {
    let iov = [IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    let sent = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)
        .context("sending to the sensor loader socket")?;
    if sent != bytes.len() {
        bail!(
            "short send on the sensor loader socket ({sent} of {})",
            bytes.len()
        );
    }
    Ok(())
}

fn receive(sock: &OwnedFd) -> Result<(Reply, Vec<OwnedFd>)> {
    let (bytes, fds) = receive_raw(sock)?;
    if bytes.is_empty() {
        bail!("it exited without an answer");
    }
    let reply = serde_json::from_slice(&bytes).context("decoding the loader reply")?;
    Ok((reply, fds))
}

/// One message and the descriptors that came with it (close-on-exec).
fn receive_raw(sock: &OwnedFd) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds, truncated) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receiving on the sensor loader socket")?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().context("reading descriptors")? {
            if let ControlMessageOwned::ScmRights(list) = c {
                // SAFETY: SCM_RIGHTS installed these descriptors in this process for us.
                fds.extend(
                    list.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        let truncated = msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        (msg.bytes, fds, truncated)
    };
    if truncated {
        bail!("message or descriptors truncated on the sensor loader socket");
    }
    buf.truncate(n);
    Ok((buf, fds))
}
