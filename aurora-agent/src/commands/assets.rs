//! `aurora generate-assets DIR` (hidden): the manual pages (section 8, one per command) and
//! the bash/zsh/fish completions, generated from the clap definitions so they never drift
//! from `--help`. `cargo xtask dist` ships them in the packages and the tarball.
use std::path::Path;

use anyhow::{Context as _, Result};

pub fn run(dir: &Path) -> Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let cmd = crate::cli::command();
    write_man(&man, cmd.clone(), "aurora")?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let mut c = cmd.clone();
        clap_complete::generate_to(shell, &mut c, "aurora", &completions)
            .with_context(|| format!("{shell} completions"))?;
    }
    Ok(())
}

/// `name.8` for this command and, recursively, `name-sub.8` for each visible subcommand.
fn write_man(dir: &Path, cmd: clap::Command, name: &str) -> Result<()> {
    let cmd = cmd.name(name.to_owned()).bin_name(name.replace('-', " "));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("Aurora")
        .source(format!("aurora {}", env!("CARGO_PKG_VERSION")))
        .date("")
        .render(&mut buf)?;
    let path = dir.join(format!("{name}.8"));
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_man(dir, sub.clone(), &sub_name)?;
    }
    Ok(())
}
