//! Release artefacts (filled in by the packaging work).
use anyhow::Result;

pub fn run() -> Result<()> {
    anyhow::bail!("dist: not available yet")
}
