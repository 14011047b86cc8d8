//! `aurora console`: the fleet's web console (`crate::console`), until SIGINT/SIGTERM.
use anyhow::Result;

use crate::console::ConsoleArgs;

pub fn run(args: ConsoleArgs) -> Result<()> {
    if let Some(name) = args.add_user.clone() {
        return crate::console::add_user(&args, &name);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async {
            let shutdown = super::signals::Shutdown::install()?;
            crate::console::serve(args, async move { shutdown.wait().await }).await
        })
}
