//! `cargo xtask <task>`: what a fresh Debian 12 machine (as root) needs to build, run and test
//! Aurora. Every task installs what is missing first — visibly, and as a fast no-op when all
//! is present.
mod bench;
mod corpora;
mod dist;
mod fuzz;
mod kernels;
mod setup;
#[path = "../../tests/common/testdata.rs"]
mod testdata;

use std::process::Command;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain pieces and system packages Aurora needs (idempotent).
    Setup {
        /// Also install what the test suite needs (rsyslog, openssl, systemd tools).
        #[arg(long)]
        test_deps: bool,
    },
    /// Build the agent (release).
    Build,
    /// Build and run the live agent: `cargo xtask run -- --rules rules --json`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The whole test suite: fmt check, clippy, unit, replay, live eBPF, sink and deploy tests,
    /// the kernel matrix and the packages.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks: replay throughput, live overhead, loss under load (table + JSON).
    Bench(bench::BenchArgs),
    /// Release tarball, .deb, .rpm and debug symbols in dist/ (reproducible).
    Dist {
        /// Then check them: same bytes when rebuilt, lintian, install/remove/purge, rpm.
        #[arg(long)]
        check: bool,
    },
    /// Run every cargo-fuzz target for SECONDS each (seeded from the fixtures); fails on a crash.
    Fuzz {
        #[arg(default_value_t = 60)]
        seconds: u64,
    },
    /// The kernel matrix: each pinned Debian kernel under QEMU, then the host kernel.
    Kernels {
        /// Skip the host kernel (VMs only).
        #[arg(long)]
        no_host: bool,
    },
}

pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

pub fn build_release() -> Result<std::path::PathBuf> {
    step("building aurora (release)");
    run(cargo().args(["build", "--release", "--quiet", "-p", "aurora-agent"]))?;
    Ok(root().join("target/release/aurora"))
}

/// Run `cargo test`, passing its output through; returns (passed, failed) over every test
/// binary.
fn cargo_test_counts(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in std::io::BufReader::new(child.stdout.take().context("stdout")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let num = |key: &str| -> u64 {
                rest.split(';')
                    .find_map(|p| {
                        p.trim().strip_suffix(key).map(|n| {
                            n.trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ")
                                .to_owned()
                        })
                    })
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            passed += num("passed");
            failed += num("failed");
        }
    }
    let status = child.wait()?;
    if !status.success() && failed == 0 {
        // A build failure or a crashed test binary: no test counted it.
        failed += 1;
    }
    Ok((passed, failed))
}

/// Errors end the task with their chain of causes, without a backtrace: they are messages for
/// the person who ran the command.
fn main() -> std::process::ExitCode {
    match run_task(Cli::parse().task) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_task(task: Task) -> Result<()> {
    match task {
        Task::Setup { test_deps } => setup::ensure(test_deps),
        Task::Build => {
            setup::ensure(false)?;
            build_release().map(|_| ())
        }
        Task::Run { args } => {
            setup::ensure(false)?;
            let bin = build_release()?;
            step(&format!("running {} {}", bin.display(), args.join(" ")));
            let err = std::os::unix::process::CommandExt::exec(
                Command::new(bin).args(args).current_dir(root()),
            );
            Err(err).context("exec aurora")
        }
        Task::Test { args } => {
            setup::ensure(true)?;
            corpora::ensure()?;
            step("cargo fmt --check");
            run(cargo().args(["fmt", "--all", "--", "--check"]))?;
            step("cargo clippy -D warnings");
            run(cargo().args([
                "clippy",
                "--quiet",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            step("cargo test (unit, replay, CLI, live eBPF, sinks, deploy)");
            // Live tests share the kernel's sensors and the machine's 2 cores: one at a time.
            // Tests that need root or a daemon are marked ignored, with the reason, for a
            // contributor's plain `cargo test`; here they all run (and fail, never skip, when
            // they cannot).
            let (mut passed, mut failed) = cargo_test_counts(
                cargo()
                    // Every test binary runs even after a failure: one run reports them all.
                    .args(["test", "--workspace", "--no-fail-fast"])
                    .args(&args)
                    .args(["--", "--test-threads=1", "--include-ignored"]),
            )?;
            // A filtered run (`cargo xtask test NAME`) is for one test, not the matrix.
            if args.is_empty() {
                step("kernel matrix (QEMU: 5.10, 6.1, 6.12; then the host kernel)");
                let (p, f) = kernels::run_matrix(true)?;
                passed += p;
                failed += f;
                step("fuzz targets, 10 s each (the bench runs them 60 s each)");
                match fuzz::run_fuzz(10) {
                    Ok(()) => passed += 1,
                    Err(e) => {
                        eprintln!("xtask: fuzz: FAILED: {e:#}");
                        failed += 1;
                    }
                }
                step("packages (dist --check: reproducible, lintian, install/purge, rpm)");
                setup::ensure_dist()?;
                match dist::run_dist(true) {
                    Ok(()) => passed += 1,
                    Err(e) => {
                        eprintln!("xtask: packages: FAILED: {e:#}");
                        failed += 1;
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            if failed > 0 {
                bail!("{failed} test(s) failed");
            }
            Ok(())
        }
        Task::Bench(a) => {
            setup::ensure(false)?;
            bench::run(a)
        }
        Task::Fuzz { seconds } => {
            setup::ensure(false)?;
            fuzz::run_fuzz(seconds)
        }
        Task::Dist { check } => {
            setup::ensure(check)?;
            setup::ensure_dist()?;
            dist::run_dist(check)
        }
        Task::Kernels { no_host } => {
            setup::ensure(true)?;
            let (passed, failed) = kernels::run_matrix(!no_host)?;
            println!("{passed} passed, {failed} failed");
            if failed > 0 {
                bail!("kernel matrix: {failed} kernel(s) failed");
            }
            Ok(())
        }
    }
}
