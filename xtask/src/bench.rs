//! Benchmarks (filled in by the performance work).
use anyhow::Result;

#[derive(clap::Args)]
pub struct BenchArgs {}

pub fn run(_a: BenchArgs) -> Result<()> {
    anyhow::bail!("bench: not available yet")
}
