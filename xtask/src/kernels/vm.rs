//! Running the scenario: in a QEMU VM (TCG: KVM is not available on every CI machine) booted
//! with an initramfs of busybox, the static agent and the scenario as PID 1; or on the host.
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::{root, run, step};

const INIT: &str = include_str!("init.sh");
const SCENARIO: &str = include_str!("scenario.sh");
/// A VM that has not powered off by then has hung (boot, load or scenario).
const VM_TIMEOUT: Duration = Duration::from_secs(420);

/// The busybox the initramfs and the host run use (Debian's busybox-static).
pub fn busybox() -> Result<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("busybox not found: `cargo xtask setup --test-deps` installs busybox-static")
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A test helper from tests/helpers/, built static (it runs in the bare initramfs too).
fn helper(name: &str, libs: &[&str]) -> Result<PathBuf> {
    let out = root().join("target/kernels").join(name);
    std::fs::create_dir_all(root().join("target/kernels"))?;
    run(Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(root().join(format!("tests/helpers/{name}.c")))
        .args(libs))
    .with_context(|| format!("building tests/helpers/{name}.c (needs gcc; liburing-dev)"))?;
    Ok(out)
}

/// The io_uring file creator.
pub fn uring_helper() -> Result<PathBuf> {
    helper("uring_create", &["-luring"])
}

/// The helpers the scenario runs: (io_uring file creator, DNS server + client).
pub struct Helpers {
    pub uring: PathBuf,
    pub dns_pair: PathBuf,
}

pub fn helpers() -> Result<Helpers> {
    Ok(Helpers {
        uring: uring_helper()?,
        dns_pair: helper("dns_pair", &[])?,
    })
}

/// newc cpio of: /init, /scenario.sh, /aurora, the helpers, /bin/busybox, and an /etc/passwd
/// with root.
pub fn initramfs(aurora: &Path, h: &Helpers) -> Result<PathBuf> {
    let base = root().join("target/kernels");
    let tree = base.join("initramfs");
    let _ = std::fs::remove_dir_all(&tree);
    for d in [
        "bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "sys/kernel/tracing",
        "sys/kernel/security",
        "rules",
    ] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    std::fs::copy(busybox()?, tree.join("bin/busybox"))?;
    std::fs::copy(aurora, tree.join("aurora"))?;
    std::fs::copy(&h.uring, tree.join("uring_create"))?;
    std::fs::copy(&h.dns_pair, tree.join("dns_pair"))?;
    // The project's rules: the enforcement phase runs the agent, which needs some.
    run(Command::new("cp")
        .arg("-r")
        .arg(root().join("rules/linux"))
        .arg(tree.join("rules")))?;
    write_exec(&tree.join("init"), INIT)?;
    write_exec(&tree.join("scenario.sh"), SCENARIO)?;
    std::fs::write(tree.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    std::fs::write(tree.join("etc/group"), "root:x:0:\n")?;
    let out = base.join("initramfs.cpio");
    run(Command::new("sh").current_dir(&tree).arg("-c").arg(format!(
        "find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 > '{}'",
        out.display()
    )))?;
    Ok(out)
}

/// Boot `vmlinuz` with the initramfs; returns the serial console output.
pub fn boot(vmlinuz: &Path, initramfs: &Path) -> Result<String> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1024"])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args([
            "-append",
            "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (`cargo xtask setup --test-deps` installs it)")?;
    let mut stdout = child.stdout.take().context("qemu stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > VM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
            bail!("VM did not power off within {VM_TIMEOUT:?}; console:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = String::from_utf8_lossy(&reader.join().unwrap_or_default()).replace('\r', "");
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        bail!("qemu exited with {status}: {err}\nconsole:\n{out}");
    }
    Ok(out)
}

/// The same scenario on the running kernel, in a temporary directory.
pub fn on_host(aurora: &Path, h: &Helpers) -> Result<String> {
    let work = root().join("target/kernels/host-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let script = root().join("target/kernels/scenario.sh");
    write_exec(&script, SCENARIO)?;
    step("running the scenario on the host kernel");
    let out = Command::new("sh")
        .arg(&script)
        .env("AURORA", aurora)
        .env("RULES", root().join("rules"))
        .env("WORK", &work)
        .env("BB", busybox()?)
        .env("URING", &h.uring)
        .env("DNSPAIR", &h.dns_pair)
        .stdin(Stdio::null())
        .output()
        .context("running the scenario on the host")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
